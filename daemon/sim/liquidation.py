"""How the simulated exchange closes a liquidated leg: at its bankruptcy price, the loss beyond the margin
being the insurance fund's, every close recorded (`liquidations`, as the venues' liquidation records list them)
and announced (`Liquidated`, then the position's change). When to liquidate is the engine's (`check_account`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from daemon.core.types import MarginMode, PositionRisk
from daemon.sim.book import Book
from daemon.sim.markets import Market
from daemon.sim.model import SETTLE, BalanceChanged, Liquidated, SimAccount, SimPosition
from daemon.sim.oracle import GroupVerdict, Verdict


class Liquidator(Book):
    def __init__(self, markets: Mapping[str, Market] | Iterable[Market], clock: Callable[[], float]) -> None:
        super().__init__(markets, clock)
        self.liquidations: list[dict[str, Any]] = []

    def _liquidate_isolated(
        self, account: SimAccount, pos: SimPosition, leg: PositionRisk, group: GroupVerdict
    ) -> None:
        """Close the leg at its bankruptcy price: its isolated margin is lost, the wallet is untouched."""
        price = _bankruptcy_or_mark(group, self.marks[pos.symbol])
        pnl = self.pnl_at(pos, price)
        returned = max(0.0, pos.isolated_margin + pnl)  # a deficit beyond the margin is the insurance fund's
        account.wallet[SETTLE] = account.wallet.get(SETTLE, 0.0) + returned
        account.realized_pnl += pnl
        account.insurance_covered += returned - (pos.isolated_margin + pnl)
        self._close_liquidated(account, pos, price, pos.isolated_margin - returned, leg.liquidation_price)
        self.emit(
            BalanceChanged(account.api_key, SETTLE, account.wallet[SETTLE], "liquidation", self.now_ms())
        )

    def _liquidate_cross(
        self, account: SimAccount, positions: list[SimPosition], verdict: Verdict, trigger: GroupVerdict
    ) -> None:
        """Close every cross leg: the failing symbol's at its bankruptcy price, the others at their marks.

        The failing symbol's bankruptcy price is where the account's equity (the others at their marks) is
        zero, so this leaves the cross wallet at 0; a gap beyond it is the insurance fund's, never a
        negative wallet. Each record's `loss` is what closing that leg cost (negative for a leg in profit).
        """
        legs = [(index, pos) for index, pos in enumerate(positions) if pos.margin_mode is MarginMode.CROSS]
        prices = [
            _bankruptcy_or_mark(trigger, self.marks[pos.symbol])
            if index in trigger.legs
            else self.marks[pos.symbol]
            for index, pos in legs
        ]
        pnls = [self.pnl_at(pos, price) for (_, pos), price in zip(legs, prices, strict=True)]
        wallet = account.wallet.get(SETTLE, 0.0)
        covered = max(0.0, -(wallet + sum(pnls)))  # the insurance fund's share
        account.wallet[SETTLE] = max(0.0, wallet + sum(pnls))
        account.realized_pnl += sum(pnls)
        account.insurance_covered += covered
        charged = False
        for (index, pos), price, pnl in zip(legs, prices, pnls, strict=True):
            loss = -pnl
            if index in trigger.legs and not charged:  # the insurance fund's share is the trigger's
                loss -= covered
                charged = True
            liquidation = verdict.risk.positions[index].liquidation_price
            self._close_liquidated(account, pos, price, loss, liquidation)
        self.emit(
            BalanceChanged(account.api_key, SETTLE, account.wallet[SETTLE], "liquidation", self.now_ms())
        )

    def _close_liquidated(
        self, account: SimAccount, pos: SimPosition, price: float, loss: float, liquidation: float | None
    ) -> None:
        ts = self.now_ms()
        self._remove(account, pos)
        self.liquidations.append(
            {
                "ts_ms": ts,
                "api_key": account.api_key,
                "symbol": pos.symbol,
                "side": pos.side.value,
                "position_side": pos.position_side,
                "contracts": pos.contracts,
                "entry_price": pos.entry_price,
                "mark": self.marks[pos.symbol],
                "liquidation_price": liquidation,
                "price": price,
                "loss": loss,
                "margin_mode": pos.margin_mode.value,
            }
        )
        self.emit(Liquidated(account.api_key, pos.symbol, pos.side, pos.contracts, price, loss, ts))
        self._emit_position(account, pos, None, "liquidation")


def _bankruptcy_or_mark(group: GroupVerdict, mark: float) -> float:
    bankruptcy = group.bankruptcy
    return float(bankruptcy) if bankruptcy is not None and bankruptcy > 0 else mark

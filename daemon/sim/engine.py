"""The simulated exchange's state machine: accounts, positions, marks and a liquidation engine.

Pure Python, no sockets and no asyncio: the server and the dialects drive it and translate its events
into each exchange's wire format. Its clock is injectable (`Engine(markets, clock=time.time)`).

Liquidation prices come from the same core model the daemon uses (`daemon.core.margin.evaluate_account`),
built with the dialect's exchange family, so "the exchange" and marginguard agree by construction; the
scenarios then test the daemon's reaction time, not a formula mismatch.

Conventions:
- `contracts` counts the dialect's contracts (OKX: ctVal units; Binance/Bybit: base units, size 1).
- `wallet[asset]` is the CROSS wallet: margin locked in isolated positions is moved out of it and kept on
  the position (`isolated_margin`). `summary()` gives the exchange-style totals (wallet incl. isolated).
- Events are delivered synchronously to subscribers, in order, after the state has changed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from daemon.core.margin import evaluate_account
from daemon.core.margin.families import TierBasis, family_for
from daemon.core.types import Account, AccountRisk, MarginMode, Position, PositionRisk, Side
from daemon.sim.bands import Band, band_from, needs_model
from daemon.sim.book import Book
from daemon.sim.markets import Market
from daemon.sim.model import (
    SETTLE,
    AccountSummary,
    BalanceChanged,
    EngineError,
    Event,
    Liquidated,
    MarginCall,
    MarkChanged,
    PositionChanged,
    SimAccount,
    SimPosition,
)

__all__ = [
    "SETTLE",
    "AccountSummary",
    "BalanceChanged",
    "Engine",
    "EngineError",
    "Event",
    "Liquidated",
    "MarginCall",
    "MarkChanged",
    "PositionChanged",
    "SimAccount",
    "SimPosition",
]


class Engine(Book):
    """One simulated exchange. See the module docstring for conventions."""

    def __init__(
        self,
        markets: Mapping[str, Market] | Iterable[Market],
        clock: Callable[[], float] = time.time,
        family: str = "binance",
        margin_call_ratio: float = 0.8,
    ) -> None:
        super().__init__(markets, clock)
        self.family = family
        self.margin_call_ratio = margin_call_ratio
        self.index_prices: dict[str, float] = {}
        self.funding_rates: dict[str, float] = {}
        self.liquidations: list[dict[str, Any]] = []
        self.request_log: list[dict[str, Any]] = []
        self._margin_called: set[str] = set()
        self._risk_cache: dict[str, tuple[tuple[Any, ...], AccountRisk]] = {}
        self._bands: dict[str, Band] = {}  # api key -> cached liquidation prices (see daemon.sim.bands)
        in_contracts = family_for(family).tier_basis is TierBasis.CONTRACTS
        self._core_tiers = {symbol: m.core_tiers(in_contracts) for symbol, m in self.markets.items()}

    # ---- markets and prices ----

    def index_price(self, symbol: str) -> float:
        return self.index_prices.get(symbol, self.marks[self.market(symbol).symbol])

    def after_position_change(self, api_key: str) -> None:
        self.check_account(api_key)

    def emit(self, event: Event) -> None:
        if isinstance(event, PositionChanged):
            self._bands.pop(event.api_key, None)  # its liquidation prices may have moved
        elif isinstance(event, BalanceChanged) and self._has_cross_leg(event.api_key):
            self._bands.pop(event.api_key, None)  # the cross wallet backs the cross legs
        super().emit(event)

    def funding_rate(self, symbol: str) -> float:
        self.market(symbol)
        return self.funding_rates.get(symbol, 0.0001)

    def set_mark(self, symbol: str, price: float, index: float | None = None) -> None:
        """Move one mark price, publish it, then run the liquidation engine for its holders."""
        self.set_marks({symbol: price}, {symbol: index} if index is not None else None)

    def set_marks(self, marks: Mapping[str, float], index: Mapping[str, float] | None = None) -> None:
        """Move several marks at once; each affected account is re-evaluated once."""
        ts = self.now_ms()
        affected: set[str] = set()
        for symbol, price in marks.items():
            self.market(symbol)
            if not price > 0:
                raise EngineError("invalid", f"mark price must be positive, got {price}")
            self.marks[symbol] = float(price)
            if index is not None and symbol in index:
                self.index_prices[symbol] = float(index[symbol])
            self.emit(MarkChanged(symbol, float(price), self.index_price(symbol), ts))
            affected |= self._holders.get(symbol, set())
        for api_key in sorted(affected):
            self.check_account(api_key, only_if_near=True)

    def publish_marks(self, symbols: Iterable[str] | None = None) -> None:
        """Re-announce current marks without changing them (the exchanges' periodic mark stream)."""
        ts = self.now_ms()
        for symbol in symbols if symbols is not None else self.marks:
            self.emit(MarkChanged(symbol, self.marks[symbol], self.index_price(symbol), ts))

    # ---- the core model ----

    def core_position(self, pos: SimPosition) -> Position:
        market = self.markets[pos.symbol]
        return Position(
            symbol=pos.symbol,
            side=pos.side,
            contracts=pos.contracts,
            contract_size=market.contract_size,
            entry_price=pos.entry_price,
            mark_price=self.marks[pos.symbol],
            margin_mode=pos.margin_mode,
            contract_type=market.contract_type,
            leverage=pos.leverage,
            isolated_margin=pos.isolated_margin if pos.margin_mode is MarginMode.ISOLATED else None,
            tiers=self._core_tiers[pos.symbol],
            taker_fee_rate=market.taker_fee,
            max_leverage=market.max_leverage,
        )

    def core_account(self, api_key: str) -> Account:
        account = self.account(api_key)
        return Account(
            exchange=self.family,
            positions=tuple(self.core_position(p) for p in account.positions),
            wallet_balance=account.wallet.get(SETTLE, 0.0),
            settle_currency=SETTLE,
        )

    def risk(self, api_key: str) -> AccountRisk:
        """The core model's verdict on the account, memoised on everything the model reads."""
        account = self.account(api_key)
        key = (
            account.wallet.get(SETTLE, 0.0),
            tuple(
                (
                    p.symbol,
                    p.side,
                    p.contracts,
                    p.entry_price,
                    p.margin_mode,
                    p.leverage,
                    p.isolated_margin,
                    self.marks[p.symbol],
                )
                for p in account.positions
            ),
        )
        cached = self._risk_cache.get(api_key)
        if cached is not None and cached[0] == key:
            return cached[1]
        risk = evaluate_account(self.core_account(api_key))
        self._risk_cache[api_key] = (key, risk)
        return risk

    def position_risk(self, api_key: str, symbol: str, side: Side | None = None) -> PositionRisk | None:
        account = self.account(api_key)
        risk = self.risk(api_key)
        for pos, leg in zip(account.positions, risk.positions, strict=True):
            if pos.symbol == symbol and (side is None or pos.side is side):
                return leg
        return None

    def liquidation_price(self, api_key: str, symbol: str, side: Side | None = None) -> float | None:
        leg = self.position_risk(api_key, symbol, side)
        return leg.liquidation_price if leg is not None else None

    def summary(self, api_key: str) -> AccountSummary:
        account = self.account(api_key)
        cross_wallet = account.wallet.get(SETTLE, 0.0)
        isolated = sum(p.isolated_margin for p in account.positions if p.margin_mode is MarginMode.ISOLATED)
        upnl = sum(self.unrealized_pnl(p) for p in account.positions)
        initial = sum(self.notional(p) / p.leverage for p in account.positions)
        risk = self.risk(api_key) if account.positions else None
        maintenance = risk.maintenance_margin if risk is not None else 0.0
        available = max(0.0, self.available_cross(account))
        return AccountSummary(
            wallet_balance=cross_wallet + isolated,
            cross_wallet=cross_wallet,
            unrealized_pnl=upnl,
            margin_balance=cross_wallet + isolated + upnl,
            position_initial_margin=initial,
            maintenance_margin=maintenance,
            available_balance=available,
            margin_ratio=risk.margin_ratio if risk is not None else None,
        )

    # ---- liquidation engine ----

    def _has_cross_leg(self, api_key: str) -> bool:
        account = self.accounts.get(api_key)
        return account is not None and any(p.margin_mode is MarginMode.CROSS for p in account.positions)

    def check_account(self, api_key: str, only_if_near: bool = False) -> None:
        """Close every leg whose model liquidation price the mark has crossed, then check margin calls.

        `only_if_near`: skip the model when the account's cached band says no mark is near liquidation.
        """
        if only_if_near and api_key not in self._margin_called:
            band = self._bands.get(api_key)
            account = self.accounts.get(api_key)
            if (
                band is not None
                and account is not None
                and not needs_model(band, account.positions, self.marks)
            ):
                return
        for _ in range(64):  # each pass closes one isolated leg or the cross group, then looks again
            account = self.accounts.get(api_key)
            if account is None or not account.positions:
                break
            risk = self.risk(api_key)
            crossed = next(
                (
                    (pos, leg)
                    for pos, leg in zip(account.positions, risk.positions, strict=True)
                    if _is_crossed(leg, self.marks[pos.symbol])
                ),
                None,
            )
            if crossed is None:
                self._check_margin_call(api_key, risk)
                sizes = {p.symbol: self.markets[p.symbol].contract_size for p in account.positions}
                self._bands[api_key] = band_from(
                    account.positions, risk, self.marks, sizes, self.margin_call_ratio
                )
                return
            pos, leg = crossed
            if pos.margin_mode is MarginMode.ISOLATED:
                self._liquidate_isolated(account, pos, leg)
            else:
                self._liquidate_cross(account, pos, leg, risk)

    def _liquidate_isolated(self, account: SimAccount, pos: SimPosition, leg: PositionRisk) -> None:
        """Close the leg at its bankruptcy price: its isolated margin is lost, the wallet is untouched."""
        price = _bankruptcy_or_mark(leg, self.marks[pos.symbol])
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
        self, account: SimAccount, trigger: SimPosition, leg: PositionRisk, risk: AccountRisk
    ) -> None:
        """Close every cross leg: the one that crossed at its bankruptcy price, the others at their marks.

        The bankruptcy price of a cross leg is where the account's equity (the others at their marks) is
        zero, so this leaves the cross wallet at 0; a gap beyond it is the insurance fund's, never a
        negative wallet. Each record's `loss` is what closing that leg cost (negative for a leg in profit).
        """
        legs = [
            (pos, verdict)
            for pos, verdict in zip(account.positions, risk.positions, strict=True)
            if pos.margin_mode is MarginMode.CROSS
        ]
        prices = [
            _bankruptcy_or_mark(leg, self.marks[pos.symbol]) if pos is trigger else self.marks[pos.symbol]
            for pos, _ in legs
        ]
        pnls = [self.pnl_at(pos, price) for (pos, _), price in zip(legs, prices, strict=True)]
        wallet = account.wallet.get(SETTLE, 0.0)
        covered = max(0.0, -(wallet + sum(pnls)))  # the insurance fund's share
        account.wallet[SETTLE] = max(0.0, wallet + sum(pnls))
        account.realized_pnl += sum(pnls)
        account.insurance_covered += covered
        for (pos, verdict), price, pnl in zip(legs, prices, pnls, strict=True):
            loss = -pnl - (covered if pos is trigger else 0.0)
            self._close_liquidated(account, pos, price, loss, verdict.liquidation_price)
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

    def _check_margin_call(self, api_key: str, risk: AccountRisk) -> None:
        account = self.accounts[api_key]
        at_risk = tuple(
            sorted(
                {
                    pos.symbol
                    for pos, leg in zip(account.positions, risk.positions, strict=True)
                    if leg.margin_ratio is not None and leg.margin_ratio >= self.margin_call_ratio
                }
            )
        )
        ratio = max((leg.margin_ratio or 0.0 for leg in risk.positions), default=0.0)
        if at_risk and api_key not in self._margin_called:
            self._margin_called.add(api_key)  # edge-triggered: one call per excursion
            self.emit(MarginCall(api_key, at_risk, ratio, self.now_ms()))
        elif not at_risk:
            self._margin_called.discard(api_key)


def _bankruptcy_or_mark(leg: PositionRisk, mark: float) -> float:
    return leg.bankruptcy_price if leg.bankruptcy_price is not None and leg.bankruptcy_price > 0 else mark


def _is_crossed(leg: PositionRisk, mark: float) -> bool:
    lp = leg.liquidation_price
    if lp is None or lp <= 0:
        return False
    if leg.distance_to_liquidation is not None:
        # The model measures the distance in the direction that ruins the leg's margin group: for a cross
        # symbol held long and short at once (hedge mode) that is the net exposure's, not this leg's side.
        return leg.distance_to_liquidation <= 0
    return mark <= lp if leg.side is Side.LONG else mark >= lp

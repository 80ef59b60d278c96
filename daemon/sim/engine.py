"""The simulated exchange's state machine: accounts, positions, marks, funding and a liquidation engine.

Pure Python, no sockets and no asyncio: the server and the dialects drive it and translate its events
into each exchange's wire format. Its clock is injectable (`Engine(markets, clock=time.time)`).

Margin figures come from the simulator's own oracle (`daemon.sim.oracle`): each venue's published rules,
written apart from marginguard's model and computed in Decimal. So a test in which the daemon's liquidation
price agrees with the simulator's compares two independent implementations. The liquidation engine closes
a leg (isolated) or the cross legs when the venue's condition holds at the marks: margin balance at or below
the maintenance requirement.

Conventions:
- `contracts` counts the dialect's contracts (OKX: ctVal units; Binance/Bybit: base units, size 1).
- `wallet[asset]` is the CROSS wallet: margin locked in isolated positions is moved out of it and kept on
  the position (`isolated_margin`). `summary()` gives the exchange-style totals (wallet incl. isolated).
- Events are delivered synchronously to subscribers, in order, after the state has changed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from daemon.core.types import AccountRisk, ContractType, MarginMode, PositionRisk, Side
from daemon.sim.bands import Band, band_from, needs_model
from daemon.sim.liquidation import Liquidator
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
from daemon.sim.oracle import (
    Brackets,
    Holdings,
    Leg,
    Verdict,
    evaluate,
    rules_for,
    with_wallet,
)
from daemon.sim.oracle.numbers import dec

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


class Engine(Liquidator):
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
        self.rules = rules_for(family)
        self.margin_call_ratio = margin_call_ratio
        self.index_prices: dict[str, float] = {}
        self.funding_rates: dict[str, float] = {}
        # Every isolated-margin move, as the venues' margin histories list them (Binance positionMargin/history).
        self.margin_changes: list[dict[str, Any]] = []
        self.fundings: list[dict[str, Any]] = []
        self.request_log: list[dict[str, Any]] = []
        self._margin_called: set[str] = set()
        self._verdicts: dict[str, tuple[tuple[Any, ...], Verdict]] = {}
        self._bands: dict[str, Band] = {}  # api key -> where its marks may move unchecked (daemon.sim.bands)
        in_contracts = self.rules.brackets_in_contracts
        self._brackets = {s: Brackets.from_tiers(m.core_tiers(in_contracts)) for s, m in self.markets.items()}
        self._market_numbers = {
            s: (
                dec(m.contract_size),
                dec(m.taker_fee),
                dec(m.max_leverage),
                m.contract_type is ContractType.INVERSE,
            )
            for s, m in self.markets.items()
        }

    # ---- markets and prices ----

    def index_price(self, symbol: str) -> float:
        return self.index_prices.get(symbol, self.marks[self.market(symbol).symbol])

    def after_position_change(self, api_key: str) -> None:
        self.check_account(api_key)

    def emit(self, event: Event) -> None:
        if isinstance(event, PositionChanged):
            self._bands.pop(event.api_key, None)  # its liquidation prices may have moved
        elif (
            isinstance(event, BalanceChanged) and event.asset == SETTLE and self._has_cross_leg(event.api_key)
        ):
            band = self._bands.get(event.api_key)  # the cross wallet backs the cross legs
            if band is not None and (band.wallet_floor is None or not event.wallet >= band.wallet_floor):
                del self._bands[event.api_key]
        super().emit(event)

    def adjust_isolated_margin(self, api_key: str, symbol: str, side: Side | None, amount: float) -> float:
        pos = self.find_position(api_key, symbol, side)
        margin = super().adjust_isolated_margin(api_key, symbol, side, amount)
        assert pos is not None  # the move was refused otherwise
        self.margin_changes.append(
            {
                "ts_ms": self.now_ms(),
                "api_key": api_key,
                "symbol": pos.symbol,
                "side": pos.side.value,
                "position_side": pos.position_side,
                "amount": float(amount),
                "asset": SETTLE,
                "margin_after": margin,
                "wallet_after": self.account(api_key).wallet.get(SETTLE, 0.0),
            }
        )
        return margin

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

    # ---- funding ----

    def pay_funding(self, symbol: str, rate: float) -> dict[str, float]:
        """Settle one funding interval of `symbol` at its mark; returns what each account paid (< 0: received).

        Every holder pays side × notional at the mark × rate (a long pays a positive rate, a short receives
        it). A cross leg settles in the cross wallet; an isolated leg in its own isolated margin, as Binance
        settles it (its ACCOUNT_UPDATE for a FUNDING_FEE in an isolated position carries that position:
        "User Data Streams — Event: Balance and Position Update"); the simulator settles every dialect the same
        way. Each account gets a BalanceChanged and, per isolated leg, a PositionChanged, both with reason
        "funding"; then the liquidation engine looks at it, since a payment can take a leg past liquidation.
        """
        self.market(symbol)
        if not math.isfinite(rate):
            raise EngineError("invalid", f"funding rate must be a finite number, got {rate}")
        self.funding_rates[symbol] = float(rate)
        ts = self.now_ms()
        paid: dict[str, float] = {}
        for api_key in sorted(self._holders.get(symbol, set())):
            account = self.accounts[api_key]
            legs = [p for p in account.positions if p.symbol == symbol]
            for pos in legs:
                amount = pos.side.sign * self.notional(pos) * rate
                paid[api_key] = paid.get(api_key, 0.0) + amount
                account.funding_paid += amount
                if pos.margin_mode is MarginMode.ISOLATED:
                    pos.isolated_margin -= amount
                else:
                    account.wallet[SETTLE] = account.wallet.get(SETTLE, 0.0) - amount
                self.fundings.append(
                    {
                        "ts_ms": ts,
                        "api_key": api_key,
                        "symbol": symbol,
                        "side": pos.side.value,
                        "position_side": pos.position_side,
                        "margin_mode": pos.margin_mode.value,
                        "rate": float(rate),
                        "mark": self.marks[symbol],
                        "amount": amount,
                    }
                )
            self.emit(BalanceChanged(api_key, SETTLE, account.wallet.get(SETTLE, 0.0), "funding", ts))
            for pos in legs:
                if pos.margin_mode is MarginMode.ISOLATED:
                    self._emit_position(account, pos, pos, "funding")
            self.check_account(api_key)
        return paid

    # ---- the oracle ----

    def leg(self, pos: SimPosition) -> Leg:
        """The oracle's view of one position leg."""
        size, taker, max_leverage, inverse = self._market_numbers[pos.symbol]
        isolated = pos.margin_mode is MarginMode.ISOLATED
        return Leg(
            symbol=pos.symbol,
            side=pos.side,
            contracts=dec(pos.contracts),
            contract_size=size,
            entry=dec(pos.entry_price),
            mark=dec(self.marks[pos.symbol]),
            mode=pos.margin_mode,
            brackets=self._brackets[pos.symbol],
            inverse=inverse,
            margin=dec(pos.isolated_margin) if isolated else None,
            taker=taker,
            max_leverage=max_leverage,
        )

    def holdings(self, api_key: str) -> Holdings:
        account = self.account(api_key)
        return Holdings(tuple(self.leg(p) for p in account.positions), dec(account.wallet.get(SETTLE, 0.0)))

    def verdict(self, api_key: str) -> Verdict:
        """The oracle's verdict on the account, memoised on everything it reads."""
        account = self.account(api_key)
        wallet = account.wallet.get(SETTLE, 0.0)
        state = (
            self.margin_call_ratio,
            tuple(
                (
                    p.symbol,
                    p.side,
                    p.contracts,
                    p.entry_price,
                    p.margin_mode,
                    p.isolated_margin,
                    self.marks[p.symbol],
                )
                for p in account.positions
            ),
        )
        key = (wallet, state)
        cached = self._verdicts.get(api_key)
        if cached is not None and cached[0] == key:
            return cached[1]
        verdict = None
        if cached is not None and cached[0][1] == state:  # only the wallet moved: isolated legs ignore it
            verdict = with_wallet(self.rules, cached[1], dec(wallet))
        if verdict is None:
            verdict = evaluate(self.rules, self.holdings(api_key), watch_ratio=self.margin_call_ratio)
        self._verdicts[api_key] = (key, verdict)
        return verdict

    def risk(self, api_key: str) -> AccountRisk:
        """Every leg's figures (core types), in the account's position order, and the account totals."""
        return self.verdict(api_key).risk

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
        """Liquidate every group at or below its maintenance requirement, then check margin calls.

        `only_if_near`: skip the oracle while the account's cached band says no mark can have reached
        liquidation or the margin-call ratio.
        """
        if only_if_near and api_key not in self._margin_called:
            band = self._bands.get(api_key)
            if band is not None and not needs_model(band, self.marks):
                return
        for _ in range(64):  # each pass closes one isolated leg or the cross legs, then looks again
            account = self.accounts.get(api_key)
            if account is None or not account.positions:
                self._margin_called.discard(api_key)
                break
            verdict = self.verdict(api_key)
            failing = next((g for g in verdict.groups if g.margin_left <= 0), None)
            if failing is None:
                self._check_margin_call(api_key, verdict.risk)
                band = band_from(verdict)
                if band is None:
                    self._bands.pop(api_key, None)
                else:
                    self._bands[api_key] = band
                return
            positions = list(account.positions)
            if failing.cross:
                self._liquidate_cross(account, positions, verdict, failing)
            else:
                [index] = failing.legs
                self._liquidate_isolated(account, positions[index], verdict.risk.positions[index], failing)

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

"""Accounts and their positions: opening, closing, margin moves, leverage and mode changes.

`Book` is the bookkeeping half of the simulated exchange; `daemon.sim.engine.Engine` extends it with mark
prices, the margin oracle and the liquidation engine. Every mutation emits its events after the state
has changed, then calls `after_position_change` (the engine re-checks liquidation there).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace

from daemon.core.types import MarginMode, Side
from daemon.sim.markets import Market
from daemon.sim.model import (
    SETTLE,
    BalanceChanged,
    EngineError,
    Event,
    PositionChanged,
    SimAccount,
    SimPosition,
)


class Book:
    def __init__(
        self, markets: Mapping[str, Market] | Iterable[Market], clock: Callable[[], float] = time.time
    ):
        market_map = dict(markets) if isinstance(markets, Mapping) else {m.symbol: m for m in markets}
        self.markets: dict[str, Market] = market_map
        self.clock = clock
        self.marks: dict[str, float] = {s: m.mark for s, m in market_map.items()}
        self.accounts: dict[str, SimAccount] = {}
        self._subscribers: list[Callable[[Event], None]] = []
        self._holders: dict[str, set[str]] = {}  # symbol -> api keys holding a position in it

    # ---- clock, events, look-ups ----

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Deliver every event to `callback` (synchronously, in order); returns an unsubscribe function."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def emit(self, event: Event) -> None:
        for callback in list(self._subscribers):
            callback(event)

    def market(self, symbol: str) -> Market:
        try:
            return self.markets[symbol]
        except KeyError:
            raise EngineError("not_found", f"unknown symbol {symbol}") from None

    def add_account(
        self,
        api_key: str,
        secret: str,
        passphrase: str = "",
        wallet: Mapping[str, float] | None = None,
        hedge_mode: bool = False,
    ) -> SimAccount:
        if api_key in self.accounts:
            raise EngineError("invalid", f"account {api_key} exists")
        account = SimAccount(
            api_key=api_key,
            secret=secret,
            passphrase=passphrase,
            wallet=dict(wallet) if wallet is not None else {SETTLE: 10_000.0},
            hedge_mode=hedge_mode,
        )
        self.accounts[api_key] = account
        return account

    def account_by_key(self, api_key: str) -> SimAccount | None:
        return self.accounts.get(api_key)

    def account(self, api_key: str) -> SimAccount:
        account = self.accounts.get(api_key)
        if account is None:
            raise EngineError("not_found", "unknown api key")
        return account

    def find_position(self, api_key: str, symbol: str, side: Side | None = None) -> SimPosition | None:
        """The leg of `symbol` (in hedge mode `side` picks the leg; in one-way mode it must match if given)."""
        for pos in self.account(api_key).positions:
            if pos.symbol == symbol and (side is None or pos.side is side):
                return pos
        return None

    # ---- arithmetic ----

    def notional(self, pos: SimPosition, price: float | None = None) -> float:
        market = self.markets[pos.symbol]
        return pos.contracts * market.contract_size * (self.marks[pos.symbol] if price is None else price)

    def pnl_at(self, pos: SimPosition, price: float) -> float:
        size = pos.contracts * self.markets[pos.symbol].contract_size
        return pos.side.sign * size * (price - pos.entry_price)

    def unrealized_pnl(self, pos: SimPosition) -> float:
        return self.pnl_at(pos, self.marks[pos.symbol])

    def available_cross(self, account: SimAccount) -> float:
        """What may still leave the cross wallet: wallet + cross losses − cross initial margin."""
        cross = [p for p in account.positions if p.margin_mode is MarginMode.CROSS]
        upnl = sum(self.unrealized_pnl(p) for p in cross)
        initial = sum(self.notional(p) / p.leverage for p in cross)
        return account.wallet.get(SETTLE, 0.0) + min(upnl, 0.0) - initial

    # ---- trading ----

    def open_position(
        self, api_key: str, symbol: str, side: Side, contracts: float, price: float | None = None
    ) -> SimPosition | None:
        """A market fill of `contracts` on `side` at `price` (default: the mark). Returns the leg after it.

        In one-way mode an opposite fill reduces, closes or flips the position. The taker fee is charged
        to the cross wallet; isolated legs take `notional / leverage` out of the wallet as their margin.
        """
        account = self.account(api_key)
        market = self.market(symbol)
        if not contracts > 0:
            raise EngineError("invalid", "contracts must be positive")
        if contracts < market.min_qty:
            raise EngineError("invalid", f"quantity below minimum {market.min_qty}")
        fill = float(price if price is not None else self.marks[symbol])
        if not (fill > 0 and math.isfinite(fill)):
            raise EngineError("invalid", f"fill price must be positive, got {fill}")
        position_side = account.position_side_for(side)
        existing = next(
            (p for p in account.positions if p.symbol == symbol and p.position_side == position_side), None
        )
        if existing is not None and existing.side is not side:
            return self._reduce(account, existing, contracts, fill)
        mode = account.margin_mode_for(symbol)
        leverage = account.leverage_for(symbol)
        added_notional = contracts * market.contract_size * fill
        fee = added_notional * market.taker_fee
        margin = added_notional / leverage
        if self.available_cross(account) < fee + margin:
            raise EngineError("insufficient_balance", "margin is insufficient")
        account.wallet[SETTLE] = account.wallet.get(SETTLE, 0.0) - fee
        account.fees_paid += fee
        ts = self.now_ms()
        if existing is None:
            pos = SimPosition(symbol, side, contracts, fill, mode, leverage, 0.0, position_side, ts)
            account.positions.append(pos)
            self._holders.setdefault(symbol, set()).add(api_key)
            reason = "open"
        else:
            pos = existing
            total = pos.contracts + contracts
            pos.entry_price = (pos.entry_price * pos.contracts + fill * contracts) / total
            pos.contracts = total
            pos.update_time_ms = ts
            reason = "increase"
        if mode is MarginMode.ISOLATED:
            account.wallet[SETTLE] -= margin
            pos.isolated_margin += margin
        self.emit(BalanceChanged(api_key, SETTLE, account.wallet[SETTLE], "fee", ts))
        self._emit_position(account, pos, pos, reason)
        self.after_position_change(api_key)
        return pos

    def close_position(self, api_key: str, symbol: str, side: Side | None = None) -> float:
        """Close the whole leg at the mark; returns the realised PnL (before the fee)."""
        pos = self.find_position(api_key, symbol, side)
        if pos is None:
            raise EngineError("no_position", f"no {symbol} position")
        pnl = self.pnl_at(pos, self.marks[symbol])
        self._reduce(self.account(api_key), pos, pos.contracts, self.marks[symbol])
        return pnl

    def reduce_position(self, api_key: str, symbol: str, side: Side, contracts: float) -> SimPosition | None:
        """A reducing fill of `contracts` on one leg at the mark (hedge mode included, where an opposite order
        would open the other leg instead); never flips. Returns the leg after it (None: closed)."""
        pos = self.find_position(api_key, symbol, side)
        if pos is None:
            raise EngineError("no_position", f"no {symbol} {side.value} position")
        if not contracts > 0:
            raise EngineError("invalid", "contracts must be positive")
        return self._reduce(self.account(api_key), pos, min(contracts, pos.contracts), self.marks[symbol])

    def _reduce(
        self, account: SimAccount, pos: SimPosition, contracts: float, fill: float
    ) -> SimPosition | None:
        market = self.markets[pos.symbol]
        closed = min(contracts, pos.contracts)
        fraction = closed / pos.contracts
        pnl = pos.side.sign * closed * market.contract_size * (fill - pos.entry_price)
        fee = closed * market.contract_size * fill * market.taker_fee
        released = pos.isolated_margin * fraction
        account.wallet[SETTLE] = account.wallet.get(SETTLE, 0.0) + pnl - fee + released
        account.realized_pnl += pnl
        account.fees_paid += fee
        ts = self.now_ms()
        pos.update_time_ms = ts
        remainder = contracts - closed
        if closed >= pos.contracts - 1e-12:
            self._remove(account, pos)
            self.emit(BalanceChanged(account.api_key, SETTLE, account.wallet[SETTLE], "realized_pnl", ts))
            self._emit_position(account, pos, None, "close")
            if remainder > 1e-12:  # one-way flip: the rest opens the other side
                return self.open_position(account.api_key, pos.symbol, _other(pos.side), remainder, fill)
            self.after_position_change(account.api_key)
            return None
        pos.contracts -= closed
        pos.isolated_margin -= released
        self.emit(BalanceChanged(account.api_key, SETTLE, account.wallet[SETTLE], "realized_pnl", ts))
        self._emit_position(account, pos, pos, "reduce")
        self.after_position_change(account.api_key)
        return pos

    def set_position(
        self,
        api_key: str,
        symbol: str,
        side: Side,
        contracts: float,
        entry_price: float | None = None,
        margin_mode: MarginMode | None = None,
        leverage: float | None = None,
        isolated_margin: float | None = None,
    ) -> SimPosition | None:
        """Put a leg in place as given (control API and scenarios): no fill, no fee, wallet untouched.

        `contracts` 0 removes the leg. Isolated margin defaults to `notional at entry / leverage`.
        """
        account = self.account(api_key)
        self.market(symbol)
        _finite("contracts", contracts)
        for name, value in (("entry_price", entry_price), ("isolated_margin", isolated_margin)):
            if value is not None:
                _finite(name, value)
        if entry_price is not None and not entry_price > 0:
            raise EngineError("invalid", "entry_price must be positive")
        if leverage is not None and not (1 <= leverage < math.inf):
            raise EngineError("invalid", "leverage must be at least 1")
        if margin_mode is not None:
            account.margin_mode[symbol] = margin_mode
        if leverage is not None:
            account.leverage[symbol] = float(leverage)
        position_side = account.position_side_for(side)
        existing = next(
            (p for p in account.positions if p.symbol == symbol and p.position_side == position_side), None
        )
        if existing is not None:
            self._remove(account, existing)
        if contracts <= 0:
            if existing is not None:
                self._emit_position(account, existing, None, "set")
                self.after_position_change(api_key)
            return None
        mode = account.margin_mode_for(symbol)
        lev = account.leverage_for(symbol)
        entry = float(entry_price if entry_price is not None else self.marks[symbol])
        pos = SimPosition(symbol, side, float(contracts), entry, mode, lev, 0.0, position_side, self.now_ms())
        if mode is MarginMode.ISOLATED:
            pos.isolated_margin = float(
                isolated_margin if isolated_margin is not None else self.notional(pos, entry) / lev
            )
        account.positions.append(pos)
        self._holders.setdefault(symbol, set()).add(api_key)
        self._emit_position(account, pos, pos, "set")
        self.after_position_change(api_key)
        return pos

    def set_leverage(self, api_key: str, symbol: str, leverage: float) -> None:
        account = self.account(api_key)
        market = self.market(symbol)
        if not leverage >= 1:
            raise EngineError("invalid", "leverage must be at least 1")
        if leverage > market.max_leverage:
            raise EngineError("leverage_too_high", f"max leverage of {symbol} is {market.max_leverage:g}")
        for pos in account.positions:
            if pos.symbol == symbol and leverage > market.tier_for_notional(self.notional(pos)).max_leverage:
                raise EngineError("leverage_too_high", "leverage too high for the position's bracket")
        account.leverage[symbol] = float(leverage)
        for pos in account.positions:
            if pos.symbol == symbol:
                pos.leverage = float(leverage)
                pos.update_time_ms = self.now_ms()
                self._emit_position(account, pos, pos, "leverage")

    def set_margin_mode(self, api_key: str, symbol: str, mode: MarginMode) -> None:
        account = self.account(api_key)
        self.market(symbol)
        if account.margin_mode_for(symbol) is mode:
            raise EngineError("margin_mode_already_set", f"{symbol} is already {mode.value}")
        if any(p.symbol == symbol for p in account.positions):
            raise EngineError("position_open", "cannot change the margin mode with an open position")
        account.margin_mode[symbol] = mode

    def set_hedge_mode(self, api_key: str, on: bool) -> None:
        account = self.account(api_key)
        if account.positions and account.hedge_mode != on:
            raise EngineError("position_open", "cannot change the position mode with open positions")
        account.hedge_mode = on

    def adjust_isolated_margin(self, api_key: str, symbol: str, side: Side | None, amount: float) -> float:
        """Move `amount` into (> 0) or out of (< 0) an isolated leg's margin; returns its new margin."""
        account = self.account(api_key)
        self.market(symbol)
        pos = self.find_position(api_key, symbol, side)
        if pos is None:
            raise EngineError("no_position", f"no {symbol} position")
        if pos.margin_mode is not MarginMode.ISOLATED:
            raise EngineError("not_isolated", "margin can only be adjusted on isolated positions")
        _finite("amount", amount)
        if amount == 0:
            raise EngineError("invalid", "amount must not be zero")
        if amount > 0 and self.available_cross(account) < amount:
            raise EngineError("insufficient_balance", "not enough available balance")
        if amount < 0:
            removable = (
                pos.isolated_margin + min(self.unrealized_pnl(pos), 0.0) - self.notional(pos) / pos.leverage
            )
            if -amount > removable + 1e-9:
                raise EngineError("insufficient_balance", f"at most {max(removable, 0.0):.8f} can be removed")
        account.wallet[SETTLE] = account.wallet.get(SETTLE, 0.0) - amount
        pos.isolated_margin += amount
        ts = self.now_ms()
        pos.update_time_ms = ts
        self.emit(BalanceChanged(api_key, SETTLE, account.wallet[SETTLE], "isolated_margin", ts))
        self._emit_position(account, pos, pos, "margin")
        self.after_position_change(api_key)
        return pos.isolated_margin

    def transfer(self, api_key: str, asset: str, amount: float) -> float:
        """Move `amount` into the futures wallet (negative: out of it); returns the new cross wallet."""
        account = self.account(api_key)
        _finite("amount", amount)
        if amount == 0:
            raise EngineError("invalid", "amount must not be zero")
        if amount < 0:
            available = self.available_cross(account) if asset == SETTLE else account.wallet.get(asset, 0.0)
            if available < -amount:
                raise EngineError("insufficient_balance", "not enough available balance")
        account.wallet[asset] = account.wallet.get(asset, 0.0) + amount
        self.emit(
            BalanceChanged(
                api_key, asset, account.wallet[asset], "deposit" if amount > 0 else "withdraw", self.now_ms()
            )
        )
        # No liquidation check: a deposit only adds margin and a withdrawal is capped at the available balance.
        return account.wallet[asset]

    def set_wallet(self, api_key: str, asset: str, amount: float) -> None:
        account = self.account(api_key)
        _finite("amount", amount)
        account.wallet[asset] = float(amount)
        self.emit(BalanceChanged(api_key, asset, account.wallet[asset], "set", self.now_ms()))
        self.after_position_change(api_key)

    # ---- internals ----

    def after_position_change(self, api_key: str) -> None:
        """Hook: the engine re-runs its liquidation check here."""

    def _remove(self, account: SimAccount, pos: SimPosition) -> None:
        account.positions.remove(pos)
        if not any(p.symbol == pos.symbol for p in account.positions):
            self._holders.get(pos.symbol, set()).discard(account.api_key)

    def _emit_position(
        self, account: SimAccount, pos: SimPosition, current: SimPosition | None, reason: str
    ) -> None:
        self.emit(
            PositionChanged(
                api_key=account.api_key,
                position=replace(current) if current is not None else None,
                reason=reason,
                symbol=pos.symbol,
                side=pos.side,
                position_side=pos.position_side,
                ts_ms=self.now_ms(),
            )
        )


def _finite(name: str, value: float) -> None:
    """Refuse NaN and infinities before they reach the books: the margin oracle would refuse them later,
    after the state had already changed."""
    if not math.isfinite(value):
        raise EngineError("invalid", f"{name} must be a finite number, got {value}")


def _other(side: Side) -> Side:
    return Side.SHORT if side is Side.LONG else Side.LONG

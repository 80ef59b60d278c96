"""Binance's "cr" (pre-fee accumulated realized PnL) per position row, kept from the engine's events.

The engine books realized PnL per account only; Binance reports it per symbol and positionSide in every
ACCOUNT_UPDATE row, and keeps it after the position is closed. Fills happen at the mark (orders, closes)
or at the bankruptcy price (liquidations), so each reduction's PnL follows from the leg before and after.
"""

from __future__ import annotations

from daemon.core.types import Side
from daemon.sim.engine import Engine, Liquidated, PositionChanged, SimPosition

# Engine reasons that mean contracts were traded away (a "set" replaces a leg by decree: no fill).
_FILLS = frozenset({"reduce", "close", "flip", "liquidation"})

RowKey = tuple[str, str, str]  # (api key, symbol, positionSide)


class RealizedLedger:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._legs: dict[RowKey, SimPosition] = {}
        self._totals: dict[RowKey, float] = {}
        self._forced_fills: dict[tuple[str, str, Side], float] = {}

    def on_liquidated(self, event: Liquidated) -> None:
        self._forced_fills[(event.api_key, event.symbol, event.side)] = event.price

    def on_position(self, event: PositionChanged) -> None:
        key = (event.api_key, event.symbol, event.position_side)
        before, after = self._legs.get(key), event.position
        if before is not None and event.reason in _FILLS:
            remaining = after.contracts if after is not None and after.side is before.side else 0.0
            closed = before.contracts - remaining
            forced = self._forced_fills.pop((event.api_key, event.symbol, before.side), None)
            fill = (
                forced
                if forced is not None and event.reason == "liquidation"
                else self.engine.marks[event.symbol]
            )
            if closed > 1e-12:
                size = closed * self.engine.markets[event.symbol].contract_size
                pnl = before.side.sign * size * (fill - before.entry_price)
                self._totals[key] = self._totals.get(key, 0.0) + pnl
        if after is None:
            self._legs.pop(key, None)
        else:
            self._legs[key] = after

    def total(self, api_key: str, symbol: str, position_side: str) -> float:
        return self._totals.get((api_key, symbol, position_side), 0.0)

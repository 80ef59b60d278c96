"""`PositionLedger`: which legs the feed has reported, which the position stream alone has told, and whether a
snapshot shows that stream went deaf; plus the position rows ccxt cached without handing them over.

A push may trail the REST answer that already contains its change, so one disagreement is only a suspicion:
the feed takes a confirmation snapshot shortly after, and only a disagreement that persists declares the stream
deaf. The first snapshot, and the first after a reconnect, set a new baseline (what the stream missed while it
was down is expected).

ccxt caches position rows by symbol and side, so in one-way mode a flip (Binance reports it as one row whose
size changed sign) leaves the old side's row in its cache and hands over only the new side's: read alone, the
stream would keep a leg the exchange no longer has. A one-way row therefore also states that the symbol's
other side is flat.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from daemon.core.events import PositionFacts
from daemon.core.types import Side

LegKey = tuple[str, Side]
RowKey = tuple[Any, ...]  # what tells a ccxt position row apart from another (see `_row_key`)


class Verdict(enum.Enum):
    AGREES = "agrees"
    SUSPECT = "suspect"  # take a confirmation snapshot soon
    DEAF = "deaf"  # the stream missed a change twice running: reconnect it


class PositionLedger:
    def __init__(self) -> None:
        self.held: dict[LegKey, float] = {}  # contracts per open leg, as the feed has reported them
        self._heard: dict[LegKey, float] = {}  # the same, as the position stream alone has told it
        self._suspect = False
        self._rebaseline = True
        self._pushed_until: float = 0.0  # newest position-push timestamp taken from ccxt
        self._taken_at_until: set[RowKey] = set()  # the rows stamped `_pushed_until` already taken
        self.missed = ""  # the legs the last DEAF verdict was about

    @property
    def symbols(self) -> set[str]:
        return {symbol for symbol, _side in self.held}

    def rebaseline(self) -> None:
        """The stream reconnected: the next snapshot is the new reference, whatever it shows."""
        self._rebaseline = True

    def pushed(self, facts: Iterable[PositionFacts]) -> None:
        for legs in (self.held, self._heard):
            for fact in facts:
                key = (fact.symbol, fact.side)
                if fact.contracts == 0.0:
                    legs.pop(key, None)
                else:
                    legs[key] = fact.contracts

    def snapshot_taken(self, facts: Iterable[PositionFacts]) -> None:
        self.held = {(f.symbol, f.side): f.contracts for f in facts if f.contracts != 0.0}

    def judge(self) -> Verdict:
        """After a snapshot (and the pushes it held back): does the stream's account agree with it?"""
        truth = self.held
        differing = sorted(
            f"{symbol} {side.value}"
            for symbol, side in truth.keys() | self._heard.keys()
            if truth.get((symbol, side)) != self._heard.get((symbol, side))
        )
        if not differing or self._rebaseline:
            self._heard, self._suspect, self._rebaseline = dict(truth), False, False
            return Verdict.AGREES
        if not self._suspect:
            self._suspect = True
            return Verdict.SUSPECT
        self._heard, self._suspect = dict(truth), False
        self.missed = ", ".join(differing)
        return Verdict.DEAF

    def with_coalesced(self, client: Any, returned: Sequence[Any]) -> list[Mapping[str, Any]]:
        """The rows a watch returned plus those ccxt cached without handing them over, oldest first, and for
        every symbol whose newest row is one-way, a close of its other side.

        ccxt resolves a waiting watch with the first message of a batch read together; the next messages
        (a second leg liquidated in the same instant) only reach its cache. Cached rows stamped at or after
        the last row seen are taken too, unless they were taken already: the cache is never corrected by the
        snapshots, so a row handed over before may be superseded (the old side of a flipped one-way
        position) and must not be applied again. Older cache entries are never taken.
        """
        since = self._pushed_until
        rows = [row for row in returned if isinstance(row, Mapping)]
        keys = {_row_key(row) for row in rows}
        for row in _cached_position_rows(client):
            stamp, key = _stamp(row), _row_key(row)
            if stamp is None or stamp < since or key in keys or key in self._taken_at_until:
                continue
            keys.add(key)
            rows.append(row)
        rows.sort(key=lambda row: _stamp(row) or 0.0)  # stable: the newest word on a leg comes last
        until = max([since, *(s for s in map(_stamp, rows) if s is not None)])
        if until > since:
            self._taken_at_until = set()
        self._taken_at_until |= {_row_key(row) for row in rows if _stamp(row) == until}
        self._pushed_until = until
        return rows + _one_way_closes(rows)


def _stamp(row: Mapping[str, Any]) -> float | None:
    stamp = row.get("timestamp")
    return float(stamp) if isinstance(stamp, int | float) and not isinstance(stamp, bool) else None


def _row_key(row: Mapping[str, Any]) -> RowKey:
    return (row.get("symbol"), row.get("side"), _stamp(row), row.get("contracts"), row.get("entryPrice"))


def _one_way_closes(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """For each symbol whose newest row is an open one-way position, a row closing its other side.

    Only rows that say they are one-way (`hedged` False) count: in hedge mode both sides live side by side."""
    newest: dict[str, Mapping[str, Any]] = {}
    for row in rows:
        symbol = row.get("symbol")
        if isinstance(symbol, str):
            newest[symbol] = row  # rows are oldest first
    closes: list[Mapping[str, Any]] = []
    for symbol, row in newest.items():
        side = row.get("side")
        contracts = row.get("contracts")
        if row.get("hedged") is not False or side not in (Side.LONG.value, Side.SHORT.value):
            continue
        if not isinstance(contracts, int | float) or contracts == 0:
            continue
        other = Side.SHORT if side == Side.LONG.value else Side.LONG
        closes.append(
            {
                "symbol": symbol,
                "side": other.value,
                "contracts": 0.0,
                "hedged": False,
                "timestamp": row.get("timestamp"),
            }
        )
    return closes


def _cached_position_rows(client: Any) -> list[Mapping[str, Any]]:
    """Every row in ccxt's position cache (one cache, or one per market type as Binance keeps them)."""
    cache = getattr(client, "positions", None)
    caches = [c for c in cache.values() if isinstance(c, list)] if isinstance(cache, dict) else [cache]
    return [row for rows in caches if isinstance(rows, list) for row in rows if isinstance(row, Mapping)]

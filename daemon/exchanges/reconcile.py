"""`PositionLedger`: which legs the feed has reported, which the position stream alone has told, and whether a
snapshot shows that stream went deaf; plus the position rows ccxt cached without handing them over.

A push may trail the REST answer that already contains its change, so one disagreement is only a suspicion:
the feed takes a confirmation snapshot shortly after, and only a disagreement that persists declares the stream
deaf. The first snapshot, and the first after a reconnect, set a new baseline (what the stream missed while it
was down is expected).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from daemon.core.events import PositionFacts
from daemon.core.types import Side

LegKey = tuple[str, Side]


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
        """The rows a watch returned plus those ccxt cached without handing them over.

        ccxt resolves a waiting watch with the first message of a batch read together; the next messages
        (a second leg liquidated in the same instant) only reach its cache. Cached rows stamped at or after
        the last row seen are taken too (re-applying one is harmless); older cache entries are not, since
        the cache is never corrected by the snapshots and may be stale.
        """
        rows = [row for row in returned if isinstance(row, Mapping)]
        taken = {id(row) for row in rows}
        since = self._pushed_until
        for row in _cached_position_rows(client):
            stamp = row.get("timestamp")
            if id(row) not in taken and isinstance(stamp, int | float) and stamp >= since:
                rows.append(row)
                taken.add(id(row))
        stamps = [row["timestamp"] for row in rows if isinstance(row.get("timestamp"), int | float)]
        self._pushed_until = max([since, *stamps])
        return rows


def _cached_position_rows(client: Any) -> list[Mapping[str, Any]]:
    """Every row in ccxt's position cache (one cache, or one per market type as Binance keeps them)."""
    cache = getattr(client, "positions", None)
    caches = [c for c in cache.values() if isinstance(c, list)] if isinstance(cache, dict) else [cache]
    return [row for rows in caches if isinstance(rows, list) for row in rows if isinstance(row, Mapping)]

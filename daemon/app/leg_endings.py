"""How a leg that left the picture ended, asked of the exchange's own records before the policy says anything.

A leg that closes or vanishes may have been liquidated even though its last judged distance was far from the
trigger (the mark gapped straight through the liquidation price). Its last distance is no evidence, so the
runner holds such a leg's change back from the policy and asks the exchange's liquidation records:

- a liquidation of the leg on record -> `LegLiquidated` (told as a liquidation, never an all-clear);
- the records read and no liquidation, once `settle_s` has passed since the leg went (an exchange may write
  its record a moment after the position is gone) -> `LegGone(OWNER)` (told as closed);
- the records cannot be read (errors, timeouts) for `deadline_s` -> `LegGone(UNKNOWN)` (a warning);
- the venue keeps no records marginguard reads (`liquidations` answers None) -> the change is passed on as it
  came, and the policy falls back to the leg's last distance.

Each liquidation record explains one leg ending only once. Nothing here runs a task of its own: the runner asks
on its steps (`ask`), and `asking` tells the policy which legs not to judge meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog

from daemon.core.events import Event, GoneCause, LegGone, LegLiquidated
from daemon.core.state import AccountState, Change, ChangeKind, apply
from daemon.core.types import Side
from daemon.exchanges.errors import ExchangeError, said
from daemon.exchanges.records import AccountRecords, LiquidationRecord

log = structlog.get_logger("marginguard.runner")

SETTLE_S = 3.0
DEADLINE_S = 30.0
# Records stamped up to this long before the leg was seen to go count (the exchange's clock, pushes that lag).
LOOKBACK_S = 120.0
# For a leg found gone after a restart: it may have gone any time while marginguard was down.
RESTART_LOOKBACK_S = 24 * 3600.0
# A read that takes longer is given up for this step (alerts wait on it); just above ccxt's own timeout.
READ_TIMEOUT_S = 12.0
_RETRY_S, _RETRY_MAX_S = 1.0, 5.0
_GONE = (ChangeKind.CLOSED, ChangeKind.VANISHED)

LegKey = tuple[str, Side]


@dataclass
class _Asked:
    change: Change  # as the state reported it: passed on unchanged where the venue keeps no records
    since: float  # when the runner saw the leg go (its clock)
    next_try: float
    lookback_s: float = LOOKBACK_S
    failures: int = 0
    error: str = ""


class LegEndings:
    def __init__(
        self,
        clock: Callable[[], float],
        settle_s: float = SETTLE_S,
        deadline_s: float = DEADLINE_S,
        read_timeout_s: float = READ_TIMEOUT_S,
    ) -> None:
        self.clock = clock
        self.settle_s = settle_s
        self.deadline_s = deadline_s
        self.read_timeout_s = read_timeout_s
        self._asked: dict[LegKey, _Asked] = {}
        self._used: set[tuple[str, Side, int]] = set()  # liquidation records that already explained a leg
        self._no_records = False  # the venue keeps none that marginguard reads

    @property
    def asking(self) -> list[LegKey]:
        return list(self._asked)

    @property
    def any_asking(self) -> bool:
        """Whether `asking` has any leg, without building it (asked at every mark)."""
        return bool(self._asked)

    def hold(self, changes: Sequence[Change], lookback_s: float = LOOKBACK_S) -> list[Change]:
        """The changes the policy may judge now; a leg that closed or vanished is held back to be asked about.
        `lookback_s`: how long before now its liquidation may have happened (longer for a leg that went while
        marginguard was down)."""
        if self._no_records:
            return list(changes)
        now = self.clock()
        passed = []
        for change in changes:
            if change.kind in _GONE:
                key = (change.symbol, change.side)
                self._asked.setdefault(key, _Asked(change, now, now, lookback_s))
            else:
                passed.append(change)
        return passed

    async def ask(self, records: AccountRecords, state: AccountState) -> list[Change]:
        """Ask the records about the legs due for a look; the changes that tell how those legs ended."""
        now = self.clock()
        due = [key for key, asked in self._asked.items() if now >= asked.next_try]
        if not due:
            return []
        since_ms = int(min(self._asked[key].since - self._asked[key].lookback_s for key in due) * 1000)
        try:
            symbols = sorted({symbol for symbol, _side in due})
            async with asyncio.timeout(
                self.read_timeout_s
            ):  # not wait_for: see tests/unit/test_cancellation.py
                found = await records.liquidations(since_ms, symbols)
        except (ExchangeError, TimeoutError) as exc:
            return self._unanswered(due, now, said(exc), state)
        if found is None:
            self._no_records = True
            return [self._asked.pop(key).change for key in due]
        events: list[Event] = []
        for key in due:
            asked = self._asked[key]
            record = self._match(key, asked, found)
            if record is not None:
                self._used.add((record.symbol, record.side, record.ts_ms))
                del self._asked[key]
                events.append(
                    LegLiquidated(
                        record.symbol,
                        record.side,
                        record.contracts,
                        record.price,
                        record.ts_ms,
                        record.source,
                    )
                )
            elif now >= asked.since + self.settle_s:
                del self._asked[key]
                events.append(LegGone(key[0], key[1], GoneCause.OWNER, int(now * 1000)))
            else:  # too early for "no": the exchange may not have written its record yet; ask once more when
                # the settle time is up, not every second meanwhile (each read takes from the request budget that
                # the account's reconnects, snapshots and top-ups share)
                asked.next_try = max(now + _RETRY_S, asked.since + self.settle_s)
        return _fold(state, events)

    def _match(
        self, key: LegKey, asked: _Asked, found: Sequence[LiquidationRecord]
    ) -> LiquidationRecord | None:
        earliest_ms = (asked.since - asked.lookback_s) * 1000
        for record in reversed(found):  # the latest: an older one may be the leg's previous life
            if (
                (record.symbol, record.side) == key
                and record.ts_ms >= earliest_ms
                and (record.symbol, record.side, record.ts_ms) not in self._used
            ):
                return record
        return None

    def _unanswered(self, due: list[LegKey], now: float, error: str, state: AccountState) -> list[Change]:
        events: list[Event] = []
        for key in due:
            asked = self._asked[key]
            asked.failures += 1
            asked.error = error
            if now >= asked.since + self.deadline_s:
                del self._asked[key]
                events.append(LegGone(key[0], key[1], GoneCause.UNKNOWN, int(now * 1000), error))
            else:
                backoff = min(_RETRY_S * 2 ** (asked.failures - 1), _RETRY_MAX_S)
                # Never later than the deadline: a last try there, before the cause is told unknown.
                asked.next_try = min(now + backoff, asked.since + self.deadline_s)
        log.warning("liquidation records unavailable", legs=[f"{s} {d.value}" for s, d in due], error=error)
        return _fold(state, events)


def _fold(state: AccountState, events: list[Event]) -> list[Change]:
    """The changes the core's fold makes of the records' answers (the legs themselves stand as they are)."""
    changes: list[Change] = []
    for event in events:
        changes.extend(apply(state, event)[1])
    return changes

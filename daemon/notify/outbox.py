"""The delivery worker: sends the journal's pending deliveries to their sinks, durably and in order.

At-least-once with dedupe: an alert and one delivery row per sink are journaled (once) before anything is sent;
a delivery is marked sent right after its receiver accepted it. A crash between the two re-sends that one
message after the restart, with the same idempotency key, so the receiver can drop the repeat; nothing is lost,
because pending rows are simply read again.

When the journal cannot be written (a full disk), alerts are held in memory and sent from there; the outbox tells
every sink once (a critical journal_failure alert), tries the journal again every few seconds, and sends the
all-clear once it can be written.

Per sink strictly in order: when a sink answers "rate limited" or is unreachable, its delivery is re-scheduled
(honouring the receiver's retry_after, otherwise a capped, jittered backoff by attempt count) and its later
alerts wait behind it — the journal holds them back. A permanent refusal is recorded as failed and the next
alert goes on. Sinks don't wait for each other: one pass sends to every sink concurrently.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import structlog

from daemon.core.alerts import JOURNAL_IDENTITY, Alert, journal_failure_alert
from daemon.core.backoff import Backoff
from daemon.notify.sink import Failed, Outcome, Picture, RetryAfter, Sent, Sink, Transient

# A receiver asking for a longer pause than this is retried after this long anyway (and asked again).
MAX_RETRY_AFTER = 3600.0
BATCH = 100  # deliveries read from the journal per pass
JOURNAL_PROBE_S = 5.0  # while the journal cannot be written, try it again this often

DEFAULT_BACKOFF = Backoff(initial=2.0, factor=2.0, cap=300.0, floor=0.5)

log = structlog.get_logger("marginguard.notify.outbox")


class DeliveryLike(Protocol):
    @property
    def id(self) -> int: ...

    @property
    def sink(self) -> str: ...

    @property
    def attempts(self) -> int: ...

    @property
    def alert(self) -> Alert: ...

    @property
    def alert_id(self) -> int: ...

    @property
    def chart(self) -> bytes | None: ...


class OutboxJournal(Protocol):
    """The part of the journal port (daemon.store.JournalPort) the outbox uses."""

    async def due_deliveries(self, now: float, limit: int = ...) -> Sequence[DeliveryLike]: ...

    async def next_delivery_time(self) -> float | None: ...

    async def mark_sent(self, delivery_id: int, now: float) -> None: ...

    async def mark_retry(self, delivery_id: int, next_attempt_at: float, error: str) -> None: ...

    async def mark_failed(self, delivery_id: int, error: str) -> None: ...

    async def pending_deliveries(self) -> int: ...

    @property
    def write_failure(self) -> str | None: ...

    async def probe(self) -> bool: ...

    async def record_alert(self, alert: Alert, sinks: Sequence[str], now: float) -> Alert | None: ...

    async def max_sequences(self, account: str | None = None) -> dict[str, int]: ...


# How an attempt's outcome is counted (the `marginguard_deliveries_total` metric's `outcome` label).
OUTCOME_NAMES: dict[type, str] = {
    Sent: "sent",
    Failed: "refused",
    RetryAfter: "rate_limited",
    Transient: "failed",
}


class Outbox:
    """Delivers journaled alerts. `clock` is the journal's time (unix seconds); waits are in real seconds."""

    def __init__(
        self,
        journal: OutboxJournal,
        sinks: Mapping[str, Sink],
        clock: Callable[[], float] = time.time,
        backoff: Backoff = DEFAULT_BACKOFF,
        draw: Callable[[], float] = random.random,
        attempted: Callable[[str, str], None] | None = None,
    ) -> None:
        self.journal = journal
        # Whether this process may still deliver a message now (a cluster instance: only while it holds the
        # account's shard, asked again just before each request; a message it may not send waits in the journal
        # for the shard's owner).
        self.may_deliver: Callable[[Alert], bool] = lambda alert: True
        self.attempted = attempted  # told (sink, "sent" | "refused" | "rate_limited" | "failed") per attempt
        self.sinks = dict(sinks)
        self.clock = clock
        self.backoff = backoff
        self.draw = draw
        self._wake = asyncio.Event()
        # One pass at a time: `flush` at shutdown must not send what a still-running pass is sending.
        self._pass_lock = asyncio.Lock()
        self._stopping = False
        self._told_failure: str | None = None  # the journal failure the sinks were told about
        # The journal_failure messages' last number, read from the journal the first time one is needed.
        self._journal_sequence: int | None = None

    def notify(self) -> None:
        """A new alert was journaled: send it now rather than at the next scheduled wake-up."""
        self._wake.set()

    def stop(self) -> None:
        """Shutdown: `run` returns once the pass under way is done. A request in flight is answered and its outcome
        journaled: cut off, it would stay pending and go out a second time (the flush, or the next start)."""
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Deliver until `stop` (or cancelled): each pass sends what is due, then sleeps until the next due time or
        notify()."""
        while not self._stopping:
            self._wake.clear()
            await self.watch_journal()
            handled = await self.send_due()
            if self._stopping:
                return
            delay = await self._seconds_until_next()
            if delay is not None and delay <= 0 and handled == 0:
                delay = self.backoff.floor  # something is due yet nothing could be tried: never spin
            if self.journal.write_failure is not None:
                delay = JOURNAL_PROBE_S if delay is None else min(delay, JOURNAL_PROBE_S)
            if delay is None:
                await self._wake.wait()
            elif delay > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):  # not wait_for: see tests/unit/test_cancellation.py
                        await self._wake.wait()

    # The shutdown path calls this with its remaining budget; a parameter reads better there than a wrapper.
    async def flush(self, timeout: float) -> int:  # noqa: ASYNC109
        """Send everything due now, for at most `timeout` seconds (shutdown). Returns how many stay pending —
        they are in the journal and go out after the next start."""
        try:
            async with asyncio.timeout(timeout):
                while await self.send_due():
                    delay = await self._seconds_until_next()
                    if delay is None or delay > 0:
                        break
        except TimeoutError:
            log.warning("outbox flush timed out", timeout_s=timeout)
        pending = await self.journal.pending_deliveries()
        if pending:
            log.info("alerts left for the next start", pending=pending)
        return pending

    async def watch_journal(self) -> None:
        """Tell every sink when the journal stops (and starts again) being writable; while it is not, try it."""
        if self.journal.write_failure is not None:
            await self.journal.probe()
        failure = self.journal.write_failure
        if (failure is None) == (self._told_failure is None):
            return
        if self._journal_sequence is None:
            self._journal_sequence = (await self.journal.max_sequences()).get(JOURNAL_IDENTITY.key, 0)
        self._journal_sequence += 1
        alert = journal_failure_alert(failure, self._journal_sequence, self.clock())
        await self.journal.record_alert(alert, list(self.sinks), self.clock())
        self._told_failure = failure
        if failure is not None:
            log.error("journal cannot be written: sinks told", reason=failure)
        else:
            log.info("journal writable again: sinks told")

    async def send_due(self) -> int:
        """One pass: every sink sends its due deliveries in order until one must wait.

        Returns how many deliveries were settled or attempted (0: nothing was due)."""
        async with self._pass_lock:
            due = await self.journal.due_deliveries(self.clock(), BATCH)
            by_sink: dict[str, list[DeliveryLike]] = {}
            for delivery in due:
                by_sink.setdefault(delivery.sink, []).append(delivery)
            async with asyncio.TaskGroup() as group:
                tasks = [
                    group.create_task(self._send_in_order(name, queue)) for name, queue in by_sink.items()
                ]
            return sum(task.result() for task in tasks)

    async def _seconds_until_next(self) -> float | None:
        when = await self.journal.next_delivery_time()
        return None if when is None else when - self.clock()

    async def _send_in_order(self, sink_name: str, queue: list[DeliveryLike]) -> int:
        sink = self.sinks.get(sink_name)
        if sink is None:
            for delivery in queue:
                await self.journal.mark_failed(delivery.id, f"sink {sink_name!r} is no longer configured")
            log.warning("alerts for an unconfigured sink dropped", sink=sink_name, count=len(queue))
            return len(queue)
        attempts = 0
        for delivery in queue:
            if not self.may_deliver(delivery.alert):
                break  # the shard moved on while this pass ran: the new owner sends it, in order
            attempts += 1
            outcome = await self._attempt(sink, delivery)
            if not await self._record(delivery, outcome):
                break  # this sink must wait; its later alerts stay behind this one
        return attempts

    async def _attempt(self, sink: Sink, delivery: DeliveryLike) -> Outcome:
        # The message's incident chart, when one was stored in time for it (the journal decides, once).
        picture = None if delivery.chart is None else Picture(delivery.chart, delivery.alert_id)
        try:
            return await sink.send(delivery.alert, picture)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a sink bug must not stop delivery to the others; retry it like an outage
            log.error("sink raised", sink=sink.name, error_type=type(exc).__name__)
            return Transient(f"sink raised {type(exc).__name__}")

    async def _record(self, delivery: DeliveryLike, outcome: Outcome) -> bool:
        """Journal the outcome; True when the sink may go on with its next alert."""
        if self.attempted is not None:
            self.attempted(delivery.sink, OUTCOME_NAMES[type(outcome)])
        now = self.clock()
        fields: dict[str, Any] = {"sink": delivery.sink, "key": delivery.alert.identity.key}
        fields["sequence"] = delivery.alert.sequence
        match outcome:
            case Sent():
                await self.journal.mark_sent(delivery.id, now)
                log.info("alert delivered", **fields, attempts=delivery.attempts + 1)
                return True
            case Failed(reason=reason):
                await self.journal.mark_failed(delivery.id, reason)
                log.error("alert refused by sink, giving up", **fields, reason=reason)
                return True
            case RetryAfter(seconds=seconds, reason=reason):
                wait = min(max(seconds, self.backoff.floor), MAX_RETRY_AFTER)
                await self.journal.mark_retry(delivery.id, now + wait, f"rate limited: {reason}")
                log.warning("sink rate limited", **fields, retry_in_s=round(wait, 3))
                return False
            case Transient(reason=reason):
                wait = self.backoff.delay(delivery.attempts, self.draw())
                await self.journal.mark_retry(delivery.id, now + wait, reason)
                log.warning(
                    "alert delivery failed, will retry", **fields, reason=reason, retry_in_s=round(wait, 3)
                )
                return False
        raise AssertionError(f"unknown outcome {outcome!r}")

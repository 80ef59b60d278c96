"""What an account's runner (`AccountRunner`, in `runner.py`) journals: each alert with the memory that numbered
it, and the memory when what a restart needs of it has changed."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import structlog

from daemon.app.http import Metrics
from daemon.app.incident_charts import ChartRenderer
from daemon.app.runner_topups import TopUpSteps
from daemon.core.alerts import Alert
from daemon.core.incident import IncidentRecorder
from daemon.core.policy_memory import PolicyMemory
from daemon.store import JournalPort
from daemon.store.memory_codec import memory_from_json, memory_to_json

log = structlog.get_logger("marginguard.runner")


class JournalSteps(TopUpSteps):
    """Stubs of what `AccountRunner` gives."""

    journal: JournalPort
    metrics: Metrics
    incidents: IncidentRecorder
    charts: ChartRenderer | None
    wake_outbox: Callable[[], None]
    _saved: tuple[object, ...]
    _unsaved: bool

    async def _emit(self, alerts: Sequence[Alert], now: float) -> None:
        """Journal each alert together with the memory that numbered it (one transaction: no crash can leave a
        sent message whose number a later one reuses), then wake the outbox."""
        if not alerts:
            return
        memory = (self.account_id, memory_to_json(self._memory))
        for alert in alerts:
            sinks = self.config.sinks_for(alert)
            chart = self.incidents.chart_for(alert, now)
            deadline, hold = now, {}
            if chart is not None and self.charts is not None and self.journal.write_failure is None:
                deadline = now + self.charts.hold_s  # chart-showing sinks wait this long for it, no longer
                hold = {sink: deadline for sink in sinks if sink in self.config.chart_sinks}
            stored = await self.journal.record_alert(alert, sinks, now, memory, hold)
            if stored is None:
                continue
            if deadline > now and chart is not None and self.charts is not None:
                self.charts.request(stored, chart, deadline)
            # Renumbered: its number was taken (the journal said so, loudly).
            if stored.sequence != alert.sequence:
                self._memory = self._memory.numbered_at_least({stored.identity.key: stored.sequence})
            state = "resolved" if alert.resolved else "firing"
            self.metrics.alerts.labels(self.account_id, alert.kind.value, alert.severity.value, state).inc()
            log.info(
                "alert",
                account=self.account_id,
                kind=alert.kind.value,
                severity=alert.severity.value,
                state=state,
                summary=alert.summary,
                sinks=sinks,
            )
        if self.journal.write_failure is None:
            self._saved = durable(self._memory)
        self.wake_outbox()

    async def _save_memory(self, now: float) -> None:
        """Persist the memory when what a restart needs has changed: message counters, episodes, what receivers
        were told. Figures and threshold timers move with every mark; writing them each tick would cost an
        fsync per update per account, and after a restart they are rebuilt within one tick anyway."""
        kept = durable(self._memory)
        if kept != self._saved and await self.journal.save_memory(
            self.account_id, memory_to_json(self._memory), now
        ):
            self._saved = kept
        # Not saved (a full disk, say): every later update takes a step, which tries again.
        self._unsaved = kept != self._saved

    async def _load_memory(self) -> PolicyMemory:
        """The saved memory, its message counters raised to what the journal holds (a memory saved before its
        last messages, or lost with a journal, must not number a new message like an old one)."""
        text = await self.journal.load_memory(self.account_id)
        memory = PolicyMemory() if text is None else memory_from_json(text)
        return memory.numbered_at_least(await self.journal.max_sequences(self.account_id))


def durable(memory: PolicyMemory) -> tuple[object, ...]:
    """The part of the policy's memory a restart must not lose."""
    told = {key: (track.notified, track.last_sent, track.episode) for key, track in memory.tracks.items()}
    return (memory.sequences, memory.episodes, memory.notices, told)

"""Marks an account's runner (`AccountRunner`, in `runner.py`) decides within a quiet band: after each decision
that left every track at rest, the band (`core.quiet_band`) says how far the marks may move before the policy
could decide anything but new figures; a mark inside it is decided without the model or the policy, and the
next decision that runs carries its figures."""

from __future__ import annotations

import asyncio

from daemon.app.distance_history import DistanceHistory
from daemon.app.runner_gauges import GaugeSteps
from daemon.core.policy_memory import PolicyMemory
from daemon.core.quiet_band import QuietBand, quiet_band
from daemon.core.state import AccountState, LegKey
from daemon.core.view import AccountView, LegView
from daemon.exchanges import mark_trace


class QuietSteps(GaugeSteps):
    """Stubs of what `AccountRunner` gives."""

    distance_history: DistanceHistory
    _memory: PolicyMemory
    _decided: dict[LegKey, LegView]
    _band: QuietBand | None
    _marks_moved: set[str]
    _point_due: bool
    quiet_decisions: int

    def _decided_on(self, view: AccountView) -> None:
        """What the next decision compares with, the quiet band around it (after `self._memory` is the memory
        decided), and the benchmarks' trace of this one."""
        self._decided = {leg.key: leg for leg in view.legs}
        self._marks_moved.clear()
        assert self.connector is not None
        # With automatic top-ups on, every mark takes the full step (the top-up policy judges it): no band.
        self._band = None
        if self.config.limits is None:
            connector = self.connector
            rules = self.config.rules
            self._band = quiet_band(view, connector.leeways(), connector.cross_balance(), rules, self._memory)
        if mark_trace.TRACE is not None:  # benchmarks only (off by default)
            legs = [(leg.key[0], leg.mark_price) for leg in view.legs]
            mark_trace.TRACE.decided(self.account_id, legs, self.hub.client)

    def _quiet(self, state: AccountState, now: float) -> bool:
        """Whether the marks that came in since the last decision stay within its quiet band: then the policy
        would only carry new figures (the next decision that runs does), so the policy does not run, and the
        model only when a chart or sparkline wants its next point (a few seconds apart)."""
        band = self._band
        if band is None or self._unsaved:
            return False  # no band; or the memory's last save failed, and the full step tries it again
        marks = state.marks
        for symbol in self._marks_moved:
            mark = marks.get(symbol)
            if mark is None or not band.move(symbol, mark.price):
                self._band = None  # spent: the next decision builds a new one
                return False
        if (self.incidents.trail.due(now) or self.distance_history.due(now)) and not self._point_due:
            # A chart's or sparkline's next point (a few seconds apart) needs the figures, not a decision: taken
            # once the event loop has delivered what came with this mark (a burst decided for every account).
            self._point_due = True
            asyncio.get_running_loop().call_soon(self._take_point)
        if mark_trace.TRACE is not None:  # benchmarks only (off by default)
            moved = [(symbol, marks[symbol].price) for symbol in self._marks_moved]
            mark_trace.TRACE.decided(self.account_id, moved, self.hub.client)
        self._marks_moved.clear()
        self.quiet_decisions += 1
        return True

    def _take_point(self) -> None:
        """The figures for the charts' and sparklines' next point, where no decision took them meanwhile."""
        self._point_due = False
        connector, now = self.connector, self.clock()
        if connector is None or not (self.incidents.trail.due(now) or self.distance_history.due(now)):
            return
        view = connector.view
        self.incidents.record(now, view)
        self.distance_history.record(now, view)

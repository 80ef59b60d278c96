"""One account's gauges and counters on /metrics: the legs' and the account's figures written when Prometheus
scrapes (from the latest view), the streams' health on change after each of its runner's steps.

Unknown figures are absent, never a reassuring number; a leg's series go when the leg closes, so labels stay
bounded by the legs held. A stream's outages are counted on the edge into DOWN or STALE (each one is
reconnected), not per step spent there. Only what changed is written: a leg's gauges when its `LegView` is a new
object (the connector's live view keeps unmoved legs' objects), the health gauges when the health did; stream
ages, which move with the clock alone, are read when Prometheus scrapes (`track_ages`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping

from prometheus_client import Gauge

from daemon.app.http import Metrics
from daemon.core.events import Freshness
from daemon.core.state import AccountState
from daemon.core.view import AccountView, LegView

_OUT = (Freshness.DOWN, Freshness.STALE)
# A leg with nothing written yet: no value equals it, so each gauge is written (or removed) once.
_NOTHING: tuple[object, object, object] = (object(), object(), object())


class AccountMetrics:
    def __init__(self, metrics: Metrics, account_id: str) -> None:
        self.metrics = metrics
        self.account_id = account_id
        self._legs: set[tuple[str, str]] = set()  # (symbol, side) with series published
        self._freshness: dict[str, Freshness] = {}
        self._published: dict[tuple[str, str], LegView] = {}  # what each leg's gauges show
        # (distance, margin ratio, liquidation price) as written for each leg (None: the series is absent)
        self._written: dict[tuple[str, str], tuple[float | None, float | None, float | None]] = {}
        self._account_written: tuple[object, ...] = _NOTHING  # (positions, min distance, unknown legs)
        # The labelled series this account writes, kept so that a write is no look-up by labels.
        self._children: dict[tuple[Gauge, tuple[str, ...]], Gauge] = {}
        self._view: AccountView | None = None
        self._health: object = None
        self._ages: dict[str, float] = {}  # stream -> its age at the last scrape (held while it reads None)

    def publish(
        self,
        state: AccountState,
        view: AccountView,
        private_ages: Mapping[str, float] | None = None,
        mark_age: Callable[[str], float | None] | None = None,
    ) -> None:
        """Write what changed since the last call. Ages given here are written now (otherwise `track_ages`
        has them read at scrape time)."""
        m, account = self.metrics, self.account_id
        if view is not self._view:
            self._view = view
            self._publish_account(view)
        self.publish_health(state)
        for name, age in (private_ages or {}).items():
            m.stream_age.labels(account, name).set(age)
        if mark_age is not None:
            for symbol in {leg.key[0] for leg in view.legs}:
                seconds = mark_age(symbol)
                if seconds is not None:
                    m.stream_age.labels(account, f"mark:{symbol}").set(seconds)

    def track_ages(self, names: Iterable[str], read: Callable[[str], float | None]) -> None:
        """Have each stream's age read by `read(name)` when Prometheus scrapes (the last value it gave while it
        gives None); a name is added once it first reads a value."""
        for name in names:
            if name in self._ages:
                continue
            age = read(name)
            if age is None:
                continue
            self._ages[name] = age

            def value(name: str = name) -> float:
                seconds = read(name)
                if seconds is not None:
                    self._ages[name] = seconds
                return self._ages[name]

            self.metrics.stream_age.labels(self.account_id, name).set_function(value)

    def _publish_account(self, view: AccountView) -> None:
        m, account = self.metrics, self.account_id
        distances = [
            leg.risk.distance_to_liquidation
            for leg in view.legs
            if leg.risk is not None and leg.risk.distance_to_liquidation is not None
        ]
        values = (
            float(len(view.legs)),
            min(distances) if distances else None,
            float(sum(1 for leg in view.legs if leg.risk is None)),
        )
        gauges = (m.positions, m.min_distance, m.unknown_legs)
        for gauge, value, old in zip(gauges, values, self._account_written, strict=True):
            self._write(gauge, (account,), value, old)
        self._account_written = values
        self._publish_legs(view)

    def publish_health(self, state: AccountState) -> None:
        """The streams' gauges and outage counts, when the health changed (each outage is counted on its edge,
        so this runs at every step, not only at scrapes)."""
        if state.health is self._health:
            return
        self._health = state.health
        m, account = self.metrics, self.account_id
        for name, health in state.health.items():
            m.stream_stale.labels(account, name).set(0 if health.freshness is Freshness.FRESH else 1)
            before = self._freshness.get(name)
            if health.freshness in _OUT and before not in _OUT:
                m.stream_outages.labels(account, name).inc()
            self._freshness[name] = health.freshness

    def _publish_legs(self, view: AccountView) -> None:
        m, account = self.metrics, self.account_id
        held = set()
        published, written = self._published, self._written
        for leg in view.legs:
            symbol, side = leg.key[0], leg.key[1].value
            held.add((symbol, side))
            if published.get((symbol, side)) is leg:
                continue  # the same figures as written last time
            published[(symbol, side)] = leg
            risk = leg.risk
            values = (
                (None, None, None)
                if risk is None
                else (risk.distance_to_liquidation, risk.margin_ratio, risk.liquidation_price)
            )
            before = written.get((symbol, side), _NOTHING)
            labels = (account, symbol, side)
            for gauge, value, old in zip(
                (m.leg_distance, m.leg_margin_ratio, m.leg_liquidation_price), values, before, strict=True
            ):
                self._write(gauge, labels, value, old)
            written[(symbol, side)] = values
        for symbol, side in self._legs - held:
            published.pop((symbol, side), None)
            written.pop((symbol, side), None)
            for gauge in (m.leg_distance, m.leg_margin_ratio, m.leg_liquidation_price):
                self._remove(gauge, account, symbol, side)
        self._legs = held

    def _write(self, gauge: Gauge, labels: tuple[str, ...], value: float | None, old: object) -> None:
        """Set the series to `value` (None: remove it) unless it shows `old`, the value written last, already
        (an isolated leg's liquidation price stays put). The labelled series is kept, not looked up again."""
        if value is old or (value == old and value != 0.0):  # (0.0 == -0.0, but they read apart)
            return
        if value is None:
            self._remove(gauge, *labels)
            return
        child = self._children.get((gauge, labels))
        if child is None:
            child = self._children[(gauge, labels)] = gauge.labels(*labels)
        child.set(value)

    def _remove(self, gauge: Gauge, *labels: str) -> None:
        self._children.pop((gauge, labels), None)
        with contextlib.suppress(KeyError):
            gauge.remove(*labels)

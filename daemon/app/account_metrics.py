"""One account's gauges and counters on /metrics, refreshed on change after its runner's steps.

Unknown figures are absent, never a reassuring number; a leg's series go when the leg closes, so labels stay
bounded by the legs held. A stream's outages are counted on the edge into DOWN or STALE (each one is
reconnected), not per step spent there. Only what changed is written: a leg's gauges when its `LegView` is a new
object (the connector's live view keeps unmoved legs' objects), the health gauges when the health did; stream
ages, which move with the clock alone, are read when Prometheus scrapes (`track_ages`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping

from daemon.app.http import Metrics
from daemon.core.events import Freshness
from daemon.core.state import AccountState
from daemon.core.view import AccountView, LegView

_OUT = (Freshness.DOWN, Freshness.STALE)


class AccountMetrics:
    def __init__(self, metrics: Metrics, account_id: str) -> None:
        self.metrics = metrics
        self.account_id = account_id
        self._legs: set[tuple[str, str]] = set()  # (symbol, side) with series published
        self._freshness: dict[str, Freshness] = {}
        self._published: dict[tuple[str, str], LegView] = {}  # what each leg's gauges show
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
        if state.health is not self._health:
            self._health = state.health
            self._publish_health(state)
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
        m.positions.labels(account).set(len(view.legs))
        distances = [
            leg.risk.distance_to_liquidation
            for leg in view.legs
            if leg.risk is not None and leg.risk.distance_to_liquidation is not None
        ]
        if distances:
            m.min_distance.labels(account).set(min(distances))
        else:
            self._remove(m.min_distance, account)
        m.unknown_legs.labels(account).set(sum(1 for leg in view.legs if leg.risk is None))
        self._publish_legs(view)

    def _publish_health(self, state: AccountState) -> None:
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
        published = self._published
        for leg in view.legs:
            symbol, side = leg.key[0], leg.key[1].value
            held.add((symbol, side))
            if published.get((symbol, side)) is leg:
                continue  # the same figures as written last time
            published[(symbol, side)] = leg
            risk = leg.risk
            for gauge, value in (
                (m.leg_distance, None if risk is None else risk.distance_to_liquidation),
                (m.leg_margin_ratio, None if risk is None else risk.margin_ratio),
                (m.leg_liquidation_price, None if risk is None else risk.liquidation_price),
            ):
                if value is None:
                    self._remove(gauge, account, symbol, side)
                else:
                    gauge.labels(account, symbol, side).set(value)
        for symbol, side in self._legs - held:
            published.pop((symbol, side), None)
            for gauge in (m.leg_distance, m.leg_margin_ratio, m.leg_liquidation_price):
                self._remove(gauge, account, symbol, side)
        self._legs = held

    @staticmethod
    def _remove(gauge: object, *labels: str) -> None:
        with contextlib.suppress(KeyError):
            gauge.remove(*labels)  # type: ignore[attr-defined]

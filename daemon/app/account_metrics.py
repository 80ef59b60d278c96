"""One account's gauges and counters on /metrics, refreshed after each of its runner's steps.

Unknown figures are absent, never a reassuring number; a leg's series go when the leg closes, so labels stay
bounded by the legs held. A stream's outages are counted on the edge into DOWN or STALE (each one is
reconnected), not per step spent there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping

from daemon.app.http import Metrics
from daemon.core.events import Freshness
from daemon.core.state import AccountState
from daemon.core.view import AccountView

_OUT = (Freshness.DOWN, Freshness.STALE)


class AccountMetrics:
    def __init__(self, metrics: Metrics, account_id: str) -> None:
        self.metrics = metrics
        self.account_id = account_id
        self._legs: set[tuple[str, str]] = set()  # (symbol, side) with series published
        self._freshness: dict[str, Freshness] = {}

    def publish(
        self,
        state: AccountState,
        view: AccountView,
        private_ages: Mapping[str, float],
        mark_age: Callable[[str], float | None],
    ) -> None:
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
        for name, health in state.health.items():
            m.stream_stale.labels(account, name).set(0 if health.freshness is Freshness.FRESH else 1)
            before = self._freshness.get(name)
            if health.freshness in _OUT and before not in _OUT:
                m.stream_outages.labels(account, name).inc()
            self._freshness[name] = health.freshness
        for name, age in private_ages.items():
            m.stream_age.labels(account, name).set(age)
        for symbol in {leg.key[0] for leg in view.legs}:
            seconds = mark_age(symbol)
            if seconds is not None:
                m.stream_age.labels(account, f"mark:{symbol}").set(seconds)

    def _publish_legs(self, view: AccountView) -> None:
        m, account = self.metrics, self.account_id
        held = set()
        for leg in view.legs:
            symbol, side = leg.key[0], leg.key[1].value
            held.add((symbol, side))
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
            for gauge in (m.leg_distance, m.leg_margin_ratio, m.leg_liquidation_price):
                self._remove(gauge, account, symbol, side)
        self._legs = held

    @staticmethod
    def _remove(gauge: object, *labels: str) -> None:
        with contextlib.suppress(KeyError):
            gauge.remove(*labels)  # type: ignore[attr-defined]

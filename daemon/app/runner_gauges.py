"""What an account's runner (`AccountRunner`, in `runner.py`) tells Prometheus and the status page: the health's
edges at each step, the legs' gauges when Prometheus scrapes, and each leg's distance history."""

from __future__ import annotations

import time
from collections.abc import Callable

from daemon.app.account_metrics import AccountMetrics
from daemon.app.distance_history import DistanceHistory
from daemon.app.runner_journal import JournalSteps
from daemon.core.state import AccountState
from daemon.core.view import AccountView
from daemon.exchanges.marketdata import MarketHub


class GaugeSteps(JournalSteps):
    """Stubs of what `AccountRunner` gives."""

    hub: MarketHub
    distance_history: DistanceHistory
    _account_metrics: AccountMetrics
    clock: Callable[[], float]

    def _publish_metrics(self, state: AccountState, view: AccountView, full: bool) -> None:
        """Per step, only what cannot wait for a scrape: the health's edges (outages are counted on them), and
        the streams whose ages are read at scrape time, looked for when more than marks changed. The legs'
        gauges are written at scrape time (`refresh_gauges`), not at every mark."""
        self._account_metrics.publish_health(state)
        if full and self.connector is not None:
            now = time.monotonic()
            names = [*self.connector.feed.stream_ages(now), *(f"mark:{symbol}" for symbol, _ in state.legs)]
            self._account_metrics.track_ages(names, self._stream_age)
        self.distance_history.record(self.clock(), view)

    def refresh_gauges(self) -> None:
        """Before Prometheus reads /metrics: the legs' and the account's gauges from the latest figures."""
        if self.connector is not None:
            self._account_metrics.publish(self.connector.state, self.connector.view)

    def _stream_age(self, name: str) -> float | None:
        """Seconds since the stream's last data (None: not watched now); read when Prometheus scrapes."""
        now = time.monotonic()
        if name.startswith("mark:"):
            return self.hub.stream_age(name.removeprefix("mark:"), now)
        connector = self.connector
        return None if connector is None else connector.feed.stream_ages(now).get(name)

"""What an incident chart shows: a position's mark against its liquidation prices (the model's and the
exchange's) over the last minutes, with the alerts and top-ups that happened marked on it. Pure data made by
pure functions: the caller gives every time; drawing it (a library call) is the shell's business.

A chart is made for a firing critical alert about a position, and for any liquidation, when the message is
journaled. Its prices come from a `Trail` of each leg (a point every few seconds over 15 minutes, kept a while
after the leg is gone, since a liquidation is told once the exchange's records say so); its markers from the
alerts the runner emitted about the same leg (`MarkerLog`, a few dozen per leg at most).
"""

from __future__ import annotations

import enum
import math
from collections import deque
from dataclasses import dataclass

from daemon.core.alerts import Alert, AlertKind, Severity
from daemon.core.trail import SampledTrail, Trail
from daemon.core.view import AccountView, leg_keys

CHART_WINDOW_S = 900.0  # the last 15 minutes
CHART_SPACING_S = 5.0  # at most 182 points per leg
MAX_MARKERS_PER_LEG = 24
MARKER_LABEL_MAX = 32

LegId = tuple[str, str]  # (symbol, side)


@dataclass(frozen=True, slots=True)
class PricePoint:
    mark: float | None
    liquidation: float | None  # the model's
    exchange_liquidation: float | None  # what the exchange states, when it does


class MarkerKind(enum.Enum):
    WARNING = "warning"
    CRITICAL = "critical"
    CLEAR = "clear"
    TOPUP = "topup"  # margin added (or, in a dry run, what would have been)
    TOPUP_TROUBLE = "topup_trouble"  # refused, failed or outcome unknown
    LIQUIDATED = "liquidated"


@dataclass(frozen=True, slots=True)
class Marker:
    t: float
    kind: MarkerKind
    label: str


@dataclass(frozen=True, slots=True)
class IncidentChart:
    title: str
    start: float  # the first point or marker shown (at most the window before `end`)
    end: float  # the moment the chart was made for
    points: tuple[tuple[float, PricePoint], ...]  # oldest first, within [start, end]
    markers: tuple[Marker, ...]  # oldest first, within [start, end]


def price_trail() -> Trail[LegId, PricePoint]:
    """The trail the runner keeps per account: gone legs are kept until they leave the window."""
    return Trail(CHART_WINDOW_S, CHART_SPACING_S, keep_gone=True)


def price_points(view: AccountView) -> dict[LegId, PricePoint]:
    """Each leg's prices as the model sees them now (what a runner records into its trail)."""
    return {
        (leg.key[0], leg.key[1].value): PricePoint(
            _finite(leg.mark_price),
            None if leg.risk is None else _finite(leg.risk.liquidation_price),
            _finite(leg.facts.exchange_liquidation_price),
        )
        for leg in view.legs
    }


def wants_chart(alert: Alert) -> bool:
    """A firing critical alert about a position, or a liquidation (known or not): the messages that are worth a
    picture of how the position got there."""
    if alert.resolved or alert.symbol is None or alert.side is None:
        return False
    return alert.severity is Severity.CRITICAL or alert.kind is AlertKind.LIQUIDATED


def leg_of(alert: Alert) -> LegId | None:
    return None if alert.symbol is None or alert.side is None else (alert.symbol, alert.side)


def marker_for(alert: Alert) -> Marker | None:
    """How an alert about a position shows on its chart; None for those that don't (stale data, divergence)."""
    if leg_of(alert) is None:
        return None
    kind: MarkerKind | None = None
    label = ""
    if alert.kind is AlertKind.LIQUIDATION_RISK:
        if alert.resolved:
            kind, label = MarkerKind.CLEAR, "clear"
        else:
            kind = MarkerKind.CRITICAL if alert.severity is Severity.CRITICAL else MarkerKind.WARNING
            label = alert.severity.value + ("" if alert.distance is None else f" {alert.distance * 100:.2f}%")
    elif alert.kind is AlertKind.LIQUIDATED and not alert.resolved:
        kind, label = MarkerKind.LIQUIDATED, "liquidated"
    elif alert.kind in (AlertKind.TOPUP_DONE, AlertKind.TOPUP_DRY_RUN):
        kind, label = MarkerKind.TOPUP, alert.action or "top-up"
    elif alert.kind in (AlertKind.TOPUP_FAILED, AlertKind.TOPUP_REFUSED, AlertKind.TOPUP_UNKNOWN):
        kind, label = MarkerKind.TOPUP_TROUBLE, alert.action or alert.kind.value
    if kind is None:
        return None
    if len(label) > MARKER_LABEL_MAX:
        label = label[: MARKER_LABEL_MAX - 1] + "…"
    return Marker(alert.ts, kind, label)


class MarkerLog:
    """The markers of each leg's recent alerts: at most `MAX_MARKERS_PER_LEG` per leg, and markers that left the
    window are forgotten at the next note, so memory stays bounded however long the daemon runs."""

    def __init__(self, window_s: float = CHART_WINDOW_S) -> None:
        self.window_s = window_s
        self._markers: dict[LegId, deque[Marker]] = {}

    def note(self, alert: Alert) -> None:
        leg, marker = leg_of(alert), marker_for(alert)
        for key in list(self._markers):  # alerts are rare: looking over every leg each time costs nothing
            kept = self._markers[key]
            while kept and alert.ts - kept[0].t > self.window_s:
                kept.popleft()
            if not kept:
                del self._markers[key]
        if leg is None or marker is None:
            return
        self._markers.setdefault(leg, deque(maxlen=MAX_MARKERS_PER_LEG)).append(marker)

    def markers(self, leg: LegId) -> list[Marker]:
        return list(self._markers.get(leg, ()))

    def __len__(self) -> int:
        return sum(len(kept) for kept in self._markers.values())


class IncidentRecorder:
    """One account's price trail and markers: what its charts are drawn from."""

    def __init__(self) -> None:
        # Offered every step's view (before deciding: a chart ends at the figures it was made on); the prices
        # are read from it at most every spacing, when a leg goes or comes, and when a chart is made.
        self.trail: SampledTrail[LegId, PricePoint, AccountView] = SampledTrail(
            price_trail(), price_points, leg_keys
        )
        self.markers = MarkerLog()

    def record(self, now: float, view: AccountView) -> None:
        self.trail.offer(now, view)

    def chart_for(self, alert: Alert, now: float) -> IncidentChart | None:
        """Note `alert` as a marker; its chart when it is worth one and there is something to draw."""
        self.markers.note(alert)
        leg = leg_of(alert)
        if leg is None or not wants_chart(alert):
            return None
        return incident_chart(alert, self.trail.series(leg), self.markers.markers(leg), now)


def incident_chart(
    alert: Alert,
    points: list[tuple[float, PricePoint]],
    markers: list[Marker],
    now: float,
    window_s: float = CHART_WINDOW_S,
) -> IncidentChart | None:
    """The chart of `alert`'s position over the `window_s` before `now`; None when there is nothing to draw (no
    mark known in the window)."""
    start = now - window_s
    kept = sorted(((t, p) for t, p in points if start <= t <= now), key=lambda item: item[0])
    if not any(point.mark is not None for _t, point in kept):
        return None
    shown = sorted((m for m in markers if start <= m.t <= now), key=lambda m: m.t)[-MAX_MARKERS_PER_LEG:]
    status = "liquidated" if alert.kind is AlertKind.LIQUIDATED else alert.severity.value
    title = f"{alert.account} {alert.symbol} {alert.side}: {status}"
    # The chart spans what is known: a position watched for two minutes is not drawn squeezed into fifteen.
    first = min([kept[0][0], *(m.t for m in shown)])
    return IncidentChart(title, first, now, tuple(kept), tuple(shown))


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) and value > 0 else None

"""An incident chart (`daemon.core.incident.IncidentChart`) drawn as a PNG with matplotlib's Agg backend.

matplotlib is imported here, inside `render_png`, and nowhere else: `marginguard calc`, the other commands and
the daemon's start-up never pay its import (about half a second); the first chart does, in the renderer's
worker thread. Only the object-oriented API is used (a `Figure` on its own Agg canvas, no pyplot and its global
state), which is what matplotlib documents for drawing outside the main thread.
"""

from __future__ import annotations

import io
import math
from datetime import UTC, datetime

from daemon.core.incident import IncidentChart, MarkerKind

WIDTH_IN, HEIGHT_IN, DPI = 8.0, 4.5, 100  # 800 x 450 px: readable in a chat preview, about 40 KB

MARK_COLOUR = "#1f6feb"
MODEL_COLOUR = "#d64541"
EXCHANGE_COLOUR = "#8250df"
MARKER_COLOURS = {
    MarkerKind.WARNING: "#d4a017",
    MarkerKind.CRITICAL: "#d64541",
    MarkerKind.CLEAR: "#2e8b57",
    MarkerKind.TOPUP: "#2e8b57",
    MarkerKind.TOPUP_TROUBLE: "#6b7380",
    MarkerKind.LIQUIDATED: "#000000",
}


def render_png(chart: IncidentChart) -> bytes:
    """The chart as PNG bytes. CPU-bound (tens of milliseconds, more for the first): call it off the event loop."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    figure = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    times = [t for t, _point in chart.points]  # unix seconds; the axis labels them as UTC clock times
    series = (
        ("mark", [p.mark for _t, p in chart.points], MARK_COLOUR, "-"),
        ("liquidation (model)", [p.liquidation for _t, p in chart.points], MODEL_COLOUR, "--"),
        ("liquidation (exchange)", [p.exchange_liquidation for _t, p in chart.points], EXCHANGE_COLOUR, ":"),
    )
    for label, values, colour, style in series:
        if any(v is not None for v in values):
            # A gap (a figure unknown for a while) stays a gap: NaN breaks the line instead of bridging it.
            ys = [math.nan if v is None else v for v in values]
            dots = "." if len(ys) <= 40 else None  # a few points (a short trail) are shown as such
            axes.plot(times, ys, label=label, color=colour, linestyle=style, linewidth=1.8, marker=dots)
    for marker in chart.markers:
        x = marker.t
        colour = MARKER_COLOURS[marker.kind]
        axes.axvline(x, color=colour, linewidth=1.2, alpha=0.8)
        axes.annotate(
            marker.label,
            xy=(x, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(-3, -4),
            textcoords="offset points",
            rotation=90,
            va="top",
            ha="right",
            fontsize=8,
            color=colour,
            bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.8},
        )
    if chart.end > chart.start:
        # A little room on the right: the alert's own marker stands at the end and must not sit on the frame.
        axes.set_xlim(chart.start, chart.end + 0.03 * (chart.end - chart.start))
    axes.xaxis.set_major_locator(MaxNLocator(nbins=7, steps=[1, 2, 3, 5, 6, 10]))
    axes.xaxis.set_major_formatter(FuncFormatter(_clock))
    axes.set_xlabel("time (UTC)")
    axes.set_ylabel("price")
    axes.ticklabel_format(axis="y", style="plain", useOffset=False)
    axes.grid(True, alpha=0.3)
    axes.set_title(chart.title, fontsize=11)
    axes.legend(loc="best", fontsize=8)
    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=DPI)
    return out.getvalue()


def _clock(t: float, _position: object = None) -> str:
    return datetime.fromtimestamp(t, tz=UTC).strftime("%H:%M:%S")

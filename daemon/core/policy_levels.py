"""Threshold crossings of a leg's or account's figures, with hysteresis for a level already crossed (pure)."""

from __future__ import annotations

from daemon.core.policy_memory import Track
from daemon.core.policy_rules import Thresholds


def beyond(
    distance: float | None,
    ratio: float | None,
    distance_threshold: float | None,
    ratio_threshold: float | None,
    slack: float,
) -> bool:
    """Whether the figures are past a level's thresholds; `slack` widens them for a level already crossed."""
    near = distance is not None and distance_threshold is not None and distance <= distance_threshold + slack
    heavy = ratio is not None and ratio_threshold is not None and ratio >= ratio_threshold - slack
    return near or heavy


def crossings(distance: float | None, ratio: float | None, th: Thresholds, track: Track) -> tuple[bool, bool]:
    """(warning, critical) crossings, with hysteresis for a threshold the figures were already beyond."""
    warning = beyond(
        distance,
        ratio,
        th.warning_distance,
        th.warning_margin_ratio,
        th.hysteresis if track.warning.beyond else 0.0,
    )
    critical = beyond(
        distance,
        ratio,
        th.critical_distance,
        th.critical_margin_ratio,
        th.hysteresis if track.critical.beyond else 0.0,
    )
    return warning or critical, critical

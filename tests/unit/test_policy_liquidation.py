"""A leg that left the picture is told by what the exchange's own records say about it: liquidated (critical,
with the exchange's price, never an all-clear), closed by its owner (its alerts resolve, "closed"), or unknown
because the records could not be read in time (a warning, not an all-clear). While the shell is asking, the
policy says nothing about the leg. See tests/unit/account_feed.py for the reference leg (liquidation 90.909).
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from daemon.core.alerts import Alert, AlertKind, Severity
from daemon.core.events import Event, GoneCause, LegGone, LegLiquidated
from daemon.core.policy import decide
from daemon.core.state import Change, ChangeKind, apply
from daemon.core.types import Side
from tests.unit.account_feed import BTC, Feed, brief, closed, isolated_long, mark, mark_at, snapshot

GONE = (ChangeKind.CLOSED, ChangeKind.VANISHED)


def leave(feed: Feed, now: float, event: Event) -> tuple[list[Alert], list[tuple[str, Side]]]:
    """Fold the event as the runner does when records can be read: a leg that went is held back (asked about)
    rather than judged; returns what the policy says meanwhile and the legs asked about."""
    feed.state, changes = apply(feed.state, event)
    asking = [(c.symbol, c.side) for c in changes if c.kind in GONE]
    rest = [c for c in changes if c.kind not in GONE]
    return answer(feed, now, rest, asking), asking


def answer(
    feed: Feed, now: float, changes: list[Change], asking: Sequence[tuple[str, Side]] = ()
) -> list[Alert]:
    feed.memory, alerts = decide(
        feed.view(),
        feed.state.health,
        changes,
        feed.rules,
        feed.memory,
        feed.silences,
        now,
        exchange=feed.state.family,
        positions_known=feed.state.last_snapshot_ms is not None,
        asking=asking,
    )
    return list(alerts)


def told(feed: Feed, now: float, event: LegLiquidated | LegGone) -> list[Alert]:
    feed.state, changes = apply(feed.state, event)
    return answer(feed, now, list(changes))


def test_a_gap_from_far_away_through_liquidation_is_told_as_a_liquidation_at_the_exchanges_price() -> None:
    feed = Feed()
    assert feed.step(0, snapshot(0, isolated_long()), mark(0, mark_at(0.30))) == []  # far from it: quiet
    said, asking = leave(feed, 1, snapshot(1))  # the gap: the next snapshot lists no leg
    assert said == [] and asking == [(BTC, Side.LONG)]
    assert answer(feed, 2, [], asking) == []  # still asking: not a word, above all no all-clear

    alerts = told(feed, 3, LegLiquidated(BTC, Side.LONG, 1.0, 90.5, 2_500, "BustTrade execution"))
    assert brief(alerts) == [("liquidated", "critical", False)]
    [alert] = alerts
    assert alert.kind is AlertKind.LIQUIDATED and alert.contracts == 1.0
    assert "liquidated by the exchange at 90.5" in alert.summary and "BustTrade" in alert.summary
    assert feed.decide(10_000) == []  # nothing follows: no resolve, no repeat


def test_a_liquidation_ends_an_alert_that_was_firing_without_resolving_it() -> None:
    feed = Feed()
    feed.step(0, snapshot(0, isolated_long()), mark(0, mark_at(0.09)))  # warning fired
    said, _asking = leave(feed, 1, snapshot(1))
    assert said == []
    alerts = told(feed, 2, LegLiquidated(BTC, Side.LONG, 1.0, 88.0, 1_500, "forced (autoclose) order"))
    assert brief(alerts) == [("liquidated", "critical", False)]
    assert feed.decide(10_000) == []


@pytest.mark.parametrize(
    "distance", [0.09, 0.03]
)  # warning, and critical (where the heuristic says liquidated)
def test_records_without_a_liquidation_tell_a_close_by_the_owner_as_closed(distance: float) -> None:
    feed = Feed()
    feed.step(0, snapshot(0, isolated_long()), mark(0, mark_at(distance)))
    said, _asking = leave(feed, 1, closed(1))
    assert said == []
    alerts = told(feed, 2, LegGone(BTC, Side.LONG, GoneCause.OWNER, 1_500))
    assert brief(alerts) == [("liquidation_risk", alerts[0].severity.value, True)]
    assert alerts[0].severity is Severity.INFO
    assert "closed" in alerts[0].summary and "probably liquidated" not in alerts[0].summary
    assert all(a.kind is not AlertKind.LIQUIDATED for a in alerts)


def test_records_that_could_not_be_read_tell_the_cause_unknown_as_a_warning_not_an_all_clear() -> None:
    feed = Feed()
    feed.step(0, snapshot(0, isolated_long()), mark(0, mark_at(0.09)))  # warning fired
    leave(feed, 1, snapshot(1))
    detail = "RequestTimeout: records unreachable"
    alerts = told(feed, 30, LegGone(BTC, Side.LONG, GoneCause.UNKNOWN, 30_000, detail))
    assert brief(alerts) == [("liquidated", "warning", False)]
    assert "cause is unknown" in alerts[0].summary and detail in alerts[0].summary
    assert feed.decide(10_000) == []


def test_without_records_the_last_distance_still_judges_a_vanished_leg() -> None:
    # The fallback where marginguard reads no records of the venue: nothing held back, today's heuristic.
    feed = Feed()
    feed.step(0, snapshot(0, isolated_long()), mark(0, mark_at(0.03)))
    alerts = feed.step(1, snapshot(1))
    assert brief(alerts) == [("liquidated", "critical", False)]
    assert "probably liquidated" in alerts[0].summary

"""Deciding only on change, and at the policy's own deadlines, says exactly what deciding all the time says.

The reference decides on everything at every event and every half second (every time in these runs is a multiple
of half a second, deadlines included). The event-driven side does what the runner does: after marks alone it
judges only the legs whose `LegView` the live view replaced (`decide(..., only=...)`); after anything else, or
when the set of silences in force changes, everything; and with nothing coming in, it decides again only at
`clock_plan`'s next deadline. Both must send the same messages at the same times and end with the same memory.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.core.alerts import Alert
from daemon.core.events import Event, Freshness, MarkPrice
from daemon.core.live_view import LiveView
from daemon.core.policy import decide
from daemon.core.policy_deadline import clock_plan
from daemon.core.policy_memory import PolicyMemory
from daemon.core.policy_rules import RuleSet, Silence, Thresholds
from daemon.core.state import AccountState, Change, apply
from daemon.core.view import AccountView
from tests.unit.account_feed import (
    ACCOUNT,
    BTC,
    ETH,
    balance,
    cross_long,
    isolated_long,
    mark,
    mark_at,
    rules_for,
    snapshot,
    stream,
)

CHECKED = settings(max_examples=150, deadline=None)
HALF = 0.5
STREAMS = ("positions", f"mark:{BTC}", f"mark:{ETH}")

Timed = tuple[float, list[Event]]


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Thresholds, list[Silence], list[Timed], float]:
    thresholds = Thresholds(
        min_duration_s=draw(st.sampled_from([0.0, 1.0, 2.5])),
        repeat_interval_s=draw(st.sampled_from([None, 1.5, 4.0])),
        stale_after_s=draw(st.sampled_from([1.0, 3.0])),
        unknown_grace_s=draw(st.sampled_from([0.0, 2.0])),
        hysteresis=0.01,
    )
    cross = draw(st.booleans())
    legs = [isolated_long(BTC), cross_long(ETH) if cross else isolated_long(ETH)]
    timeline: list[Timed] = [(0.0, [snapshot(0.0, *legs), balance(0.0, 100.0)])]
    t = 0.0
    for _ in range(draw(st.integers(1, 25))):
        t += HALF * draw(st.integers(1, 6))
        events: list[Event] = []
        for _ in range(draw(st.integers(1, 3))):
            kind = draw(st.integers(0, 9))
            if kind < 7:  # mostly marks, walking through the thresholds and back
                symbol = draw(st.sampled_from([BTC, ETH]))
                events.append(
                    mark(t, mark_at(draw(st.sampled_from([0.3, 0.12, 0.09, 0.06, 0.04, 0.02]))), symbol)
                )
            elif kind < 9:
                name = draw(st.sampled_from(STREAMS))
                events.append(stream(t, name, draw(st.sampled_from(list(Freshness))), "test"))
            else:
                events.append(balance(t, draw(st.sampled_from([100.0, 30.0]))))
        timeline.append((t, events))
    silences = []
    if draw(st.booleans()):
        start = HALF * draw(st.integers(0, 20))
        silences.append(
            Silence(ACCOUNT, draw(st.sampled_from([None, BTC])), start + HALF * draw(st.integers(1, 10)))
        )
    return thresholds, silences, timeline, t + 10.0


def _state() -> AccountState:
    state = AccountState(ACCOUNT, "binance")
    for symbol in (BTC, ETH):
        state, _ = apply(state, rules_for(symbol))
    return state


def _decide(
    view: AccountView,
    state: AccountState,
    changes: list[Change],
    rules: RuleSet,
    memory: PolicyMemory,
    silences: list[Silence],
    now: float,
    only: set[object] | None = None,
) -> tuple[PolicyMemory, tuple[Alert, ...]]:
    return decide(
        view,
        state.health,
        changes,
        rules,
        memory,
        silences,
        now,
        exchange="binance",
        positions_known=state.last_snapshot_ms is not None,
        only=only,  # type: ignore[arg-type]
    )


def reference(
    rules: RuleSet, silences: list[Silence], timeline: list[Timed], end: float
) -> tuple[list[Alert], PolicyMemory]:
    state, memory, heard = _state(), PolicyMemory(), []
    events = dict(timeline)
    t = 0.0
    while t <= end:
        changes: list[Change] = []
        for event in events.get(t, []):
            state, found = apply(state, event)
            changes.extend(found)
        live = LiveView(state)
        memory, alerts = _decide(
            live.view, state, changes, rules, memory, [s for s in silences if s.until > t], t
        )
        heard.extend(alerts)
        t += HALF
    return heard, memory


def event_driven(
    rules: RuleSet, silences: list[Silence], timeline: list[Timed], end: float
) -> tuple[list[Alert], PolicyMemory]:
    state, memory, heard = _state(), PolicyMemory(), []
    live = LiveView(state)
    decided: dict[object, object] = {}
    seen: tuple[object, ...] | None = None
    due: float | None = None
    pending = list(timeline)
    while True:
        at_event = pending[0][0] if pending else None
        if at_event is None and (due is None or due > end):
            return heard, memory
        deadline = due is not None and (at_event is None or due < at_event)
        now = due if deadline else at_event
        assert now is not None
        changes: list[Change] = []
        full = deadline or (due is not None and now >= due)  # a deadline passed: as the runner, judge all
        if not deadline:
            _t, events = pending.pop(0)
            marked = set()
            for event in events:
                state, found = apply(state, event)
                changes.extend(found)
                if isinstance(event, MarkPrice):
                    marked.add(event.symbol)
                else:
                    full = True
            view = live.marks(state, marked) if not full else live.rebuild(state)
        view = live.view
        in_force = [s for s in silences if s.until > now]
        full = full or bool(changes) or seen != (state.legs, state.health, in_force)
        seen = (state.legs, state.health, in_force)
        only = None if full else {leg.key for leg in view.legs if decided.get(leg.key) is not leg}
        memory, alerts = _decide(view, state, changes, rules, memory, in_force, now, only)
        heard.extend(alerts)
        decided = {leg.key: leg for leg in view.legs}
        due, _muted = clock_plan(
            memory,
            state.health,
            rules,
            silences,
            now,
            account=ACCOUNT,
            held_symbols={symbol for symbol, _ in state.legs},
        )
        # Silences end on the grid too: the runner reads them at each step, and a change means a full decision.
        ends = [s.until for s in silences if s.until > now]
        if ends and (due is None or min(ends) < due):
            due = min(ends)


@CHECKED
@given(scenarios())
def test_deciding_on_change_and_at_deadlines_says_what_deciding_always_says(
    scenario: tuple[Thresholds, list[Silence], list[Timed], float],
) -> None:
    thresholds, silences, timeline, end = scenario
    rules = RuleSet(thresholds)
    expected, expected_memory = reference(rules, silences, timeline, end)
    got, memory = event_driven(rules, silences, timeline, end)
    assert [(a.ts, a.identity.key, a.severity, a.resolved, a.sequence, a.summary) for a in got] == [
        (a.ts, a.identity.key, a.severity, a.resolved, a.sequence, a.summary) for a in expected
    ]
    assert memory.sequences == expected_memory.sequences
    assert {k: (t.level, t.notified, t.last_sent, t.episode) for k, t in memory.tracks.items()} == {
        k: (t.level, t.notified, t.last_sent, t.episode) for k, t in expected_memory.tracks.items()
    }

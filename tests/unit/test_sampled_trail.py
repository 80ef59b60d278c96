"""A trail offered the account's figures at every step but sampling them lazily (`SampledTrail`) still draws
what the user needs: every point is figures some step really had, at that step's time; a series read ends at the
latest step; points stay a spacing apart (the live end aside) and bounded; and the last figures a leg had before
it went are kept, so a liquidation's chart ends where the position was last seen."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from daemon.core.trail import SampledTrail, Trail

Step = dict[str, int]  # leg -> its figure at that step

SPACING, WINDOW = 5.0, 60.0

legs = st.sampled_from(["BTC", "ETH", "SOL"])
steps = st.lists(
    st.tuples(
        st.floats(0.01, 8.0),  # time since the step before
        st.dictionaries(legs, st.integers(0, 10_000), max_size=3),  # the legs held and their figures
        st.booleans(),  # whether the series are read after this step (a chart, the status page)
    ),
    min_size=1,
    max_size=200,
)


def sampled(keep_gone: bool) -> SampledTrail[str, int, Step]:
    return SampledTrail(Trail(WINDOW, SPACING, keep_gone=keep_gone), dict, lambda step: tuple(sorted(step)))


@given(steps, st.booleans())
def test_every_point_is_a_steps_figures_and_a_read_ends_at_the_latest_step(
    plan: list[tuple[float, Step, bool]], keep_gone: bool
) -> None:
    trail = sampled(keep_gone)
    now, offered = 0.0, {}
    for gap, step, read in plan:
        now += gap
        trail.offer(now, step)
        offered[now] = step
        if read:
            for leg in step:
                series = trail.series(leg)
                assert series[-1] == (now, step[leg])
    for leg in ("BTC", "ETH", "SOL"):
        series = trail.series(leg)
        assert all(offered[t].get(leg) == figure for t, figure in series)
        times = [t for t, _figure in series]
        assert times == sorted(times)
        assert all(b - a >= SPACING for a, b in itertools.pairwise(times[:-1]))
        assert not times or now - times[0] <= WINDOW
        assert len(series) <= WINDOW / SPACING + 2


@given(steps)
def test_the_last_figures_of_a_leg_that_went_are_kept(plan: list[tuple[float, Step, bool]]) -> None:
    trail = sampled(keep_gone=True)
    now, last_seen = 0.0, {}
    for gap, step, _read in plan:
        now += gap
        trail.offer(now, step)
        for leg, figure in step.items():
            last_seen[leg] = (now, figure)
    for leg, (seen_at, figure) in last_seen.items():
        if now - seen_at <= WINDOW:  # still within the chart's window
            assert (seen_at, figure) in trail.series(leg)


def test_figures_are_read_from_the_source_once_a_spacing_not_at_every_step() -> None:
    reads = []

    def points(step: Step) -> Step:
        reads.append(step)
        return step

    trail: SampledTrail[str, int, Step] = SampledTrail(Trail(WINDOW, SPACING), points, lambda s: tuple(s))
    for i in range(1000):  # 100 steps a second for 10 s, one leg
        trail.offer(i / 100, {"BTC": i})
    assert len(reads) == 2  # at 0 s and at 5 s
    assert trail.series("BTC")[-1] == (9.99, 999)


@given(steps)
def test_offering_only_when_due_draws_the_points_offering_every_step_draws(
    plan: list[tuple[float, Step, bool]],
) -> None:
    # A runner that decides a mark within its quiet band computes no figures, so it offers only when `due`
    # says a point falls due; with the legs unchanged, the points are those of a trail offered every step.
    every, when_due = sampled(False), sampled(False)
    legs_held = tuple(sorted(plan[0][1]))
    now = 0.0
    for elapsed, step, _read in plan:
        now += elapsed
        figures = {leg: value for leg, value in zip(legs_held, step.values(), strict=False)}
        figures = {leg: figures.get(leg, 0) for leg in legs_held}
        every.offer(now, figures)
        if when_due.due(now):
            when_due.offer(now, figures)
    drawn = every.trail.keys()
    assert drawn == when_due.trail.keys()
    for leg in drawn:
        assert every.trail.series(leg) == when_due.trail.series(leg)

"""When the policy's decision can next change with no new input, only because time passed (pure).

`decide` judges figures against thresholds, but some transitions wait on the clock: a crossing counts once it has
lasted its minimum duration (`min_duration_s`; an unknown leg's `unknown_grace_s`), a firing alert is sent again
every `repeat_interval_s`, a silent stream turns blind at `stale_after_s`, a muted alert speaks once its silence
ends. `clock_plan` names the earliest of those after `now` (the next deadline): a shell that decides on every input and again at that
time decides exactly as one that decides every instant, without a timer per account.

Deadlines at or before `now` are left out: `decide` was just run at `now`, so such a transition is held by
something other than time (an unknown leg's grace while its streams are blind) and waits for an input.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from daemon.core.events import StreamHealth
from daemon.core.policy_memory import Level, PolicyMemory
from daemon.core.policy_rules import RuleSet, Silence
from daemon.core.policy_stale import KindHealth, kinds_health

# The rule whose crossing waits `unknown_grace_s` instead of `min_duration_s` (policy.UNKNOWN_RULE).
_GRACE_RULE = "figures_unknown"


def clock_plan(
    memory: PolicyMemory,
    health: Mapping[str, StreamHealth],
    rules: RuleSet,
    silences: Sequence[Silence],
    now: float,
    *,
    account: str,
    held_symbols: Iterable[str],
    kinds_of: Callable[
        [Mapping[str, StreamHealth], RuleSet, str, Iterable[str]], Iterable[KindHealth]
    ] = kinds_health,
) -> tuple[float | None, bool]:
    """(the next deadline, muted), in one pass over the tracks. The next deadline: the earliest time after `now` at
    which `decide` could say something new with every input unchanged; None when nothing waits on the clock.
    `kinds_of`: `kinds_health`, or a caller's memo of it (`KindsMemo`). Muted: some alert of the account is held back (its
    level differs from what receivers were told), so a silence lifted early must let it speak: the shell reads
    the silences again while this holds."""
    due: list[float] = []
    muted = False
    for track in memory.tracks.values():
        identity = track.identity
        if identity.account != account:
            continue
        if track.at_rest:
            continue  # nothing of this track waits on the clock (most tracks, most of the time)
        th = rules.resolve(account, identity.symbol)
        hold = th.unknown_grace_s if identity.rule == _GRACE_RULE else th.min_duration_s
        for crossing in (track.warning, track.critical):
            if crossing.since is not None and not crossing.held:
                due.append(crossing.since + hold)
        level = track.level
        if level is not Level.OK and th.repeat_interval_s is not None and track.last_sent is not None:
            due.append(track.last_sent + th.repeat_interval_s)
        muted = muted or level is not track.notified
    if muted:
        due.extend(silence.until for silence in silences)
    for kind in kinds_of(health, rules, account, held_symbols):
        due.extend(outage.blind_at for outage in kind.outages)
    return min((t for t in due if t > now), default=None), muted

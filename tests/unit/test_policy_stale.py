"""Stale-data alerts as a receiver hears them: nothing for a routine reconnect, one critical and one all-clear
per real outage, per account and kind of stream (positions, balance, marks), with the policy on its one-second
tick. Health events carry their own time, as the feeds send them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

from daemon.core.alerts import Alert, AlertIdentity, AlertKind
from daemon.core.events import Freshness, StreamHealth
from daemon.core.policy_memory import Figures, Level, PolicyMemory, Track
from daemon.core.policy_rules import RuleOverride, RuleSet
from daemon.core.policy_stale import KindsMemo, blind_streams, kinds_health
from tests.unit.account_feed import (
    ACCOUNT,
    BTC,
    ETH,
    Feed,
    isolated_long,
    mark,
    mark_at,
    ms,
    prompt,
    snapshot,
)

SOL = "SOL/USDT:USDT"
HELD = (BTC, ETH, SOL)


def held_feed(rules: RuleSet | None = None) -> Feed:
    """An account holding BTC, ETH and SOL far from liquidation: only the stale rule can speak."""
    feed = Feed(rule_set=rules) if rules is not None else Feed()
    legs = [isolated_long(symbol) for symbol in HELD]
    feed.step(0, snapshot(0, *legs), *(mark(0, mark_at(0.3), symbol) for symbol in HELD))
    return feed


def health(
    now: float, stream: str, freshness: Freshness, detail: str = "", since: float | None = None
) -> StreamHealth:
    if since is None:
        return StreamHealth(stream, freshness, round(now * 1000), detail)
    return StreamHealth(stream, freshness, round(now * 1000), detail, silent_since_ms=round(since * 1000))


def stale_alerts(alerts: Sequence[Alert]) -> list[Alert]:
    return [a for a in alerts if a.kind is AlertKind.STALE_DATA]


def run_ticks(feed: Feed, start: float, end: float) -> list[Alert]:
    """The policy's one-second tick from `start` to `end` inclusive."""
    heard: list[Alert] = []
    for second in range(int(start), int(end) + 1):
        heard += stale_alerts(feed.decide(float(second)))
    return heard


def test_a_reconnect_storm_within_the_threshold_says_nothing() -> None:
    # Before: every drop sent a critical and a resolve per stream and symbol (302 alerts for 94 drops).
    feed = held_feed()
    heard: list[Alert] = []
    for drop in range(94):
        t = 10.0 + drop * 7.0
        streams = ["positions", "balance", *(f"mark:{s}" for s in HELD)]
        heard += stale_alerts(feed.step(t, *(health(t, s, Freshness.DOWN, "socket closed") for s in streams)))
        heard += run_ticks(feed, t, t + 3)
        heard += stale_alerts(feed.step(t + 3.5, *(health(t + 3.5, s, Freshness.FRESH) for s in streams)))
    assert heard == []


def test_a_stream_down_beyond_its_threshold_fires_once_and_resolves_once() -> None:
    feed = held_feed()
    assert stale_alerts(feed.step(100, health(100, "positions", Freshness.DOWN, "connection reset"))) == []
    assert run_ticks(feed, 100, 129) == []  # 29 s down: still within 30 s
    (fired,) = run_ticks(feed, 130, 400)  # nothing repeated within the 900 s interval
    assert (fired.identity.rule, fired.resolved, fired.ts) == ("stale_data:positions", False, 130)
    assert "positions stream is down for 30 s (connection reset)" in fired.summary
    (resolved,) = stale_alerts(feed.step(401, health(401, "positions", Freshness.FRESH)))
    assert (resolved.identity, resolved.resolved) == (fired.identity, True)


def test_an_account_s_mark_streams_share_one_alert_that_lists_the_symbols() -> None:
    feed = held_feed()
    feed.step(50, health(50, f"mark:{BTC}", Freshness.DOWN), health(50, f"mark:{ETH}", Freshness.DOWN))
    (fired,) = run_ticks(feed, 50, 90)
    assert fired.identity == AlertIdentity(ACCOUNT, None, None, "stale_data:marks")
    assert BTC in fired.summary and ETH in fired.summary and SOL not in fired.summary
    # BTC back, ETH still silent: the alert holds; SOL dropping briefly adds nothing.
    heard = stale_alerts(feed.step(91, health(91, f"mark:{BTC}", Freshness.FRESH)))
    heard += stale_alerts(feed.step(92, health(92, f"mark:{SOL}", Freshness.DOWN)))
    heard += stale_alerts(feed.step(94, health(94, f"mark:{SOL}", Freshness.FRESH)))
    assert heard + run_ticks(feed, 95, 120) == []
    (resolved,) = stale_alerts(feed.step(121, health(121, f"mark:{ETH}", Freshness.FRESH)))
    assert (resolved.identity, resolved.resolved, resolved.summary) == (
        fired.identity,
        True,
        f"{ACCOUNT} mark prices are fresh again",
    )


def test_a_silent_mark_stream_of_a_symbol_no_longer_held_says_nothing() -> None:
    feed = held_feed()
    feed.step(10, health(10, "mark:XRP/USDT:USDT", Freshness.DOWN))
    assert run_ticks(feed, 10, 200) == []


def test_per_account_and_per_symbol_stale_after_s_are_the_ones_judged() -> None:
    rules = RuleSet(
        prompt(),
        (RuleOverride(account=ACCOUNT, stale_after_s=90.0), RuleOverride(symbol=BTC, stale_after_s=5.0)),
    )
    feed = held_feed(rules)
    feed.step(10, health(10, "balance", Freshness.DOWN), health(10, f"mark:{BTC}", Freshness.DOWN))
    # BTC's mark stream is judged on BTC's 5 s, the balance on the account's 90 s, not the global 30 s.
    assert [(a.identity.rule, a.ts) for a in run_ticks(feed, 10, 99)] == [("stale_data:marks", 15)]
    assert [(a.identity.rule, a.ts) for a in run_ticks(feed, 100, 100)] == [("stale_data:balance", 100)]


def test_a_stale_verdict_with_its_silence_start_waits_out_the_account_s_threshold() -> None:
    # The feed's own threshold (10 s) is shorter than this account's (60 s): the account's counts.
    rules = RuleSet(prompt(), (RuleOverride(account=ACCOUNT, stale_after_s=60.0),))
    feed = held_feed(rules)
    feed.step(20, health(20, "positions", Freshness.STALE, "no data for 10.0 s", since=10))
    assert run_ticks(feed, 20, 69) == []
    assert [a.ts for a in run_ticks(feed, 70, 80)] == [70]


def test_a_restart_reports_nothing_until_a_stream_speaks_and_forgets_per_stream_identities() -> None:
    old = AlertIdentity(ACCOUNT, None, None, f"stale_data:mark:{BTC}")
    firing = Track(AlertIdentity(ACCOUNT, None, None, "stale_data:positions"), AlertKind.STALE_DATA)
    firing = replace(firing.step(True, True, 0.0, 0.0, Figures()), notified=Level.CRITICAL, last_sent=0.0)
    kept = {old.key: Track(old, AlertKind.STALE_DATA, notified=Level.CRITICAL), firing.identity.key: firing}
    feed = held_feed()
    feed.memory = PolicyMemory(tracks=kept)
    assert run_ticks(feed, 1, 5) == []  # health unknown yet: the positions alert holds, nothing is resolved
    assert old.key not in feed.memory.tracks
    (resolved,) = stale_alerts(feed.step(6, health(6, "positions", Freshness.FRESH)))
    assert (resolved.identity, resolved.resolved) == (firing.identity, True)


def test_the_refused_key_alert_still_speaks_for_a_stopped_feed() -> None:
    feed = held_feed()
    refused = StreamHealth("account", Freshness.DOWN, ms(5), "stopped: AuthenticationError", refused=True)
    alerts = feed.step(5, refused)
    assert [(a.kind, a.resolved) for a in alerts] == [(AlertKind.AUTH_FAILURE, False)]
    assert run_ticks(feed, 6, 100) == []  # the refusal says it all: no stale alert for the stopped account


# ---- properties over generated outages ----


@dataclass(frozen=True)
class Outage:
    stream: str
    start: float
    end: float

    @property
    def length(self) -> float:
        return self.end - self.start


def outages_of(stream: str, offset: float, threshold: float) -> st.SearchStrategy[list[Outage]]:
    """A stream's outages, each clearly shorter or clearly longer than the threshold (the tick is 1 s)."""
    short = st.floats(0.1, threshold - 1.5)
    long = st.floats(threshold + 1.5, threshold * 3)
    gaps = st.floats(0.5, threshold * 2)

    def build(pairs: list[tuple[float, float]]) -> list[Outage]:
        found, t = [], offset
        for gap, length in pairs:
            # Whole milliseconds, as health events carry their time.
            t = round(t + gap, 3)
            found.append(Outage(stream, t, round(t + length, 3)))
            t = found[-1].end
        return found

    return st.lists(st.tuples(gaps, short | long), max_size=6).map(build)


def episodes(outages: list[Outage]) -> list[tuple[float, float, bool]]:
    """Maximal spans where some stream of the kind is not fresh: (start, end, some outage in it is long)."""
    spans: list[list[float]] = []
    long_spans: list[bool] = []
    for outage in sorted(outages, key=lambda o: o.start):
        if spans and outage.start <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], outage.end)
            long_spans[-1] = long_spans[-1] or outage.length > THRESHOLD
        else:
            spans.append([outage.start, outage.end])
            long_spans.append(outage.length > THRESHOLD)
    return [(start, end, is_long) for (start, end), is_long in zip(spans, long_spans, strict=True)]


THRESHOLD = 10.0
STREAMS = ("positions", f"mark:{BTC}", f"mark:{ETH}", f"mark:{SOL}")


@settings(max_examples=150, deadline=None)
@given(st.tuples(*(outages_of(stream, index * 0.013, THRESHOLD) for index, stream in enumerate(STREAMS))))
def test_one_alert_and_one_resolve_per_outage_longer_than_the_threshold(
    per_stream: tuple[list[Outage], ...],
) -> None:
    events = sorted(
        [(o.start, o.stream, Freshness.DOWN) for found in per_stream for o in found]
        + [(o.end, o.stream, Freshness.FRESH) for found in per_stream for o in found]
    )
    times = [t for t, _, _ in events]
    assume(len(set(times)) == len(times))
    feed = held_feed(RuleSet(prompt(stale_after_s=THRESHOLD)))
    end = max(times, default=0.0) + 2.0
    timeline = sorted(
        [(t, 1, s, f) for t, s, f in events] + [(float(s), 0, "", None) for s in range(1, int(end) + 1)]
    )
    heard: list[Alert] = []
    for t, is_event, stream, freshness in timeline:
        if is_event:
            assert freshness is not None
            heard += stale_alerts(feed.step(t, health(t, stream, freshness)))
        else:
            heard += stale_alerts(feed.decide(t))

    for kind, streams in (("positions", STREAMS[:1]), ("marks", STREAMS[1:])):
        outages = [o for found in per_stream for o in found if o.stream in streams]
        expected = episodes(outages)
        said = [a for a in heard if a.identity.rule == f"stale_data:{kind}"]
        long_ones = [(start, stop) for start, stop, is_long in expected if is_long]
        event(f"{kind}: {len(long_ones)} long, {len(expected) - len(long_ones)} short outages")
        assert [a.resolved for a in said] == [False, True] * len(long_ones), (kind, expected)
        for (start, stop), (fired, resolved) in zip(
            long_ones, zip(said[::2], said[1::2], strict=True), strict=True
        ):
            assert start + THRESHOLD <= fired.ts < stop  # raised only once blind for the threshold
            assert resolved.ts == stop  # and cleared the moment every stream of the kind is back


def test_readiness_counts_private_streams_and_the_marks_of_held_symbols_only() -> None:
    # A mark stream left DOWN by a reconnect just as its last leg closed is no longer watched: it must not keep the
    # account "not ready" for ever (binance seed 23 of the market-path harness: malformed frames, then a close).
    health = {
        "positions": StreamHealth("positions", Freshness.FRESH, 1),
        "mark:ETH/USDT:USDT": StreamHealth("mark:ETH/USDT:USDT", Freshness.DOWN, 1, "unreadable frame"),
        "mark:BTC/USDT:USDT": StreamHealth("mark:BTC/USDT:USDT", Freshness.STALE, 1),
        "balance": StreamHealth("balance", Freshness.DOWN, 1),
    }
    assert blind_streams(health, {"BTC/USDT:USDT"}) == ["balance", "mark:BTC/USDT:USDT"]
    assert blind_streams(health, {"ETH/USDT:USDT", "BTC/USDT:USDT"}) == [
        "balance",
        "mark:BTC/USDT:USDT",
        "mark:ETH/USDT:USDT",
    ]


def test_the_kinds_memo_answers_as_kinds_health_and_follows_new_inputs() -> None:
    rules = RuleSet()
    down = StreamHealth("mark:BTC/USDT:USDT", Freshness.DOWN, 1_000, "dropped")
    health = {"positions": StreamHealth("positions", Freshness.FRESH, 1_000), down.stream: down}
    memo = KindsMemo()
    first = memo(health, rules, "acct", {"BTC/USDT:USDT"})
    assert first == kinds_health(health, rules, "acct", {"BTC/USDT:USDT"})
    assert memo(health, rules, "acct", ["BTC/USDT:USDT"]) is first  # the same inputs: remembered
    assert memo(health, rules, "acct", set()) == kinds_health(health, rules, "acct", set())  # held changed
    fresh = {**health, down.stream: replace(down, freshness=Freshness.FRESH)}  # a new health mapping
    assert memo(fresh, rules, "acct", {"BTC/USDT:USDT"}) == kinds_health(
        fresh, rules, "acct", {"BTC/USDT:USDT"}
    )
    assert memo(fresh, rules, "other", {"BTC/USDT:USDT"}) == kinds_health(
        fresh, rules, "other", {"BTC/USDT:USDT"}
    )

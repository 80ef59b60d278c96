"""A mark stream silent past its threshold is blind, even when the feed's own forced reconnect then drops it.

Found by the market-path harness (tests/paths, a 9 s websocket stall with `stale_after_s` 5): the feed declares
the silent stream STALE and fails its socket to reconnect; the failed watch reports the stream DOWN, and a DOWN
outage counted as silent only from the drop, so the policy waited another full threshold, the stall ended first,
and 9 s of silence raised no alert.
"""

from __future__ import annotations

import time
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.core.events import Freshness, StreamHealth
from daemon.core.policy_stale import outage
from daemon.exchanges.streams import SharedStream, StreamClock

STALE_AFTER_S = 5.0


def test_a_drop_after_a_long_silence_is_blind_at_once() -> None:
    start = time.monotonic() - 20.0
    clock = StreamClock("mark:BTC/USDT:USDT", STALE_AFTER_S, start)
    clock.seen(start)  # data, then nothing for 6 s
    stale, reconnect = clock.check(start + 6.0)
    assert stale is not None and stale.freshness is Freshness.STALE and reconnect
    clock.rearm(start + 6.0)  # the forced reconnect gives the new socket a full threshold
    down = clock.down("mark stream closed")  # ... and the failed watch reports the stream down
    assert down is not None and down.freshness is Freshness.DOWN
    assert down.silent_since_ms is not None
    assert abs(down.silent_since_ms / 1000.0 - (time.time() - 20.0)) < 0.5  # silent since its last data
    assert outage(down.stream, down, STALE_AFTER_S).blind(time.time())


def test_a_new_stream_that_never_carried_data_is_silent_since_it_was_opened() -> None:
    """Found by the market-path harness (okx seed 7002): a leg opened just before a 12 s websocket stall. Its
    symbol's mark stream, subscribed then, carried nothing; at the threshold the hub failed the socket to
    reconnect, and the failed watch's DOWN said "silent since now" (the forced reconnect had moved the only
    clock a stream without data had), so the policy waited a second threshold, the stall ended first, and
    12 s of blindness raised no alert."""
    opened = time.monotonic() - 20.0
    stream = SharedStream("mark:BTC/USDT:USDT", opened)
    told: list[StreamHealth] = []
    stream.add(lambda _event: None, STALE_AFTER_S)
    reconnect = stream.check(opened + 6.0, lambda _listener, health: told.append(health))
    assert reconnect and [h.freshness for h in told] == [Freshness.STALE]
    stream.clock.rearm(opened + 6.0)  # the forced reconnect ...
    stream.down("mark stream closed", lambda _listener, health: told.append(health))  # ... fails the watch
    down = told[-1]
    assert down.freshness is Freshness.DOWN and down.silent_since_ms is not None
    assert abs(down.silent_since_ms / 1000.0 - (time.time() - 20.0)) < 0.5  # silent since it was opened
    assert outage(down.stream, down, STALE_AFTER_S).blind(time.time())
    assert abs(stream.clock.seen_at - opened) < 1e-9  # and its age counts from then too


def test_a_routine_drop_of_a_flowing_stream_is_not_blind_before_its_threshold() -> None:
    now = time.monotonic()
    clock = StreamClock("mark:BTC/USDT:USDT", STALE_AFTER_S, now - 30.0)
    clock.seen(now - 0.5)
    down = clock.down("mark stream closed")
    assert down is not None
    blind = outage(down.stream, down, STALE_AFTER_S)
    assert not blind.blind(time.time())
    assert blind.blind(time.time() + STALE_AFTER_S)


def test_a_quiet_private_stream_is_blind_from_its_drop_only() -> None:
    """Positions push only on change: hours of silence before a drop say nothing."""
    now = time.monotonic()
    clock = StreamClock("positions", None, now - 3600.0)
    clock.seen(now - 3600.0)
    down = clock.down("socket closed")
    assert down is not None and down.silent_since_ms is None
    assert not outage(down.stream, down, STALE_AFTER_S).blind(time.time())


class _AlwaysTelling(SharedStream):
    """The stream as it was before `seen` had a shortcut: every datum walks the listeners."""

    def seen(self, now: float, send: Any) -> None:
        self._fresh_told = False
        super().seen(now, send)


OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.sampled_from((1.0, 3.0, 5.0))),
        st.tuples(st.just("remove"), st.integers(0, 5)),
        st.tuples(st.just("seen"), st.floats(0.0, 4.0)),
        st.tuples(st.just("check"), st.floats(0.0, 8.0)),
        st.tuples(st.just("down"), st.just(0.0)),
        st.tuples(st.just("rearm"), st.floats(0.0, 8.0)),  # a forced reconnect
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(OPERATIONS)
def test_every_listener_hears_what_a_stream_walking_them_all_at_every_datum_says(
    operations: list[tuple[str, float]],
) -> None:
    """A datum only moves the clock once every listener has heard FRESH; whatever the order of listeners
    joining and leaving, silences and drops, each listener hears exactly the FRESH, STALE and DOWN it would
    hear if every datum walked all of them."""
    start = time.monotonic()
    heard: dict[str, list[list[Freshness]]] = {"fast": [], "walking": []}
    streams = {"fast": SharedStream("mark:X", start), "walking": _AlwaysTelling("mark:X", start)}
    now = start
    for op, amount in operations:
        now += amount if op in ("seen", "check", "rearm") else 0.0
        for name, stream in streams.items():
            told = heard[name]
            if op == "add":
                told.append([])
                index = len(told) - 1
                stream.add(lambda event, i=index, t=told: t[i].append(event.freshness), amount)  # type: ignore[misc]
            elif op == "remove" and stream.listeners:
                stream.remove(stream.listeners[int(amount) % len(stream.listeners)].deliver)
            elif op == "seen":
                stream.seen(now, lambda deliver, event: deliver(event))
            elif op == "check":
                stream.check(now, lambda deliver, event: deliver(event))
            elif op == "down":
                stream.down("closed", lambda deliver, event: deliver(event))
            elif op == "rearm":
                stream.clock.rearm(now)
        assert heard["fast"] == heard["walking"]
        assert streams["fast"].clock.seen_at == streams["walking"].clock.seen_at
        assert streams["fast"].clock.state is streams["walking"].clock.state

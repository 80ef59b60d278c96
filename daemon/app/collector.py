"""Python's cyclic garbage collector, set for a daemon whose objects mostly live as long as it does.

Measured at 1,000 accounts (`bench/scale.py`): the collector's full passes walked about 1.3 million tracked
objects (clients, gauges, trails, the policy's memory) every few seconds. Each pass held the event loop for
0.45 to 1.5 s, so a burst of marks was decided up to 1.5 s late, and together the passes took a sixth of the
daemon's CPU. Yet nearly all of those objects live as long as the daemon. What marginguard makes and drops at
every mark (states, views, figures) is freed by reference counting, without the collector.

So after each full pass, whatever survived it is put out of the collector's sight (`gc.freeze`), and later
passes walk only what was made since. Frozen objects are still freed by reference counting. Only a reference
cycle among them would outlive its use, so once an hour they are handed back (`gc.unfreeze`) to one full pass,
which reclaims any such cycle, and are then frozen again. That pass holds the loop about a second at 1,000
accounts, once an hour.

The young generation is collected every 100,000 new objects rather than every 700: each young pass walks what
its objects refer to (a websocket frame's 500 parsed marks, an account's new state), and fewer, larger passes
measured cheaper over 100 s at 1,000 accounts (0.46 of a core at 700, 0.44 at 10,000, 0.37 at 100,000). The
garbage a young pass finds is a few reference cycles (exceptions and their frames): 100,000 objects is a few
megabytes at most.

But Python counts the young generation as allocations minus deallocations of any tracked object, and the
daemon's steady state frees one old object (the state, view, figures a decision replaced) for each new one it
makes. So the count stayed near zero while the young generation grew for minutes (420,000 objects measured at
1,000 accounts after a minute), and the pass that finally came held the loop 270 to 650 ms: a burst of marks
decided that late. So the young generation is also collected on a timer, whatever its count (`young_pass`, every
`YOUNG_PASS_EVERY_S`), and its survivors are frozen at once: each pass walks one second's new objects (17 ms on
average, 70 ms at most, measured at 1,000 accounts) and reclaims the cycles made and dropped within it.

When the loop has just been busy, the pass waits for it to be idle again, and is made at once then. Marks often
come in bursts (Binance sends every market's mark in one frame a second), and each burst leaves its new states
and figures for the next pass: on a 1 s timer alone, a pass landed inside a burst now and then and walked them
there, and that burst was decided up to 40 ms later (`bench/scale.py`, 1,000 accounts: burst p99 170-235 ms). The
loop counts as busy while a timer of the collector's comes due more than `BUSY_LATENESS_S` late (a long pass of
the loop: a burst being parsed and decided); the first timely check after that makes the pass, so the burst's
objects are walked right after it, and a later pass in the quiet second has little left to walk. A loop that is
never idle long enough still gets a pass every `YOUNG_PASS_AT_LATEST_S`.

A cycle that outlives its young pass waits for the hourly full pass. The one measured in numbers is asyncio's own:
each closed socket transport is left in a reference cycle, and an account's REST connection closes about once a
reconciliation (about 5,000 objects a minute at 1,000 accounts, all reclaimed by the full pass).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from typing import Any

FULL_PASS_EVERY_S = 3600.0
YOUNG_PASS_EVERY_S = 1.0
YOUNG_PASS_AT_LATEST_S = 2.0  # however busy the loop
CHECK_EVERY_S = 0.02  # how often the collector looks at the loop
BUSY_LATENESS_S = 0.005  # a check this late: the loop was busy (a pass of the loop that long)
YOUNG_THRESHOLD = 100_000


class YoungPassTimer:
    """When the young passes are made (pure: the caller gives the loop's times). `due` is asked at each of the
    collector's checks, `passed` told after each pass."""

    def __init__(self, now: float) -> None:
        self._passed_at = now
        self._busy = False  # the loop was busy at some check since the last pass

    def due(self, now: float, lateness_s: float) -> bool:
        """Whether the check at `now`, `lateness_s` late, makes a pass: never while the loop is busy (unless the
        pass is `YOUNG_PASS_AT_LATEST_S` overdue); when idle, at once if the loop was busy since the last pass
        (what the busy stretch made is walked now, before the next one), else once `YOUNG_PASS_EVERY_S` has
        passed."""
        busy = lateness_s > BUSY_LATENESS_S
        self._busy = self._busy or busy
        since = now - self._passed_at
        if since >= YOUNG_PASS_AT_LATEST_S:
            return True
        return not busy and (self._busy or since >= YOUNG_PASS_EVERY_S)

    def passed(self, now: float) -> None:
        self._passed_at = now
        self._busy = False


class Collector:
    """Installed for the daemon's life (`install` ... `uninstall`); `run` makes the timed young passes and the
    hourly full pass."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thresholds = gc.get_threshold()
        self.full_passes = 0  # full passes seen (the collector's own and the hourly one)

    def install(self) -> None:
        gc.set_threshold(YOUNG_THRESHOLD, *self._thresholds[1:])
        gc.callbacks.append(self._observe)

    def uninstall(self) -> None:
        """Back to Python's own settings, every frozen object handed back to the collector."""
        if self._observe in gc.callbacks:
            gc.callbacks.remove(self._observe)
        gc.set_threshold(*self._thresholds)
        gc.unfreeze()

    def _observe(self, phase: str, info: dict[str, Any]) -> None:
        # Runs inside the collection, on whichever thread allocated (the journal's too): only note it here, and
        # freeze from the event loop once the collection is over.
        if phase == "stop" and info.get("generation") == 2:
            self.full_passes += 1
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nothing left to keep fast
                self._loop.call_soon_threadsafe(gc.freeze)

    def full_pass(self) -> None:
        """Every object back in the collector's sight, and one full pass over them (then frozen again)."""
        gc.unfreeze()
        gc.collect()

    def young_pass(self) -> None:
        """The objects made since the last pass: their dropped cycles reclaimed, the survivors frozen."""
        gc.collect(0)
        gc.freeze()

    async def run(self) -> None:
        loop = self._loop
        full_pass_due = loop.time() + FULL_PASS_EVERY_S
        timer = YoungPassTimer(loop.time())
        while True:
            asked = loop.time()
            await asyncio.sleep(CHECK_EVERY_S)
            now = loop.time()
            if now >= full_pass_due:
                full_pass_due = now + FULL_PASS_EVERY_S
                self.full_pass()
            elif timer.due(now, now - asked - CHECK_EVERY_S):
                self.young_pass()
            else:
                continue
            timer.passed(loop.time())

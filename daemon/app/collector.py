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
YOUNG_THRESHOLD = 100_000


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
        full_pass_due = self._loop.time() + FULL_PASS_EVERY_S
        while True:
            await asyncio.sleep(YOUNG_PASS_EVERY_S)
            if self._loop.time() >= full_pass_due:
                full_pass_due = self._loop.time() + FULL_PASS_EVERY_S
                self.full_pass()
            else:
                self.young_pass()

"""One timer for every runner's next time-based judgement (a minimum duration running out, a repeat falling due, a
stream turning blind, a silence ending), instead of a one-second tick per account.

Each runner says when it next needs to look (`at(owner, when, wake)`; a later call replaces its deadline, None
cancels it); the scheduler keeps the deadlines in a heap and one event-loop timer on the earliest, and calls the
owners' `wake` once their time has come. No task of its own: a timer callback, so nothing outlives the loop.
With 1,000 accounts and nothing moving, the event loop holds one timer instead of a thousand sleeping tasks.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import weakref
from collections.abc import Callable

Wake = Callable[[], None]


class Deadlines:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._heap: list[tuple[float, int, object]] = []
        self._due: dict[object, tuple[float, Wake]] = {}  # owner -> its one deadline (loop time) and wake
        self._order = itertools.count()  # ties broken by insertion, never by comparing owners
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")

    def at(self, owner: object, when: float | None, wake: Wake) -> None:
        """Call `wake` at loop time `when` (None: never), replacing `owner`'s previous deadline."""
        if when is None:
            self._due.pop(owner, None)  # its heap entry is skipped when it comes up
            return
        known = self._due.get(owner)
        if known is not None and known[0] == when:
            return
        self._due[owner] = (when, wake)
        heapq.heappush(self._heap, (when, next(self._order), owner))
        if len(self._heap) > 2 * len(self._due) + 64:
            # Mostly replaced deadlines (owners that move theirs on every step): keep only the live ones.
            self._heap = [(w, n, o) for w, n, o in self._heap if self._due.get(o, (None,))[0] == w]
            heapq.heapify(self._heap)
        if when < self._timer_at:
            self._arm(when)

    def pending(self) -> int:
        return len(self._due)

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._timer, self._timer_at = None, float("inf")
        now = self._loop.time()
        while self._heap and self._heap[0][0] <= now:
            when, _n, owner = heapq.heappop(self._heap)
            known = self._due.get(owner)
            if known is None or known[0] != when:
                continue  # replaced or cancelled since
            del self._due[owner]
            known[1]()
        # Entries of replaced deadlines are dropped as they come up; the timer goes to the next live one.
        while self._heap:
            when, _n, owner = self._heap[0]
            known = self._due.get(owner)
            if known is not None and known[0] == when:
                self._arm(when)
                return
            heapq.heappop(self._heap)


_SHARED: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Deadlines] = weakref.WeakKeyDictionary()


def shared_deadlines() -> Deadlines:
    """The running loop's one scheduler (every runner of the process shares it)."""
    loop = asyncio.get_running_loop()
    deadlines = _SHARED.get(loop)
    if deadlines is None:
        deadlines = _SHARED[loop] = Deadlines(loop)
    return deadlines

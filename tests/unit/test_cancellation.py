"""A stop must stop: on Python 3.11, `asyncio.wait_for` swallows a cancellation that arrives in the same turn of
the event loop as the awaited thing completes (it returns the result instead), so a loop that waits with it —
an account runner woken by a mark, the outbox woken by an alert — could survive a SIGTERM and hold the daemon's
shutdown until systemd killed it (seen once: a test's daemon stopped only at pytest's 300 s timeout).
`asyncio.timeout` does not lose the cancellation; the daemon's waits use it."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest

DAEMON = Path(__file__).resolve().parents[2] / "daemon"
# One-shot waits at shutdown or in the demo, where a lost cancellation only ends the wait early.
WAIT_FOR_ALLOWED = {"exchanges/connector.py", "exchanges/gateway.py", "app/demo_command.py"}


async def _woken_and_cancelled_together(wait: str) -> bool:
    """Whether a task waiting on an event with `wait` stops when it is cancelled as the event is set."""
    woken = asyncio.Event()

    async def wait_like_a_runner() -> None:
        if wait == "wait_for":
            await asyncio.wait_for(woken.wait(), 10)
        else:
            async with asyncio.timeout(10):
                await woken.wait()
        # Returning here means the wait answered "woken" to a task told to stop: a runner's loop would go on.

    task = asyncio.create_task(wait_like_a_runner())
    await asyncio.sleep(0)  # the task now waits
    woken.set()  # its wait completes in this turn of the loop...
    task.cancel()  # ...and the stop arrives in the same turn
    try:
        await task
    except asyncio.CancelledError:
        return True
    return False


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="wait_for keeps the cancellation from Python 3.12 on")
async def test_wait_for_loses_a_stop_that_comes_as_the_event_is_set_and_asyncio_timeout_does_not() -> None:
    assert not await _woken_and_cancelled_together("wait_for")  # why the daemon does not use it
    assert await _woken_and_cancelled_together("timeout")


async def test_a_wait_with_asyncio_timeout_always_stops_when_cancelled_as_it_is_woken() -> None:
    assert await _woken_and_cancelled_together("timeout")


def test_the_daemon_waits_with_asyncio_timeout_not_wait_for() -> None:
    found = sorted(
        str(path.relative_to(DAEMON))
        for path in DAEMON.rglob("*.py")
        if not path.is_relative_to(DAEMON / "sim") and re.search(r"\bwait_for\(", path.read_text())
    )
    # receiver.py's Condition.wait_for is another function of the same name.
    assert set(found) - WAIT_FOR_ALLOWED - {"notify/receiver.py"} == set()

"""A full disk under the journal: marginguard keeps talking, says what is wrong, and moves no money.

The journal lives on a small tmpfs that the test fills to the last byte while the daemon runs (a real full disk:
SQLite's writes fail with "database or disk is full"). The slow bleed then runs: its alerts must still reach the
receiver (sent from memory), the failure itself is alerted, /healthz turns red with the reason, and the top-up
the bleed calls for is refused rather than started without its journal record. Freeing the disk brings the
all-clear of the failure, /healthz back to 200, and everything that was held in memory into the journal, with
no alert delivered twice.

Mounting a tmpfs needs root (or a user namespace); elsewhere the test is skipped.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from daemon.notify.receiver import Receiver
from daemon.sim.server import SimServer
from daemon.store import Journal
from tests.e2e.support import (
    Bleed,
    DaemonProcess,
    account_for,
    config_document,
    eventually,
    eventually_async,
    first,
    free_port,
    webhook_alerts,
    webhook_sink,
    write_config,
)

SPEED = 2.0
DISK = "8m"


@contextlib.contextmanager
def small_disk(path: Path) -> Iterator[Path]:
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK}", "tmpfs", str(path)], capture_output=True, check=False
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(disk: Path) -> Path:
    """Fill `disk` until the file system refuses another byte."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as out:
        for chunk in (1 << 16, 4096, 512, 1):
            while True:
                try:
                    out.write(b"\0" * chunk)
                except OSError as error:
                    assert error.errno == errno.ENOSPC, error
                    break
    return filler


async def health(port: int) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/healthz") as response,
    ):
        return response.status, await response.json()


async def test_a_full_disk_keeps_alerts_flowing_says_so_and_starts_no_top_up(tmp_path: Path) -> None:
    async with contextlib.AsyncExitStack() as stack:
        disk = stack.enter_context(small_disk(tmp_path / "state"))
        sim = await stack.enter_async_context(SimServer("binance"))
        receiver = await stack.enter_async_context(Receiver())
        bleed = Bleed(sim, SPEED)
        bleed.setup()
        stack.push_async_callback(bleed.stop)
        port = free_port()
        document = config_document(
            disk, port, [account_for("main", sim)], [webhook_sink(receiver.url)], topup=True
        )
        config = write_config(tmp_path / "marginguard.toml", document)
        daemon = await stack.enter_async_context(DaemonProcess(config, port))
        await daemon.wait_ready()
        assert (await health(port))[0] == 200

        filler = fill(disk)
        bleed.play()

        def told(kind: str, **match: Any) -> Any:
            return lambda: first(webhook_alerts(receiver), kind, **match)

        failure = await eventually(told("journal_failure"), 40, "the journal failure alert", daemon)
        assert failure["severity"] == "critical" and "disk is full" in failure["summary"], failure
        await eventually(
            told("liquidation_risk", severity="critical"), 40, "the critical alert, from memory", daemon
        )
        refused = await eventually(told("topup_refused"), 40, "the top-up refused", daemon)
        assert "journal cannot be written" in refused["summary"], refused["summary"]
        status, body = await health(port)
        assert status == 503 and "cannot be written" in " ".join(body["reasons"]), body
        assert bleed.add_margin_requests() == [], "a top-up was started without its journal record"

        os.remove(filler)
        await eventually(
            told("journal_failure", resolved=True), 20, "the journal failure's all-clear", daemon
        )

        async def healthy() -> bool:
            return (await health(port))[0] == 200

        await eventually_async(healthy, 10, "/healthz to turn green", daemon)
        await eventually(lambda: bleed.task is not None and bleed.task.done(), 60, "the price path to end")

        alerts = webhook_alerts(receiver)
        keys = Counter(a["idempotency_key"] for a in alerts)
        assert [k for k, n in keys.items() if n > 1] == [], "an alert was delivered twice"
        assert len(bleed.add_margin_requests()) <= 1
        with Journal(disk / "journal.sqlite") as journal:
            journaled = {entry["summary"] for entry in journal.history(limit=1000)}
        assert failure["summary"] in journaled and refused["summary"] in journaled, (
            "memory was not written back"
        )

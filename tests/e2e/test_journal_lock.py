"""One journal, one daemon: a second `marginguard run` on the same storage_path refuses to start, while the
read-only commands (`history`, `silence`) keep working beside the running daemon; a daemon killed with -9 leaves
no lock behind."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from pathlib import Path

from daemon.notify.receiver import Receiver
from daemon.sim.server import SimServer
from tests.e2e.support import (
    REPO_ROOT,
    DaemonProcess,
    account_for,
    config_document,
    free_port,
    webhook_sink,
    write_config,
)


async def _cli(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "daemon",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=REPO_ROOT,
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_a_second_daemon_on_the_same_journal_exits_2_naming_it_and_its_holder(tmp_path: Path) -> None:
    async with contextlib.AsyncExitStack() as stack:
        sim = await stack.enter_async_context(SimServer("binance"))
        receiver = await stack.enter_async_context(Receiver())
        first_port, second_port = free_port(), free_port()
        sinks = [webhook_sink(receiver.url)]
        accounts = [account_for("main", sim)]
        first_config = write_config(
            tmp_path / "first.toml", config_document(tmp_path, first_port, accounts, sinks, topup=False)
        )
        # Another configuration file (and HTTP port), the same journal: what a copied unit file does.
        second_config = write_config(
            tmp_path / "second.toml", config_document(tmp_path, second_port, accounts, sinks, topup=False)
        )
        first = await stack.enter_async_context(DaemonProcess(first_config, first_port))
        await first.wait_ready()

        second = await stack.enter_async_context(DaemonProcess(second_config, second_port))
        assert await second.wait(20) == 2, second.tail()
        journal = str(tmp_path / "journal.sqlite")
        lines = [line for line in second.output.splitlines() if line.strip()]
        assert len(lines) == 1, second.output
        assert journal in lines[0] and f"pid {first.process.pid}" in lines[0], lines[0]  # type: ignore[union-attr]

        # The operator's read-only commands work beside the running daemon.
        code, out, err = await _cli("history", "--config", str(first_config), "--json")
        assert code == 0, err
        assert isinstance(json.loads(out), list)
        code, out, err = await _cli(
            "silence", "--config", str(first_config), "--account", "main", "--for", "10m", "--json"
        )
        assert code == 0, err
        assert first.running

        # kill -9 leaves no stale lock: the next daemon starts at once.
        first.signal(signal.SIGKILL)
        assert await first.wait(10) == -signal.SIGKILL
        third = await stack.enter_async_context(DaemonProcess(second_config, second_port))
        await third.wait_ready()
        third.signal(signal.SIGTERM)
        assert await third.wait(15) == 0, third.tail()

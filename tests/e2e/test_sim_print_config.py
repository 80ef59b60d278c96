"""From `marginguard sim --print-config toml` to a running daemon, as a new user goes: the printed
`[[accounts]]` block pasted into a configuration is valid as it is, and `marginguard run` on it watches the
simulator's account until ready."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from daemon.app.sim_command import BLOCK_END
from tests.e2e.support import REPO_ROOT, DaemonProcess, free_port

READ_S = 30.0


async def _printed_block(process: asyncio.subprocess.Process) -> str:
    """The lines between the paste comment and the block's end marker."""
    assert process.stdout is not None
    lines: list[str] = []
    async with asyncio.timeout(READ_S):
        while (line := (await process.stdout.readline()).decode()) and line.strip() != BLOCK_END:
            if lines or line.startswith("# paste into marginguard.toml"):
                lines.append(line)
    return "".join(lines[1:])


@pytest.mark.parametrize("exchange", ["binance", "bybit", "okx"])
async def test_the_printed_accounts_block_runs_as_it_is(exchange: str, tmp_path: Path) -> None:
    sim = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "daemon",
        "sim",
        "--exchange",
        exchange,
        "--print-config",
        "toml",
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        block = await _printed_block(sim)
        assert block.startswith("[[accounts]]\n"), block
        port = free_port()
        config = tmp_path / "marginguard.toml"
        config.write_text(
            f'[daemon]\nstorage_path = "{tmp_path / "journal.sqlite"}"\nhttp_bind = "127.0.0.1:{port}"\n\n{block}'
        )
        async with DaemonProcess(config, port) as daemon:
            await daemon.wait_ready(45)
    finally:
        sim.terminate()
        async with asyncio.timeout(10):
            await sim.wait()

"""`marginguard status` as a trader types it while the daemon watches the simulator: in a terminal a table with
each position's size in base units, notional, leverage, margin mode, mark, liquidation price, distance, margin
ratio and unrealised PnL, the daemon's own figures; piped, the daemon's /status as JSON."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp

from daemon.notify.receiver import Receiver
from daemon.sim.server import SimServer
from tests.e2e.support import (
    REPO_ROOT,
    DaemonProcess,
    account_for,
    config_document,
    eventually_async,
    free_port,
    webhook_sink,
    write_config,
)

LEGS = [  # (symbol, side, contracts, margin mode, leverage)
    ("BTCUSDT", "long", 0.05, "isolated", 20),
    ("ETHUSDT", "short", 1.0, "cross", 10),
]
COLUMNS = ("size", "notional", "lev.", "mode", "mark", "liq. price", "distance", "margin ratio", "uPnL")


def _in_a_terminal(config: Path) -> str:
    """`marginguard status` with its stdout a terminal (a pseudo-terminal), as a person runs it."""
    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "daemon", "status", "--config", str(config)],
            cwd=REPO_ROOT,
            stdout=follower,
            stderr=subprocess.PIPE,
        )
        os.close(follower)
        chunks = []
        with contextlib.suppress(OSError):  # EIO once the child has exited and the terminal is drained
            while chunk := os.read(leader, 65536):
                chunks.append(chunk)
        assert process.wait(timeout=30) == 0, process.stderr.read() if process.stderr else ""
    finally:
        os.close(leader)
    return b"".join(chunks).decode().replace("\r\n", "\n")


def _rows(table: str) -> list[list[str]]:
    """Cells split on runs of two spaces or more (the table's column gap)."""
    import re

    return [re.split(r"\s{2,}", line.strip()) for line in table.splitlines() if line.strip()]


def _close(shown: str, value: float | None, what: str) -> None:
    if value is None:
        assert shown == "unknown", (what, shown)
    elif shown.endswith("%"):
        assert math.isclose(float(shown[:-1]), value * 100, abs_tol=0.0051), (what, shown, value)
    else:
        assert math.isclose(float(shown.removesuffix("x").replace(",", "")), value, rel_tol=1e-5), (
            what,
            shown,
        )


async def test_status_prints_a_table_of_the_daemons_figures_in_a_terminal_and_json_when_piped(
    tmp_path: Path,
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        sim = await stack.enter_async_context(SimServer("binance"))
        receiver = await stack.enter_async_context(Receiver())
        http = await stack.enter_async_context(aiohttp.ClientSession())
        for symbol, side, contracts, mode, leverage in LEGS:
            body = {"symbol": symbol, "side": side, "contracts": contracts, "action": "open"}
            body |= {"margin_mode": mode, "leverage": leverage}
            async with http.post(f"{sim.http_base}/_sim/position", json=body) as response:
                assert response.status == 200, await response.text()
        port = free_port()
        config = write_config(
            tmp_path / "marginguard.toml",
            config_document(
                tmp_path, port, [account_for("main", sim)], [webhook_sink(receiver.url)], topup=False
            ),
        )
        daemon = await stack.enter_async_context(DaemonProcess(config, port))
        await daemon.wait_ready()

        async def every_leg_known() -> dict[str, Any] | None:
            async with http.get(f"http://127.0.0.1:{port}/status") as response:
                status: dict[str, Any] = await response.json()
            legs = status["accounts"]["main"]["legs"]
            known = len(legs) == len(LEGS) and all(leg.get("leverage") for leg in legs)
            return status if known else None

        status = await eventually_async(every_leg_known, 30, "every leg with its figures", daemon)
        # Nothing moves on the simulator meanwhile (no scenario): the command sees the same figures.
        table = await asyncio.to_thread(_in_a_terminal, config)
        piped = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "daemon", "status", "--config", str(config)],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )

    header, *rows = _rows(table)
    assert header == ["account", "symbol", "side", *COLUMNS], table
    legs = {(leg["symbol"], leg["side"]): leg for leg in status["accounts"]["main"]["legs"]}
    assert sorted((r[1], r[2]) for r in rows) == sorted(legs), table
    for row in rows:
        cells = dict(zip(header, row, strict=True))
        leg = legs[(cells["symbol"], cells["side"])]
        assert cells["account"] == "main" and cells["mode"] == leg["margin_mode"]
        for column, key in [
            ("size", "quantity"),
            ("notional", "notional"),
            ("lev.", "leverage"),
            ("mark", "mark_price"),
            ("liq. price", "liquidation_price"),
            ("distance", "distance_to_liquidation"),
            ("margin ratio", "margin_ratio"),
            ("uPnL", "unrealized_pnl"),
        ]:
            _close(cells[column], leg[key], f"{cells['symbol']} {column}")
    assert {cells for cells in (r[header.index("lev.")] for r in rows)} == {"20x", "10x"}

    assert piped.returncode == 0, piped.stderr
    document = json.loads(piped.stdout)
    assert {(leg["symbol"], leg["side"]) for leg in document["accounts"]["main"]["legs"]} == set(legs)

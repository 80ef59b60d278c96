"""Start-up as users notice it: `marginguard calc` answers without loading the exchange library, and
`marginguard run` answers /healthz from its first moments, while its accounts are still starting."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import aiohttp

from tests.e2e.support import (
    REPO_ROOT,
    DaemonProcess,
    config_document,
    eventually_async,
    free_port,
    write_config,
)

# What only watching accounts needs: none of it may be loaded by `calc`, nor before the listener is up.
RUNTIME = ("ccxt", "asyncpg", "matplotlib", "daemon.exchanges", "daemon.app.supervisor", "daemon.app.runner")


def loaded_after(code: str) -> list[str]:
    """The modules of `RUNTIME` a fresh interpreter has loaded after running `code`."""
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    modules = json.loads(done.stdout.splitlines()[-1])
    return [name for name in modules if name.startswith(RUNTIME)]


def test_calc_does_not_load_the_exchange_library() -> None:
    example = REPO_ROOT / "config" / "example_account.json"
    code = f"from daemon.app.cli import main\nassert main(['calc', '--json', {str(example)!r}]) == 0"
    assert loaded_after(code) == []


def test_the_listener_answers_before_the_exchange_library_is_loaded() -> None:
    code = """
import asyncio, aiohttp
from daemon.app.http import Metrics
from daemon.app.http_face import Face
from daemon.app.run_command import register

async def main():
    face = Face(Metrics())
    await face.open("127.0.0.1:0")
    port = face.runner.addresses[0][1]
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/healthz") as health:
            assert health.status == 200, health.status
        async with session.get(f"http://127.0.0.1:{port}/readyz") as ready:
            assert ready.status == 503 and "starting" in (await ready.json())["accounts"]["daemon"]
    await face.close()

asyncio.run(main())
"""
    assert loaded_after(code) == []


async def test_healthz_answers_while_the_accounts_are_still_starting(tmp_path: Path) -> None:
    # An exchange that accepts connections and never answers: the account stays in its first snapshot.
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    nowhere = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    urls = {name: f"{nowhere}/fapi/v1" for name in ("fapiPublic", "fapiPrivate")}
    urls |= {"fapiPublicV2": f"{nowhere}/fapi/v2", "fapiPrivateV2": f"{nowhere}/fapi/v2"}
    urls |= {"fapiPublicV3": f"{nowhere}/fapi/v3", "fapiPrivateV3": f"{nowhere}/fapi/v3"}
    account = {
        "id": "main",
        "exchange": "binanceusdm",
        "mode": "demo",
        "api_key": "key-of-an-exchange-that-never-answers",
        "secret": "secret-of-an-exchange-that-never-answers",
        "ccxt_config": {"urls": {"api": urls}, "options": {"fetchCurrencies": False}},
    }
    port = free_port()
    config = write_config(
        tmp_path / "marginguard.toml", config_document(tmp_path, port, [account], [], topup=False)
    )
    async with server, DaemonProcess(config, port) as daemon, aiohttp.ClientSession() as session:

        async def healthy() -> bool:
            try:
                async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                    return response.status == 200
            except aiohttp.ClientError:
                return False

        await eventually_async(healthy, 30.0, "/healthz to answer 200", daemon)
        async with session.get(f"http://127.0.0.1:{port}/readyz") as response:
            assert response.status == 503
            reasons = (await response.json())["accounts"]
        assert reasons.get("main", reasons.get("daemon", "")) != "fresh", reasons

"""The real daemon as users run it: `python -m daemon run --config FILE` in a subprocess, against simulators and
an alert receiver that live in the test's own event loop on 127.0.0.1.

`DaemonProcess` starts the process, collects its stdout and stderr, and always ends it (SIGKILL as a last
resort) when its `async with` block is left. Waits poll a condition with a deadline; a timeout fails with the
daemon's output attached, so a red test says what the daemon was doing.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import io
import os
import random
import re
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from daemon.app.check_config_command import write_toml
from daemon.app.demo_command import sim_account
from daemon.core.types import Side
from daemon.notify.receiver import Received, Receiver
from daemon.sim.scenario import ScenarioRunner, load_scenario
from daemon.sim.server import SimServer

REPO_ROOT = Path(__file__).resolve().parents[2]
SYMBOL = "BTCUSDT"  # the simulator's neutral symbol of the slow-bleed position
UNIFIED_SYMBOL = "BTC/USDT:USDT"
# Where each dialect takes an add-margin request.
ADD_MARGIN_PATHS = {
    "binance": "/fapi/v1/positionMargin",
    "bybit": "/v5/position/add-margin",
    "okx": "/api/v5/account/position/margin-balance",
}
# The smallest step each exchange's add-margin amount is rounded down to (Binance: the market's amount
# precision, which ccxt applies; Bybit: 4 decimals; OKX: 8 decimals).
MARGIN_STEPS = {"binance": 1e-3, "bybit": 1e-4, "okx": 1e-8}

# Secrets planted in the configuration; none of them may ever show up in the daemon's output.
SLACK_TOKEN = "T0E2ETEST/B0E2ETEST/slackPathToken5f3a9c"
DISCORD_TOKEN = "424242/discordPathToken-8b1e7d"
WEBHOOK_TOKEN = "webhookPathToken-c29d41"
TELEGRAM_BOT_TOKEN = "777000111:telegramBotToken-AAE2e3f"
HMAC_SECRET = "hmacSecret-91b7e0aa"
CHAT_ID = "-100200300"


# Ports handed to a child to listen on are drawn below the kernel's ephemeral range: a port the kernel chose for
# the probe could be taken by any outgoing connection (the simulator's sockets, ccxt's) before the child binds it,
# which made a daemon fail to start under load. Nothing takes a port below that range unasked.
LISTEN_PORTS = range(20_000, 32_000)


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def free_port() -> int:
    """A loopback port nobody listens on right now (for the daemon's /readyz), outside the ephemeral range."""
    ports = [port for port in LISTEN_PORTS if port < _ephemeral_low()] or list(LISTEN_PORTS)
    for port in random.sample(ports, 200):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free loopback port between 20000 and 32000")


# ---- configuration ----


def thresholds(min_duration_s: float = 0.5) -> dict[str, Any]:
    """The slow bleed starts 4.6 % from liquidation: warn at 3.5 %, critical at 2 %."""
    return {
        "warning_distance": 0.035,
        "critical_distance": 0.02,
        "hysteresis": 0.005,
        "min_duration_s": min_duration_s,
        "repeat_interval_s": 300,
        "stale_after_s": 10,
    }


def topup_section(enabled: bool) -> dict[str, Any]:
    """Top up at 1.5 % back to 8 %: far enough beyond warning + hysteresis that the alert resolves and the rest
    of the bleed (about 2 % more) does not bring it back."""
    return {
        "enabled": enabled,
        "trigger_distance": 0.015,
        "target_distance": 0.08,
        "max_per_action": 500.0,
        "max_per_position_per_day": 1000.0,
        "max_per_account_per_day": 1000.0,
        "min_free_balance": 50.0,
        "cooldown_s": 30,
        "max_attempts": 2,
    }


def all_sinks(receiver_url: str) -> list[dict[str, Any]]:
    """One sink of every type, each pointed at the receiver (which answers like the platform its path names)."""
    return [
        {"name": "ops-slack", "type": "slack", "url": f"{receiver_url}/services/{SLACK_TOKEN}"},
        {"name": "ops-discord", "type": "discord", "url": f"{receiver_url}/api/webhooks/{DISCORD_TOKEN}"},
        {
            "name": "ops-telegram",
            "type": "telegram",
            "base_url": receiver_url,
            "bot_token": TELEGRAM_BOT_TOKEN,
            "chat_id": CHAT_ID,
        },
        webhook_sink(receiver_url),
    ]


def webhook_sink(receiver_url: str) -> dict[str, Any]:
    return {
        "name": "audit-hook",
        "type": "webhook",
        "url": f"{receiver_url}/hooks/{WEBHOOK_TOKEN}",
        "hmac_secret": HMAC_SECRET,
    }


def config_document(
    state_dir: Path,
    http_port: int,
    accounts: list[dict[str, Any]],
    sinks: list[dict[str, Any]],
    *,
    topup: bool,
    log_level: str = "info",
) -> dict[str, Any]:
    return {
        "daemon": {
            "storage_path": str(state_dir / "journal.sqlite"),
            "http_bind": f"127.0.0.1:{http_port}",
            "log_format": "json",
            "log_level": log_level,
            "shutdown_timeout_s": 8,
        },
        "rules": thresholds(),
        "topup": topup_section(topup),
        "accounts": accounts,
        "sinks": sinks,
    }


def write_config(path: Path, document: dict[str, Any]) -> Path:
    out = io.StringIO()
    write_toml(document, out)
    path.write_text(out.getvalue(), encoding="utf-8")
    return path


def account_for(account_id: str, sim: SimServer) -> dict[str, Any]:
    return sim_account(account_id, sim.ccxt_id, sim.ccxt_config())


# ---- the simulated exchange ----


@dataclass
class Bleed:
    """The slow-bleed scenario on one simulator: set up at once, its price path played on demand."""

    sim: SimServer
    speed: float
    runner: ScenarioRunner | None = None
    task: asyncio.Task[int] | None = None

    def setup(self) -> None:
        self.runner = ScenarioRunner(
            load_scenario("slow_bleed"), self.sim.engine, self.sim.faults, self.speed
        )
        self.runner.setup(self.sim.account.api_key)

    def play(self) -> None:
        assert self.runner is not None, "setup() first"
        self.task = asyncio.create_task(self.runner.play(), name=f"bleed-{self.sim.exchange}")

    async def stop(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    @property
    def api_key(self) -> str:
        return self.sim.account.api_key

    def liquidation_price(self) -> float | None:
        return self.sim.engine.liquidation_price(self.api_key, SYMBOL, Side.LONG)

    def isolated_margin(self) -> float | None:
        position = self.sim.engine.find_position(self.api_key, SYMBOL, Side.LONG)
        return None if position is None else position.isolated_margin

    def add_margin_requests(self) -> list[dict[str, Any]]:
        path = ADD_MARGIN_PATHS[self.sim.exchange]
        return [entry for entry in self.sim.engine.request_log if entry["path"] == path]


# ---- the daemon process ----


class DaemonProcess:
    """`marginguard run --config FILE` as a child process; always ended when the `async with` block ends."""

    def __init__(self, config: Path, http_port: int | None = None) -> None:
        self.config = config
        self.http_port = http_port
        self.process: asyncio.subprocess.Process | None = None
        self.stdout = bytearray()
        self.stderr = bytearray()
        self._readers: list[asyncio.Task[None]] = []
        self.returncode: int | None = None

    async def __aenter__(self) -> DaemonProcess:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        # The child sees no MARGINGUARD_* variables nor a systemd socket from the test's environment.
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("MARGINGUARD_") and key not in ("NOTIFY_SOCKET", "CREDENTIALS_DIRECTORY")
        }
        env["PYTHONUNBUFFERED"] = "1"
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "daemon",
            "run",
            "--config",
            str(self.config),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=REPO_ROOT,
            env=env,
        )
        assert self.process.stdout is not None and self.process.stderr is not None
        self._readers = [
            asyncio.create_task(_drain(self.process.stdout, self.stdout)),
            asyncio.create_task(_drain(self.process.stderr, self.stderr)),
        ]

    @property
    def output(self) -> str:
        """Everything the daemon wrote so far, stdout then stderr."""
        return (bytes(self.stdout) + bytes(self.stderr)).decode("utf-8", "replace")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def signal(self, signum: int) -> None:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signum)

    async def wait(self, within_s: float) -> int:
        """The exit code, once the process has exited and its output is read (TimeoutError past `within_s`)."""
        assert self.process is not None
        async with asyncio.timeout(within_s):
            code = await self.process.wait()
            await asyncio.gather(*self._readers)
        self.returncode = code
        return code

    async def close(self) -> None:
        if self.process is None:
            return
        if self.process.returncode is None:
            self.signal(signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            await self.wait(10)

    async def wait_ready(self, within_s: float = 30.0) -> None:
        """Until /readyz answers 200: every account has its first snapshot and fresh streams."""
        assert self.http_port is not None, "give the daemon an http port to watch its readiness"
        url = f"http://127.0.0.1:{self.http_port}/readyz"
        async with aiohttp.ClientSession() as session:

            async def ready() -> bool:
                try:
                    async with session.get(url) as response:
                        return response.status == 200
                except aiohttp.ClientError:
                    return False

            await eventually_async(ready, within_s, "the daemon to become ready", self)

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.output.splitlines()[-lines:])


async def _drain(stream: asyncio.StreamReader, into: bytearray) -> None:
    while chunk := await stream.read(65536):
        into.extend(chunk)


# ---- waiting ----

POLL_S = 0.05


async def eventually(
    condition: Callable[[], Any], within_s: float, what: str, daemon: DaemonProcess | None = None
) -> Any:
    """The condition's first truthy value, checked every 50 ms; fails after `within_s` saying what was awaited."""

    async def check() -> Any:
        return condition()

    return await eventually_async(check, within_s, what, daemon)


async def eventually_async(
    condition: Callable[[], Awaitable[Any]], within_s: float, what: str, daemon: DaemonProcess | None = None
) -> Any:
    deadline = time.monotonic() + within_s
    while True:
        value = await condition()
        if value:
            return value
        if daemon is not None and daemon.process is not None and daemon.process.returncode is not None:
            raise AssertionError(
                f"the daemon exited ({daemon.process.returncode}) while waiting for {what}:\n{daemon.tail()}"
            )
        if time.monotonic() > deadline:
            tail = f"\ndaemon output:\n{daemon.tail()}" if daemon is not None else ""
            raise AssertionError(f"timed out after {within_s} s waiting for {what}{tail}")
        await asyncio.sleep(POLL_S)


# ---- what the receiver got ----


def webhook_alerts(receiver: Receiver, account: str | None = None) -> list[dict[str, Any]]:
    """The webhook documents accepted so far, in arrival order (optionally one account's)."""
    docs = [r.json for r in receiver.received("webhook")]
    return [d for d in docs if account is None or d["account"] == account]


def first(
    alerts: list[dict[str, Any]], kind: str, severity: str | None = None, resolved: bool = False
) -> dict[str, Any] | None:
    for alert in alerts:
        if (
            alert["kind"] == kind
            and alert["resolved"] is resolved
            and (severity is None or alert["severity"] == severity)
        ):
            return alert
    return None


def index_of(alerts: list[dict[str, Any]], alert: dict[str, Any]) -> int:
    return next(i for i, a in enumerate(alerts) if a["idempotency_key"] == alert["idempotency_key"])


def stated_amount(action: str) -> float:
    """The amount in a top-up alert's action, e.g. "added 140.23457 USDT margin" -> 140.23457."""
    match = re.match(r"added ([0-9.,]+) \w+ margin", action)
    assert match is not None, f"not a done top-up: {action!r}"
    return float(match.group(1).replace(",", ""))


def visible_text(received: Received) -> str:
    """What a person reads on the platform, markup and escapes removed."""
    doc = received.json
    if received.platform == "slack":
        return html.unescape(str(doc["text"]))
    if received.platform == "discord":
        return re.sub(r"\\([\\*_~`|])", r"\1", str(doc["content"]))
    if received.platform == "telegram":  # a message's text, or a photo's caption
        return html.unescape(re.sub(r"<[^>]+>", "", str(doc.get("text") or doc["caption"])))
    return str(doc.get("summary", ""))


def decoded_png(data: bytes) -> tuple[int, int]:
    """A PNG's (width, height) once fully decoded by Pillow (matplotlib's own image library): every chunk, CRC
    and pixel row read, as a chat client does before showing it. Raises if it is not a valid PNG."""
    from PIL import Image

    assert data.startswith(b"\x89PNG\r\n\x1a\n"), data[:16]
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG", image.format
        image.load()
        width, height = image.size
    return width, height

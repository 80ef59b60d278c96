"""The benchmarks' mark trace: off unless its variable names a file; on, it times ccxt's mark frames and each
runner's decisions, with the mark ccxt held at that moment (how a bench counts decisions on superseded marks)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from daemon.app.settings_env import refuse_stray_variables
from daemon.exchanges import mark_trace
from daemon.exchanges.mark_trace import ENV, MarkTrace


class FakeClient:
    """What the trace touches of a ccxt client: its message handler and its ticker cache."""

    def __init__(self) -> None:
        self.handled: list[Any] = []
        self.tickers: dict[str, dict[str, Any]] = {}

    def handle_message(self, ws: Any, message: Any) -> None:
        self.handled.append(message)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def leg(symbol: str, mark: float | None) -> tuple[str, float | None]:
    return symbol, mark


def test_off_unless_the_variable_names_a_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(ENV, raising=False)
    assert mark_trace._from_environment() is None
    assert mark_trace.TRACE is None  # the test run itself has no trace: the daemon's hooks are skipped
    monkeypatch.setenv(ENV, str(tmp_path / "trace.txt"))
    assert isinstance(mark_trace._from_environment(), MarkTrace)


def test_its_variable_is_not_refused_as_a_stray_setting() -> None:
    refuse_stray_variables({ENV: "/tmp/trace.txt"}, ["daemon", "rules"], [])


def test_frames_are_timed_before_ccxt_handles_them(tmp_path: Path) -> None:
    clock = Clock()
    trace = MarkTrace(str(tmp_path / "trace.txt"), clock)
    client = FakeClient()
    trace.watch_frames(client)
    client.handle_message(None, {"e": "markPriceUpdate", "s": "BTCUSDT", "p": "60000.10"})
    client.handle_message(None, {"result": None, "id": 1})  # a subscription answer: handled, not timed
    trace.flush()
    assert len(client.handled) == 2
    assert (tmp_path / "trace.txt").read_text().splitlines() == ["F 100.000000 BTCUSDT 60000.10"]


def test_a_decision_is_written_once_per_new_mark_with_the_mark_ccxt_held(tmp_path: Path) -> None:
    clock = Clock()
    trace = MarkTrace(str(tmp_path / "trace.txt"), clock)
    client = FakeClient()
    client.tickers["BTC/USDT:USDT"] = {"markPrice": 60001.0}
    trace.decided("main", [leg("BTC/USDT:USDT", 60000.0), leg("ETH/USDT:USDT", None)], client)
    clock.now = 101.0
    trace.decided("main", [leg("BTC/USDT:USDT", 60000.0)], client)  # unchanged: nothing new
    trace.decided("other", [leg("BTC/USDT:USDT", 60000.0)], client)  # another account's decision
    trace.flush()
    assert (tmp_path / "trace.txt").read_text().splitlines() == [
        "D 100.000000 main BTC/USDT:USDT 60000.0 60001.0",
        "D 101.000000 other BTC/USDT:USDT 60000.0 60001.0",
    ]


def test_lines_reach_the_file_soon_after_a_write_even_when_nothing_follows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mark_trace, "FLUSH_EVERY_S", 0.01)
    path = tmp_path / "trace.txt"

    async def write_then_wait() -> list[str]:
        trace = MarkTrace(str(path), Clock())
        trace.decided("main", [leg("BTC/USDT:USDT", 60000.0)], FakeClient())
        await asyncio.sleep(0.1)
        return path.read_text().splitlines()

    assert asyncio.run(write_then_wait()) == ["D 100.000000 main BTC/USDT:USDT 60000.0 None"]

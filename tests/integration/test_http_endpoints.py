"""The daemon's HTTP endpoints on a real loopback socket, and sd_notify on a real datagram socket."""

from __future__ import annotations

import socket
from pathlib import Path

import aiohttp
import pytest

from daemon.app import systemd
from daemon.app.http import Metrics, build_app, parse_bind, start_http


async def test_readyz_tells_running_from_seeing_and_metrics_are_exposed() -> None:
    metrics = Metrics()
    state = {"ready": False}

    def readiness() -> tuple[bool, dict[str, str]]:
        if state["ready"]:
            return True, {"demo": "fresh"}
        return False, {"demo": "positions stream stale for 31 s"}

    metrics.positions.labels(account="demo").set(2)
    metrics.min_distance.labels(account="demo").set(0.0425)
    runner = await start_http(build_app(metrics, readiness), "127.0.0.1:0")
    try:
        port = runner.addresses[0][1]
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                assert response.status == 200
            async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
                assert response.status == 503
                assert (await response.json())["accounts"]["demo"] == "positions stream stale for 31 s"
            state["ready"] = True
            async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
                assert response.status == 200
            async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
                text = await response.text()
        assert 'marginguard_positions{account="demo"} 2.0' in text
        assert 'marginguard_min_distance_to_liquidation{account="demo"} 0.0425' in text
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("bind", "expected"), [("127.0.0.1:9108", ("127.0.0.1", 9108)), ("[::1]:80", ("::1", 80))]
)
def test_bind_addresses(bind: str, expected: tuple[str, int]) -> None:
    assert parse_bind(bind) == expected


def test_sd_notify_reaches_systemds_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind(str(path))
        receiver.settimeout(2.0)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        monkeypatch.setenv("WATCHDOG_USEC", "20000000")
        monkeypatch.delenv("WATCHDOG_PID", raising=False)
        assert systemd.notify("READY=1") is True
        assert receiver.recv(64) == b"READY=1"
        assert systemd.watchdog_interval() == 10.0


def test_sd_notify_is_a_no_op_outside_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.notify("READY=1") is False


async def test_incident_charts_are_served_as_images_by_their_number() -> None:
    charts = {812: b"\x89PNG\r\n\x1a\n...chart bytes"}
    app = build_app(Metrics(), lambda: (True, {}), chart=charts.get)
    runner = await start_http(app, "127.0.0.1:0")
    try:
        base = f"http://127.0.0.1:{runner.addresses[0][1]}"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/incident/812.png") as response:
                assert response.status == 200 and await response.read() == charts[812]
                assert response.headers["Content-Type"] == "image/png"
                assert response.headers["X-Content-Type-Options"] == "nosniff"
            for missing in ("/incident/813.png", "/incident/abc.png", "/incident/812.svg"):
                async with http.get(base + missing) as response:
                    assert response.status == 404, missing
    finally:
        await runner.cleanup()

"""Small commands a new user meets first, run as they run them (subprocesses): the local receiver that prints
alerts, the simulator's help naming its scenarios, and a command whose reader goes away early."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.request

from daemon.app.sim_command import SCENARIOS
from daemon.sim.scenario import scenario_names
from tests.e2e.support import REPO_ROOT, free_port

READ_S = 20.0


def _marginguard(*args: str) -> list[str]:
    return [sys.executable, "-m", "daemon", *args]


def _post_json(url: str, payload: dict[str, object]) -> int:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=READ_S) as answer:
        status: int = answer.status
        return status


async def test_marginguard_receiver_prints_each_alert_a_webhook_sink_sends_it() -> None:
    port = free_port()
    receiver = await asyncio.create_subprocess_exec(
        *_marginguard("receiver", "--port", str(port)), cwd=REPO_ROOT, stdout=asyncio.subprocess.PIPE
    )
    assert receiver.stdout is not None
    try:
        async with asyncio.timeout(READ_S):
            banner = (await receiver.stdout.readline()).decode()
            assert f"http://127.0.0.1:{port}/alerts" in banner, banner
            alert = {
                "kind": "liquidation_risk",
                "severity": "warning",
                "resolved": False,
                "summary": "BTC at 4%",
            }
            status = await asyncio.to_thread(_post_json, f"http://127.0.0.1:{port}/alerts", alert)
            assert status == 200
            printed = (await receiver.stdout.readline()).decode()
        assert "BTC at 4%" in printed and "warning" in printed, printed
    finally:
        receiver.terminate()
        await receiver.wait()


def test_a_receiver_on_a_taken_port_says_so_and_exits_2() -> None:
    port = free_port()
    first = subprocess.Popen(
        _marginguard("receiver", "--port", str(port)), cwd=REPO_ROOT, stdout=subprocess.PIPE
    )
    try:
        assert first.stdout is not None and "listening" in first.stdout.readline().decode()
        second = subprocess.run(
            _marginguard("receiver", "--port", str(port)),
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert second.returncode == 2
        assert "marginguard receiver:" in second.stdout and "Traceback" not in second.stderr
    finally:
        first.terminate()
        first.wait()


def test_sim_help_names_every_scenario_and_says_the_account_starts_empty_without_one() -> None:
    assert sorted(SCENARIOS) == scenario_names()
    shown = subprocess.run(
        _marginguard("sim", "--help"), cwd=REPO_ROOT, capture_output=True, text=True, timeout=30
    )
    flat = " ".join(shown.stdout.split())
    assert all(name in flat for name in SCENARIOS), flat
    assert "starts empty" in flat


def test_a_reader_that_goes_away_early_costs_no_traceback() -> None:
    """`marginguard sim --help | head -1`-like use: the pipe closes before the command has written everything."""
    script = (
        "import sys; from daemon.app import cli\n"
        "def chatty(_args):\n"
        "    for _ in range(200_000): print('x' * 80)\n"
        "    return 0\n"
        "parser = cli.build_parser\n"
        "cli.build_parser = lambda: (lambda p: (p.set_defaults(handler=chatty), p)[1])(parser())\n"
        "sys.exit(cli.main([]))\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script], cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.readline()
    process.stdout.close()  # the reader goes away
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=30) == 1
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr, stderr

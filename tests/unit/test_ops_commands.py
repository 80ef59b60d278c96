"""`marginguard silence`, `history` and `status` as an operator runs them (subprocesses, a real journal file)."""

from __future__ import annotations

import calendar
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from daemon.app.silence_command import parse_duration
from daemon.core.alerts import Alert, AlertIdentity, AlertKind, Severity
from daemon.store import Journal

REPO = Path(__file__).resolve().parents[2]
CONFIG = """
[daemon]
storage_path = "journal.sqlite"
http_bind = "127.0.0.1:{port}"

[[accounts]]
id = "acct"
exchange = "binanceusdm"
mode = "demo"
api_key = "key-for-the-ops-test"
secret = "secret-for-the-ops-test"
"""


def _config(tmp_path: Path, port: int = 9) -> Path:
    path = tmp_path / "marginguard.toml"
    path.write_text(CONFIG.format(port=port))
    return path


def _marginguard(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "daemon", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_silence_is_journaled_until_it_expires(tmp_path: Path) -> None:
    config = _config(tmp_path)
    done = _marginguard(
        "silence",
        "--config",
        str(config),
        "--account",
        "acct",
        "--symbol",
        "BTC/USDT:USDT",
        "--for",
        "2h",
        "--reason",
        "maintenance",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("silence 1: acct BTC/USDT:USDT until ") and done.stdout.strip().endswith(
        " UTC"
    )
    with Journal(tmp_path / "journal.sqlite") as journal:
        [silence] = journal.active_silences(time.time())
        assert (silence.account, silence.symbol, silence.reason) == ("acct", "BTC/USDT:USDT", "maintenance")
        assert silence.until == pytest.approx(time.time() + 7200, abs=60)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("--account", "nobody", "--for", "1h"), "--account"),
        (("--account", "acct", "--for", "soon"), "--for"),
        (("--account", "acct", "--for", "0m"), "--for"),  # a silence of nothing is a mistake, said as one
        (("--account", "acct"), "--for"),
        (("--for", "1h"), "--account"),
    ],
)
def test_a_bad_silence_names_what_is_wrong_and_exits_2(
    tmp_path: Path, args: tuple[str, ...], named: str
) -> None:
    done = _marginguard("silence", "--config", str(_config(tmp_path)), *args)
    assert done.returncode == 2
    assert named in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_history_lists_the_latest_alerts_with_their_deliveries(tmp_path: Path) -> None:
    config = _config(tmp_path)
    alert = Alert(
        AlertIdentity("acct", "BTC/USDT:USDT", "long", "liquidation_risk"),
        AlertKind.LIQUIDATION_RISK,
        Severity.CRITICAL,
        False,
        1_000.0,
        "acct",
        "binanceusdm",
        "BTC/USDT:USDT",
        "long",
        0.1,
        65_000.0,
        63_900.0,
        0.017,
        0.18,
        None,
        "acct BTC/USDT:USDT long critical: 1.70% from liquidation",
        1,
    )
    with Journal(tmp_path / "journal.sqlite") as journal:
        journal.record_alert(alert, ["team-slack"], now=1_000.0)
    done = _marginguard("history", "--config", str(config), "--json")
    assert done.returncode == 0, done.stderr
    [entry] = json.loads(done.stdout)
    assert entry["summary"] == alert.summary
    assert entry["deliveries"] == [
        {"sink": "team-slack", "status": "pending", "attempts": 0, "last_error": None}
    ]


def test_status_says_so_when_no_daemon_answers(tmp_path: Path) -> None:
    done = _marginguard("status", "--config", str(_config(tmp_path, port=9)))
    assert done.returncode == 1
    assert "the daemon does not answer at http://127.0.0.1:9/status" in done.stderr


@pytest.mark.parametrize(
    ("text", "seconds"), [("30m", 1800.0), ("2h", 7200.0), ("1.5d", 129600.0), ("45s", 45.0)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_silences_in_force_are_listed_and_one_lifted_early_by_its_id(tmp_path: Path) -> None:
    config = str(_config(tmp_path))
    for symbol in ("BTC/USDT:USDT", "ETH/USDT:USDT"):
        added = _marginguard(
            "silence", "--config", config, "--account", "acct", "--symbol", symbol, "--for", "1h"
        )
        assert added.returncode == 0, added.stderr
    listed = json.loads(_marginguard("silence", "list", "--config", config).stdout)  # piped: JSON
    assert [(s["id"], s["symbol"]) for s in listed] == [(1, "BTC/USDT:USDT"), (2, "ETH/USDT:USDT")]

    removed = _marginguard("silence", "remove", "1", "--config", config)
    assert removed.returncode == 0, removed.stderr
    assert "silence 1 removed: acct BTC/USDT:USDT alerts resume" in removed.stdout
    with Journal(tmp_path / "journal.sqlite") as journal:  # what a running daemon reads every second
        assert [s.symbol for s in journal.active_silences(time.time())] == ["ETH/USDT:USDT"]

    again = _marginguard("silence", "remove", "1", "--config", config)
    assert again.returncode == 1
    assert "no silence 1 in force" in again.stderr
    missing = _marginguard("silence", "remove", "--config", config)
    assert missing.returncode == 2 and "give its ID" in missing.stderr


def test_history_and_silences_are_told_in_utc_whatever_the_machine_s_zone(tmp_path: Path) -> None:
    config = str(_config(tmp_path))
    env_zone = {"TZ": "America/New_York"}
    done = subprocess.run(
        [sys.executable, "-m", "daemon", "silence", "--config", config, "--account", "acct", "--for", "1h"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **env_zone},
    )
    assert done.returncode == 0, done.stderr
    until = done.stdout.strip().rsplit(" until ", 1)[1]
    expected = time.time() + 3600
    told = calendar.timegm(time.strptime(until, "%Y-%m-%d %H:%M:%S UTC"))
    assert abs(told - expected) < 60  # read as UTC, it is an hour from now


def test_status_watch_redraws_until_ctrl_c_and_keeps_asking_a_daemon_that_does_not_answer(
    tmp_path: Path,
) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "daemon",
            "status",
            "--config",
            str(_config(tmp_path, port=9)),
            "--watch",
            "0.1",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONFAULTHANDLER": "1"},  # a hang below is told with the child's stacks
        # As from a terminal: a suite started in the background of a script (`make test &`) has SIGINT ignored,
        # which its children inherit and Python then keeps; Ctrl-C would never reach a real user's that way.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert process.stdout is not None
    frames = 0
    while frames < 3:  # three redraws: it goes on after the first failure
        line = process.stdout.readline()
        assert line, process.stderr.read() if process.stderr else ""
        if "marginguard status · " in line:
            assert line.startswith("\x1b[H\x1b[2J") and " UTC · every 0.1 s · Ctrl-C to stop" in line
            frames += 1
        elif line.strip():
            assert "the daemon does not answer at http://127.0.0.1:9/status" in line
    process.send_signal(signal.SIGINT)
    try:
        process.communicate(timeout=10)  # drained while it exits: a full pipe cannot hold it
    except subprocess.TimeoutExpired:
        signals = _signal_masks(process.pid)  # pending, blocked, ignored, caught: where did the Ctrl-C go?
        process.send_signal(signal.SIGABRT)  # faulthandler prints every thread's stack, then it dies
        _out, err = process.communicate(timeout=10)
        raise AssertionError(f"still running 10 s after Ctrl-C ({signals}); its stacks:\n{err}") from None
    assert process.returncode == 0


def _signal_masks(pid: int) -> str:
    """The process's signal masks as Linux shows them (SIGINT is bit 1 of each), or why not."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            return " ".join(line.strip() for line in status if line.startswith(("SigPnd", "ShdPnd", "Sig")))
    except OSError as error:
        return f"no /proc status: {error}"


def test_status_watch_refuses_a_period_of_zero(tmp_path: Path) -> None:
    done = _marginguard("status", "--config", str(_config(tmp_path)), "--watch", "0")
    assert done.returncode == 2 and "--watch" in done.stderr

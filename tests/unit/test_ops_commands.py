"""`marginguard silence`, `history` and `status` as an operator runs them (subprocesses, a real journal file)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from daemon.app.ops_commands import parse_duration
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
    assert "silenced acct BTC/USDT:USDT until" in done.stdout
    with Journal(tmp_path / "journal.sqlite") as journal:
        [silence] = journal.active_silences(time.time())
        assert (silence.account, silence.symbol, silence.reason) == ("acct", "BTC/USDT:USDT", "maintenance")
        assert silence.until == pytest.approx(time.time() + 7200, abs=60)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("--account", "nobody", "--for", "1h"), "--account"),
        (("--account", "acct", "--for", "soon"), "--for"),
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

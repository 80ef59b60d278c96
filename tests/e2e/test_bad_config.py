"""A configuration marginguard cannot run with: exit code 2 and one line on stderr naming the field, before
anything connects (the exchange address here leads nowhere)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.support import DaemonProcess, config_document, webhook_sink, write_config

NOWHERE = "http://127.0.0.1:9"


def account(**changes: Any) -> dict[str, Any]:
    return {
        "id": "main",
        "exchange": "binanceusdm",
        "mode": "demo",
        "api_key": "key-that-never-connects",
        "secret": "secret-that-never-connects",
        "ccxt_config": {"urls": {"api": {"fapiPrivate": f"{NOWHERE}/fapi/v1"}}},
        **changes,
    }


@pytest.mark.parametrize(
    ("accounts", "rules", "field"),
    [
        ([account(exchange="binnance")], {}, "accounts[0].exchange"),
        ([account()], {"warning_distanse": 0.05}, "rules.warning_distanse"),
        ([account()], {"critical_distance": 0.2}, "rules.critical_distance"),
    ],
    ids=["misspelt-exchange", "unknown-key", "critical-looser-than-warning"],
)
async def test_a_bad_configuration_exits_2_with_one_line_naming_the_field(
    tmp_path: Path, accounts: list[dict[str, Any]], rules: dict[str, Any], field: str
) -> None:
    document = config_document(tmp_path, 0, accounts, [webhook_sink(NOWHERE)], topup=False)
    document["rules"].update(rules)
    async with DaemonProcess(write_config(tmp_path / "marginguard.toml", document)) as daemon:
        assert await daemon.wait(20) == 2
    lines = bytes(daemon.stderr).decode().splitlines()
    assert len(lines) == 1, lines
    assert field in lines[0], lines[0]
    assert not (tmp_path / "journal.sqlite").exists(), "nothing may start on a bad configuration"


@pytest.mark.parametrize(
    ("daemon_changes", "field"),
    [
        ({"storage_path": "{state}/taken"}, "daemon.storage_path"),  # a directory
        ({"storage_path": "{state}/file/journal.sqlite"}, "daemon.storage_path"),  # its parent is a file
        ({"http_bind": "0.0.0.0:0"}, "daemon.http_bind"),  # open to the network without an opt-in
    ],
    ids=["journal-is-a-directory", "journal-parent-is-a-file", "remote-http-without-opt-in"],
)
async def test_run_refuses_what_would_crash_it_or_expose_it_in_one_line(
    tmp_path: Path, daemon_changes: dict[str, str], field: str
) -> None:
    # Before: `run` started and crashed with a traceback on its first journal write, or listened on 0.0.0.0.
    (tmp_path / "taken").mkdir()
    (tmp_path / "file").write_text("")
    document = config_document(tmp_path, 0, [account()], [webhook_sink(NOWHERE)], topup=False)
    document["daemon"].update({k: v.format(state=tmp_path) for k, v in daemon_changes.items()})
    async with DaemonProcess(write_config(tmp_path / "marginguard.toml", document)) as daemon:
        assert await daemon.wait(20) == 2
    lines = bytes(daemon.stderr).decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"config error: {field}: "), lines[0]

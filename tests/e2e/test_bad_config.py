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

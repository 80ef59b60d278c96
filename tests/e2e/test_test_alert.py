"""`marginguard test-alert` as an operator runs it: one labelled test message through each configured sink (the
real transports, against a receiver that answers like each platform), and a clear verdict per sink."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from daemon.notify.receiver import Receiver
from tests.e2e.support import REPO_ROOT, all_sinks, write_config

SINK_PLATFORMS = {
    "ops-slack": "slack",
    "ops-discord": "discord",
    "ops-telegram": "telegram",
    "audit-hook": "webhook",
}


def _config(tmp_path: Path, receiver_url: str) -> Path:
    document = {
        "daemon": {"storage_path": str(tmp_path / "journal.sqlite"), "http_bind": "127.0.0.1:9"},
        "accounts": [
            {
                "id": "acct",
                "exchange": "binanceusdm",
                "mode": "demo",
                "api_key": "key-x",
                "secret": "secret-x",
            }
        ],
        "sinks": all_sinks(receiver_url),
    }
    return write_config(tmp_path / "marginguard.toml", document)


async def _test_alert(config: Path, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "daemon",
        "test-alert",
        "--config",
        str(config),
        *args,
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_every_sink_gets_a_labelled_test_message_and_each_verdict_is_printed(tmp_path: Path) -> None:
    async with Receiver() as receiver:
        code, out, err = await _test_alert(_config(tmp_path, receiver.url))
        assert code == 0, err
        assert sorted(out.splitlines()) == sorted(f"{name}: delivered" for name in SINK_PLATFORMS)
        for platform in SINK_PLATFORMS.values():
            [message] = receiver.received(platform)
            text = message.body.decode()
            assert "TEST MESSAGE" in text and "No position is concerned" in text, (platform, text)
        assert receiver.received("webhook")[0].json["kind"] == "test"
        assert not (tmp_path / "journal.sqlite").exists()  # a test is not an alert: nothing journaled


async def test_a_sink_that_refuses_is_named_with_its_reason_and_the_exit_code_says_so(tmp_path: Path) -> None:
    async with Receiver() as receiver:
        receiver.fail(403, times=1, platform="discord")
        code, out, _err = await _test_alert(_config(tmp_path, receiver.url), "--sink", "ops-discord")
        assert code == 1
        assert out.startswith("ops-discord: NOT delivered: ") and "403" in out
        assert not receiver.received("slack")  # only the named sink was tried


async def test_an_unknown_sink_name_is_refused_with_the_nearest_known_one(tmp_path: Path) -> None:
    async with Receiver() as receiver:
        code, out, err = await _test_alert(_config(tmp_path, receiver.url), "--sink", "ops-slak")
        assert code == 2 and out == ""
        assert err.strip() == "marginguard test-alert: --sink: no sink 'ops-slak'; did you mean 'ops-slack'?"
        assert not receiver.received()

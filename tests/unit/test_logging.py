"""Logs as an operator reads them: JSON lines when piped, a console when at a terminal, and no secret in
either: not under a secret's name, not inside a message, not in an exception's traceback."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from daemon.app.logging import (
    REDACTION_PROCESSORS,
    configure_logging,
    forget_secrets,
    get_logger,
    register_secrets,
)
from daemon.app.settings import load_settings
from daemon.app.settings_view import secret_values

API_KEY = "k3yAbCdEfGhIjKlMnOpQ7wxyz"
SECRET = "s3cr3t-ZYXWVUTSRQPONM"
PASSPHRASE = "Passphrase-0451"
SLACK_URL = "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXX"
DISCORD_URL = "https://discord.com/api/webhooks/1234567890/abcdefABCDEF-_xyz"
BOT_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
WEBHOOK_URL = "http://127.0.0.1:18782/alerts/7f3e9c1d2b"
ALL_SECRETS = (API_KEY, SECRET, PASSPHRASE, SLACK_URL, DISCORD_URL, BOT_TOKEN, WEBHOOK_URL)


@pytest.fixture(autouse=True)
def clean_logging() -> Iterator[None]:
    forget_secrets()
    yield
    forget_secrets()
    structlog.reset_defaults()
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == "marginguard"]:
        root.removeHandler(handler)
    logging.captureWarnings(False)
    sys.excepthook = sys.__excepthook__


def assert_no_secret(text: str) -> None:
    for secret in ALL_SECRETS:
        assert secret not in text
    assert "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw" not in text  # not even the token without its bot id


def log_everything(log: structlog.stdlib.BoundLogger) -> None:
    """The ways a secret reaches a log line: by key, nested, inside a message, in an exception."""
    log.info("account loaded", api_key=API_KEY, exchange="okx", config={"secret": SECRET, "uid": "7"})
    log.info("ccxt request", headers={"OK-ACCESS-PASSPHRASE": PASSPHRASE, "Content-Type": "application/json"})
    log.info(f"posting alert to {SLACK_URL} and {DISCORD_URL}")
    log.warning("sink failed", sink="tg", target=f"https://api.telegram.org/bot{BOT_TOKEN}/sendMessage")
    log.info("delivered", sink="local", webhook_url=WEBHOOK_URL, status=200)
    try:
        raise ConnectionError(f"POST {WEBHOOK_URL} failed; signed with {SECRET}")
    except ConnectionError:
        log.exception("webhook delivery failed", attempt=2)


def test_captured_events_hold_no_secret_but_keep_everything_else() -> None:
    register_secrets([WEBHOOK_URL, SECRET])  # free text is safe for the values registered at start-up
    configure_logging("json", stream=io.StringIO())

    with capture_logs(processors=list(REDACTION_PROCESSORS)) as events:
        log_everything(get_logger("marginguard.test"))

    assert_no_secret(repr(events))
    first = events[0]
    assert first["api_key"] == "***"
    assert first["exchange"] == "okx" and first["config"] == {"secret": "***", "uid": "7"}
    assert events[1]["headers"] == {"OK-ACCESS-PASSPHRASE": "***", "Content-Type": "application/json"}
    assert (
        events[2]["event"]
        == "posting alert to https://hooks.slack.com/*** and https://discord.com/api/webhooks/***"
    )
    assert events[3]["target"] == "https://api.telegram.org/bot***/sendMessage"
    assert events[4]["webhook_url"] == "***" and events[4]["status"] == 200
    failure = events[5]
    assert failure["attempt"] == 2 and failure["log_level"] == "error"
    assert "ConnectionError: POST *** failed; signed with ***" in failure["exception"]


def test_json_lines_when_piped_carry_no_secret() -> None:
    register_secrets([WEBHOOK_URL, SECRET])
    out = io.StringIO()
    configure_logging("auto", stream=out)  # a StringIO is no terminal: JSON

    log_everything(get_logger("marginguard.test"))

    text = out.getvalue()
    assert_no_secret(text)
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines[0]["event"] == "account loaded"
    assert (
        lines[0]["level"] == "info" and lines[0]["logger"] == "marginguard.test" and "timestamp" in lines[0]
    )
    assert lines[-1]["level"] == "error" and "Traceback" in lines[-1]["exception"]


def test_library_logs_through_the_standard_library_are_redacted_too() -> None:
    register_secrets([SECRET])
    out = io.StringIO()
    configure_logging("json", stream=out)

    logging.getLogger("ccxt.base.exchange").warning(
        "GET https://fapi.binance.com/fapi/v3/account?timestamp=1&signature=9f2c0a77 X-MBX-APIKEY: %s",
        API_KEY,
    )
    try:
        raise ValueError(f"bad secret {SECRET}")
    except ValueError:
        logging.getLogger("aiohttp.client").exception("request failed")

    text = out.getvalue()
    assert_no_secret(text)
    assert "9f2c0a77" not in text
    ccxt_line, aiohttp_line = (json.loads(line) for line in text.splitlines())
    assert ccxt_line["logger"] == "ccxt.base.exchange" and "signature=***" in ccxt_line["event"]
    assert "ValueError: bad secret ***" in aiohttp_line["exception"]


def test_console_output_at_a_terminal_carries_no_secret() -> None:
    primary, secondary = os.openpty()
    terminal = os.fdopen(primary, "w", buffering=1)
    try:
        configure_logging("auto", stream=terminal)  # a terminal: console renderer, not JSON
        get_logger("marginguard.test").info("connected", api_key=API_KEY, url=SLACK_URL)
        terminal.flush()
        rendered = os.read(secondary, 65536).decode()
    finally:
        terminal.close()
        os.close(secondary)

    assert "connected" in rendered and not rendered.lstrip().startswith("{")
    assert_no_secret(rendered)


def test_console_format_can_be_forced_when_piped() -> None:
    out = io.StringIO()
    configure_logging("console", stream=out)

    get_logger("marginguard.test").info("started", accounts=1, bot_token=BOT_TOKEN)

    line = out.getvalue()
    assert "started" in line and "accounts=1" in line and "bot_token=***" in line
    assert_no_secret(line)


def test_secrets_from_the_settings_are_registered_and_masked_in_free_text(tmp_path: Path) -> None:
    config = tmp_path / "marginguard.toml"
    config.write_text(
        f"""
[[accounts]]
id = "okx"
exchange = "okx"
mode = "demo"
api_key = "{API_KEY}"
secret = "{SECRET}"
password_env = "OKX_PASSPHRASE"

[[sinks]]
name = "hook"
type = "webhook"
url = "{WEBHOOK_URL}"
"""
    )
    settings = load_settings(config, env={"OKX_PASSPHRASE": PASSPHRASE})
    register_secrets(secret_values(settings))
    out = io.StringIO()
    configure_logging("json", stream=out)

    log = get_logger("marginguard.test")
    log.info(f"ccxt said: invalid key {API_KEY} for passphrase {PASSPHRASE}")
    log.info("account", account=settings.account_configs()[0], note=f"secret={SECRET}")
    log.info("sending", to=f"{WEBHOOK_URL}?attempt=1")

    assert_no_secret(out.getvalue())


def test_an_uncaught_exception_and_a_warning_leave_the_process_redacted() -> None:
    program = f"""
import warnings
from daemon.app.logging import configure_logging, register_secrets
register_secrets([{SECRET!r}, {WEBHOOK_URL!r}])
configure_logging("json")
warnings.warn("retrying with {SECRET}")
raise RuntimeError("gave up on {WEBHOOK_URL} with {SECRET}")
"""
    completed = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 1
    assert_no_secret(completed.stdout + completed.stderr)
    lines = [json.loads(line) for line in completed.stdout.splitlines()]
    assert [line["event"] for line in lines][-1] == "uncaught exception"
    assert "RuntimeError: gave up on" in lines[-1]["exception"]
    assert any("retrying with ***" in line["event"] for line in lines)

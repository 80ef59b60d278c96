"""Secrets masked by value wherever they travel: whole, as a URL path or segment, percent-encoded, JSON-escaped,
a bot token without its bot id, a header value under any name, a proxy's password."""

from __future__ import annotations

import io
import json
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.app.logging import configure_logging, forget_secrets, get_logger, register_secrets
from daemon.app.redaction import Redactor, variants
from daemon.app.settings import load_settings
from daemon.app.settings_view import effective_config, secret_values
from tests.e2e.support import DISCORD_TOKEN, HMAC_SECRET, SLACK_TOKEN, TELEGRAM_BOT_TOKEN, WEBHOOK_TOKEN
from tests.unit.settings_samples import BINANCE_ACCOUNT, check_config, write

RECEIVER = "http://127.0.0.1:18790"
HEADER_VALUE = "hdr-7Qe2Lw9xZr"
PROXY_PASSWORD = "pr0xyPassw0rd"
PLANTED = {
    "slack": f"{RECEIVER}/services/{SLACK_TOKEN}",
    "discord": f"{RECEIVER}/api/webhooks/{DISCORD_TOKEN}",
    "webhook": f"{RECEIVER}/hooks/{WEBHOOK_TOKEN}?key=queryKey-55aa",
}
# What must never be seen, alone or inside anything: each token, and each of its path segments worth hiding.
NEVER = [
    *SLACK_TOKEN.split("/"),
    DISCORD_TOKEN.split("/")[1],
    WEBHOOK_TOKEN,
    "queryKey-55aa",
    TELEGRAM_BOT_TOKEN,
    TELEGRAM_BOT_TOKEN.split(":")[1],
    HMAC_SECRET,
    HEADER_VALUE,
    PROXY_PASSWORD,
]

CONFIG = (
    BINANCE_ACCOUNT
    + f"""
[accounts.ccxt_config]
httpsProxy = "http://marginguard:{PROXY_PASSWORD}@10.0.0.1:3128"

[accounts.ccxt_config.headers]
X-Client-Ref = "{HEADER_VALUE}"

[[sinks]]
name = "ops-slack"
type = "slack"
url = "{PLANTED["slack"]}"

[[sinks]]
name = "ops-discord"
type = "discord"
url = "{PLANTED["discord"]}"

[[sinks]]
name = "audit"
type = "webhook"
url = "{PLANTED["webhook"]}"
hmac_secret = "{HMAC_SECRET}"

[[sinks]]
name = "tg"
type = "telegram"
bot_token = "{TELEGRAM_BOT_TOKEN}"
chat_id = -100
base_url = "{RECEIVER}"
"""
)


@pytest.fixture(autouse=True)
def clean_logging() -> None:
    forget_secrets()


def assert_clean(text: str) -> None:
    for secret in NEVER:
        assert secret not in text, secret


def echoes(url: str) -> list[str]:
    """How a receiver's error page or a proxy might quote a webhook URL back."""
    path = url.split("//", 1)[1].split("/", 1)[1]
    return [
        f"404 Not Found: no route for POST /{path}",
        f"<pre>{quote('/' + path, safe='')}</pre>",
        json.dumps({"error": "unknown hook", "path": "/" + path}),
        f"upstream said: {url}",
    ]


def test_every_exit_of_check_config_is_clean(tmp_path: Path) -> None:
    config = write(tmp_path, CONFIG)
    for args in ((), ("--json",)):
        result = check_config(config, *args)
        assert result.returncode == 0, result.stderr
        assert_clean(result.stdout)
    shown = effective_config(load_settings(config, env={}))
    ccxt = shown["accounts"][0]["ccxt_config"]
    # Before: an X-Client-Ref header and a proxy password were printed as given.
    assert ccxt["headers"] == {"X-Client-Ref": "***"}
    assert ccxt["httpsProxy"] == "http://marginguard:***@10.0.0.1:3128"


def test_error_pages_that_echo_a_webhook_path_are_masked(tmp_path: Path) -> None:
    redactor = Redactor(secret_values(load_settings(write(tmp_path, CONFIG), env={})))
    for url in PLANTED.values():
        for echoed in echoes(url):
            assert_clean(redactor.text(echoed))
    telegram = f"Not Found: /bot{TELEGRAM_BOT_TOKEN}/sendMessage; token {TELEGRAM_BOT_TOKEN.split(':')[1]}"
    assert_clean(redactor.text(telegram))
    assert (
        redactor.text("POST /services failed, 3 webhooks pending")
        == "POST /services failed, 3 webhooks pending"
    )


def test_debug_logs_never_show_a_header_or_a_token_from_the_settings(tmp_path: Path) -> None:
    register_secrets(secret_values(load_settings(write(tmp_path, CONFIG), env={})))
    out = io.StringIO()
    configure_logging("json", "debug", stream=out)
    log = get_logger("ccxt.base.exchange")
    log.debug(f"request: GET https://fapi.binance.com/fapi/v3/account X-Client-Ref: {HEADER_VALUE}")
    log.debug("request", headers={"X-Client-Ref": HEADER_VALUE}, proxy=f"marginguard:{PROXY_PASSWORD}@proxy")
    for url in PLANTED.values():
        log.warning("delivery failed", reason=echoes(url)[0])
    try:
        raise RuntimeError(f"echoed {echoes(PLANTED['webhook'])[1]}")
    except RuntimeError:
        log.exception("sink raised")
    assert out.getvalue().count("\n") == 6
    assert_clean(out.getvalue())


secrets = st.text(
    st.sampled_from("abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789-_"), min_size=12, max_size=40
)


@given(token=secrets, prefix=st.text(max_size=30), suffix=st.text(max_size=30))
def test_a_webhook_token_never_survives_in_any_of_its_forms(token: str, prefix: str, suffix: str) -> None:
    url = f"https://hooks.example.net/in/{token}"
    redactor = Redactor([url])
    for form in (url, f"/in/{token}", token, quote(f"/in/{token}", safe=""), json.dumps(f"/in/{token}")):
        assert token not in redactor.text(prefix + form + suffix)


def test_variants_leave_out_what_would_mask_ordinary_words() -> None:
    found = variants("https://hooks.example.net/services/webhooks/T12/abcdefABCDEF123")
    assert "abcdefABCDEF123" in found and "/services/webhooks/T12/abcdefABCDEF123" in found
    assert "services" not in found and "webhooks" not in found and "T12" not in found

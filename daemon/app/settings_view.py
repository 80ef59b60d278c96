"""The settings as a person or a log may see them: every secret masked, everything else as loaded.

`effective_config` is what `marginguard check-config` prints; `secret_values` is what the redactors must never
let through (`daemon.app.logging.register_secrets`, `daemon.app.redaction.Redactor`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr

from daemon.app.redaction import MASK, Redactor
from daemon.app.settings import Settings

# Keys whose values are secret wherever they appear (ccxt_config options, proxies...).
SECRET_KEY_PATTERN = re.compile(
    r"(secret|passw|passphrase|token|api_?key|private_?key|signature|authorization|credential|cookie|session"
    r"|bearer|auth)",
    re.IGNORECASE,
)
# Everything under a `headers` table is a credential until proven otherwise (X-Api-Key, X-Client-Id, ...).
HEADERS = "headers"
# Only an API key's tail is shown, and only when long enough that 4 characters reveal little of it.
KEY_TAIL_FIELDS = frozenset({"api_key"})
MIN_LENGTH_FOR_TAIL = 12


def mask_secret(value: str, show_tail: bool = False) -> str:
    if show_tail and len(value) >= MIN_LENGTH_FOR_TAIL:
        return MASK + value[-4:]
    return MASK


def effective_config(settings: Settings) -> dict[str, Any]:
    """The configuration as JSON-ready data (unset keys left out), every secret "***" (API keys: "***abcd"),
    and, as a last guard, every configured secret value masked wherever else it appears."""
    dumped = settings.model_dump(mode="python", exclude_none=True)
    for sink in dumped.get("sinks", []):
        if sink.get("type") != "telegram":
            sink.pop("base_url", None)  # Telegram's API address: a default that means nothing to other sinks
    masked: dict[str, Any] = _masked(dumped, key="", secret=False)
    redactor = Redactor(secret_values(settings))
    guarded: dict[str, Any] = _redacted(masked, redactor)
    return guarded


def _masked(value: Any, key: str, secret: bool) -> Any:
    """`secret`: every string below is a credential (anything under `ccxt_config.headers`)."""
    if isinstance(value, SecretStr):
        return mask_secret(value.get_secret_value(), show_tail=key in KEY_TAIL_FIELDS)
    if isinstance(value, dict):
        inside = secret or key.lower() == HEADERS
        return {k: _masked(v, str(k), inside) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(item, key, secret) for item in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, str) and (secret or _secret_key(key)):
        return MASK
    if isinstance(value, str) and _url_password(value):
        return value.replace(_url_password(value) or "", MASK)
    return value


def _redacted(value: Any, redactor: Redactor) -> Any:
    if isinstance(value, dict):
        return {k: _redacted(v, redactor) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(item, redactor) for item in value]
    if isinstance(value, str) and value != MASK and not value.startswith(MASK):
        return redactor.text(value)
    return value


def _secret_key(key: str) -> bool:
    return bool(SECRET_KEY_PATTERN.search(key)) and not key.endswith(("_env", "_file"))


def _url_password(value: str) -> str | None:
    """The password in a URL's user-info (a proxy such as http://user:pass@host:3128), if any."""
    if "@" not in value or "://" not in value:
        return None
    try:
        return urlsplit(value).password
    except ValueError:
        return None


def secret_values(settings: Settings) -> set[str]:
    """Every secret string in the settings, for the redactors to mask wherever it (or a piece of it) turns up:
    the secret fields, anything under `ccxt_config.headers` or a secret-looking key, proxy passwords."""
    found: set[str] = set()
    _collect(settings.model_dump(mode="python"), "", False, found)
    return found


def _collect(value: Any, key: str, secret: bool, found: set[str]) -> None:
    if isinstance(value, SecretStr):
        found.add(value.get_secret_value())
    elif isinstance(value, dict):
        inside = secret or key.lower() == HEADERS
        for k, v in value.items():
            _collect(v, str(k), inside, found)
    elif isinstance(value, list | tuple):
        for item in value:
            _collect(item, key, secret, found)
    elif isinstance(value, str) and (secret or _secret_key(key)):
        found.add(value)
    elif isinstance(value, str):
        password = _url_password(value)
        if password:
            found.add(password)

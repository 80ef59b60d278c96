"""The settings as a person or a log may see them: every secret masked, everything else as loaded.

`effective_config` is what `marginguard check-config` prints; `secret_values` is what the log redactor must
never let through (`daemon.app.logging.register_secrets`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from daemon.app.settings import Settings

MASK = "***"
# Keys whose values are secret wherever they appear (ccxt_config headers, options...).
SECRET_KEY_PATTERN = re.compile(
    r"(secret|passw|passphrase|token|api_?key|private_?key|signature|authorization|credential|cookie)",
    re.IGNORECASE,
)
# Only an API key's tail is shown, and only when long enough that 4 characters reveal little of it.
KEY_TAIL_FIELDS = frozenset({"api_key"})
MIN_LENGTH_FOR_TAIL = 12


def mask_secret(value: str, show_tail: bool = False) -> str:
    if show_tail and len(value) >= MIN_LENGTH_FOR_TAIL:
        return MASK + value[-4:]
    return MASK


def effective_config(settings: Settings) -> dict[str, Any]:
    """The configuration as JSON-ready data (unset keys left out), every secret "***" (API keys: "***abcd")."""
    masked: dict[str, Any] = _masked(settings.model_dump(mode="python", exclude_none=True), key="")
    return masked


def _masked(value: Any, key: str) -> Any:
    if isinstance(value, SecretStr):
        return mask_secret(value.get_secret_value(), show_tail=key in KEY_TAIL_FIELDS)
    if isinstance(value, dict):
        return {k: _masked(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(item, key) for item in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, str) and SECRET_KEY_PATTERN.search(key) and not key.endswith(("_env", "_file")):
        return MASK
    return value


def secret_values(settings: Settings) -> set[str]:
    """Every secret string in the settings, for the log redactor to mask wherever it turns up."""
    found: set[str] = set()
    _collect(settings.model_dump(mode="python"), "", found)
    return found


def _collect(value: Any, key: str, found: set[str]) -> None:
    if isinstance(value, SecretStr):
        found.add(value.get_secret_value())
    elif isinstance(value, dict):
        for k, v in value.items():
            _collect(v, str(k), found)
    elif isinstance(value, list | tuple):
        for item in value:
            _collect(item, key, found)
    elif isinstance(value, str) and SECRET_KEY_PATTERN.search(key) and not key.endswith(("_env", "_file")):
        found.add(value)

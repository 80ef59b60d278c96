"""How a configuration problem is told: one line naming the field, `config error: <field>: <what to fix>`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from daemon.app.settings_base import FieldProblem
from daemon.app.settings_models import ACCOUNT_SECRETS, SINK_SECRETS

LIST_SECTIONS = ("accounts", "sinks", "routes")
# A value that fails validation is quoted back in the message, unless it is (meant to be) a secret.
SECRET_FIELDS = frozenset(ACCOUNT_SECRETS + SINK_SECRETS)


class SettingsError(Exception):
    """The configuration is unusable. Nothing to retry: print `str(error)` (one line) and exit 2."""

    def __init__(self, field_path: str, message: str, more: int = 0) -> None:
        super().__init__(field_path, message)
        self.field_path = field_path
        self.message = message
        self.more = more

    def __str__(self) -> str:
        tail = f" (and {self.more} more problem{'s' if self.more > 1 else ''})" if self.more else ""
        return f"config error: {self.field_path}: {self.message}{tail}"


_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def format_path(location: tuple[int | str, ...]) -> str:
    """("accounts", 0, "exchange") -> "accounts[0].exchange"; dict keys that are not names get quoted."""
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            segment = part if _PLAIN_KEY.match(part) else f'"{part}"'
            text += f".{segment}" if text else segment
    return text


def describe(problem: Mapping[str, Any]) -> tuple[str, str]:
    """One pydantic error as (field path, message a person can act on)."""
    location = tuple(problem["loc"])
    cause = (problem.get("ctx") or {}).get("error")
    if isinstance(cause, FieldProblem):
        prefix = format_path(location)
        return (f"{prefix}.{cause.field}" if prefix else cause.field), cause.message
    kind = problem["type"]
    if kind == "extra_forbidden":
        return format_path(location), "unknown key (not a marginguard setting)"
    if kind == "missing":
        return format_path(location), "required"
    if kind == "list_type" and len(location) == 1 and location[0] in LIST_SECTIONS:
        return str(location[0]), f"a list of tables: write [[{location[0]}]], not [{location[0]}]"
    message = str(problem["msg"]).removeprefix("Value error, ")
    secret = bool(location) and str(location[-1]) in SECRET_FIELDS
    given = problem.get("input")
    if kind != "value_error" and not secret and not isinstance(given, dict | list):
        message += f" (got {given[:60] if isinstance(given, str) else given!r})"
    return format_path(location) or "document", message[:1].lower() + message[1:]

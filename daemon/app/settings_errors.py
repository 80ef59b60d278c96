"""How a configuration problem is told: one line naming the field, `config error: <field>: <what to fix>`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, get_args

from pydantic import BaseModel

from daemon.app.settings_base import FieldProblem, nearest
from daemon.app.settings_models import ACCOUNT_SECRETS, SINK_SECRETS

LIST_SECTIONS = ("accounts", "sinks", "routes")
# A value that fails validation is quoted back in the message, unless it is (meant to be) a secret.
SECRET_FIELDS = frozenset(ACCOUNT_SECRETS + SINK_SECRETS)


class SettingsError(Exception):
    """The configuration is unusable. Nothing to retry: print `str(error)` (one line) and exit 2.

    `problems` holds every problem found at once, (field path, message), the first being the one `str()` names;
    `check-config` prints them all."""

    def __init__(
        self, field_path: str, message: str, more: int = 0, problems: tuple[tuple[str, str], ...] = ()
    ) -> None:
        super().__init__(field_path, message)
        self.field_path = field_path
        self.message = message
        self.more = more
        self.problems = problems or ((field_path, message),)

    def lines(self) -> list[str]:
        """Every problem, one line each."""
        return [f"config error: {field_path}: {message}" for field_path, message in self.problems]

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


def keys_at(model: type[BaseModel], location: tuple[int | str, ...]) -> list[str]:
    """The keys a table at `location` may hold (the fields of the model found there), [] where unknown."""
    current: type[BaseModel] | None = model
    for part in location:
        if current is None:
            return []
        if isinstance(part, int):
            continue  # an entry of a list of tables: the same model
        field = current.model_fields.get(part)
        current = _model_in(field.annotation) if field is not None else None
    return list(current.model_fields) if current is not None else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for inner in get_args(annotation):
        found = _model_in(inner)
        if found is not None:
            return found
    return None


def describe(problem: Mapping[str, Any], root: type[BaseModel] | None = None) -> tuple[str, str]:
    """One pydantic error as (field path, message a person can act on); with the settings' `root` model, an
    unknown key is answered with the nearest known one."""
    location = tuple(problem["loc"])
    cause = (problem.get("ctx") or {}).get("error")
    if isinstance(cause, FieldProblem):
        prefix = format_path(location)
        return (f"{prefix}.{cause.field}" if prefix else cause.field), cause.message
    kind = problem["type"]
    if kind == "extra_forbidden":
        hint = (
            nearest(str(location[-1]), keys_at(root, location[:-1])) if root is not None and location else ""
        )
        return format_path(location), f"unknown key (not a marginguard setting){hint}"
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

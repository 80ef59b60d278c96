"""What every configuration section shares: refusing unknown keys, and problems that name their field."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict


class FieldProblem(ValueError):
    """A validation failure located at `field`, a path relative to the model that raised it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def nearest(name: str, known: Iterable[str]) -> str:
    """ "; did you mean 'x'?" for the known name closest to a misspelt one (`okex` -> `okx`), else ""."""
    match = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f"; did you mean {match[0]!r}?" if match else ""

"""What every configuration section shares: refusing unknown keys, and problems that name their field."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class FieldProblem(ValueError):
    """A validation failure located at `field`, a path relative to the model that raised it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

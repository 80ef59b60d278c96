"""`value`: the class decorator of the immutable values built for every leg at every mark.

A frozen dataclass's `__init__` must get past its own `__setattr__`, which refuses, so it sets every field
through `object.__setattr__`: measured at 4 to 5 times the cost of a plain slotted class's `__init__` (1.4 µs
against 0.3 µs for seven fields), and the model, the live view and the policy build several such values for
every leg at every mark (dataclass `__init__`s were 8 % of the daemon's CPU samples on a steady feed of marks).

So these classes are frozen for the type checker, which refuses any assignment to their fields (`make lint` runs
mypy on the whole package, strictly on the core), and plain slotted dataclasses at run time, with the same
`__init__` signature, equality and hash as `dataclass(frozen=True, slots=True)` gives. Values that are not built
per mark stay ordinary frozen dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar, dataclass_transform

_T = TypeVar("_T")


@dataclass_transform(frozen_default=True)
def value(cls: type[_T]) -> type[_T]:
    """`@dataclass(frozen=True, slots=True)` to the type checker; see the module's docstring."""
    return dataclass(slots=True, unsafe_hash=True)(cls)

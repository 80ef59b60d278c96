"""Registry of the simulator's exchange dialects.

`DIALECTS["binance"]` imports `daemon.sim.binance` only when asked, so a dialect that is missing or broken
does not stop the others from loading. Each package must define the class named here; a new dialect is one
line of `_LOCATIONS` (its layout: `daemon.sim.dialect`).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping

from daemon.sim.dialect import SimDialect

_LOCATIONS: dict[str, tuple[str, str]] = {
    "binance": ("daemon.sim.binance", "BinanceDialect"),
    "bybit": ("daemon.sim.bybit", "BybitDialect"),
    "okx": ("daemon.sim.okx", "OkxDialect"),
}


class _LazyDialects(Mapping[str, type[SimDialect]]):
    def __init__(self, locations: dict[str, tuple[str, str]]) -> None:
        self._locations = locations

    def __getitem__(self, name: str) -> type[SimDialect]:
        module_name, class_name = self._locations[name]
        module = importlib.import_module(module_name)
        dialect: type[SimDialect] = getattr(module, class_name)
        return dialect

    def __iter__(self) -> Iterator[str]:
        return iter(self._locations)

    def __len__(self) -> int:
        return len(self._locations)


DIALECTS: Mapping[str, type[SimDialect]] = _LazyDialects(_LOCATIONS)


def available() -> list[str]:
    """Dialects that import cleanly right now."""
    names = []
    for name in DIALECTS:
        try:
            DIALECTS[name]
        except (ImportError, AttributeError):
            continue
        names.append(name)
    return names

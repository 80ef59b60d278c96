"""Registry of the simulator's exchange dialects.

`DIALECTS["binance"]` imports `daemon.sim.binance` only when asked, so a dialect that is missing or broken
does not stop the others from loading. Each module (or package) must define the class named here.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping

from daemon.sim.dialect import Dialect

_LOCATIONS: dict[str, tuple[str, str]] = {
    "binance": ("daemon.sim.binance", "BinanceDialect"),
    "bybit": ("daemon.sim.bybit", "BybitDialect"),
    "okx": ("daemon.sim.okx", "OkxDialect"),
}

CCXT_IDS = {"binance": "binanceusdm", "bybit": "bybit", "okx": "okx"}


class _LazyDialects(Mapping[str, type[Dialect]]):
    def __init__(self, locations: dict[str, tuple[str, str]]) -> None:
        self._locations = locations

    def __getitem__(self, name: str) -> type[Dialect]:
        module_name, class_name = self._locations[name]
        module = importlib.import_module(module_name)
        dialect: type[Dialect] = getattr(module, class_name)
        return dialect

    def __iter__(self) -> Iterator[str]:
        return iter(self._locations)

    def __len__(self) -> int:
        return len(self._locations)


DIALECTS: Mapping[str, type[Dialect]] = _LazyDialects(_LOCATIONS)


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

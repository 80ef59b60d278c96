"""One exchange account as the connector needs it: which exchange, which environment, which credentials.

Secrets live here only as plain strings handed to ccxt; `repr` masks them so a logged account never leaks one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, Literal

Mode = Literal["demo", "testnet", "live"]
MODES: tuple[Mode, ...] = ("demo", "testnet", "live")
EXCHANGE_IDS = ("binanceusdm", "bybit", "okx", "gate", "hyperliquid")
SECRET_FIELDS = frozenset({"api_key", "secret", "password", "private_key"})


def mask(value: str | None) -> str | None:
    """A secret as it may appear in logs: None stays None, anything else is hidden."""
    if value is None:
        return None
    # Keep a short prefix of long values so two keys can be told apart without revealing either.
    return f"{value[:3]}***" if len(value) >= 12 else "***"


@dataclass(frozen=True)
class ExchangeAccount:
    """Settings of one account.

    `exchange` is the ccxt id. `mode` picks the environment: "demo" (the exchange's demo trading with real
    market data), "testnet" (ccxt's sandbox) or "live" (real money: refused unless `allow_live` is True).
    `ccxt_config` is merged last into the ccxt constructor config, so URL overrides and options given there
    win over everything marginguard sets. `symbols`, when given, limits the account to these unified symbols.
    """

    account_id: str
    exchange: str
    mode: Mode = "demo"
    api_key: str | None = None
    secret: str | None = None
    password: str | None = None
    wallet_address: str | None = None
    private_key: str | None = None
    allow_live: bool = False
    ccxt_config: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    symbols: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.symbols is not None and not isinstance(self.symbols, tuple):
            object.__setattr__(self, "symbols", tuple(self.symbols))

    def __repr__(self) -> str:
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in SECRET_FIELDS:
                value = mask(value)
            elif f.name == "ccxt_config":
                value = _masked_config(value)
            parts.append(f"{f.name}={value!r}")
        return f"ExchangeAccount({', '.join(parts)})"

    __str__ = __repr__


_SECRET_CONFIG_KEYS = frozenset({"apikey", "secret", "password", "privatekey", "token", "uid"})


def _masked_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The ccxt config with credential-looking keys masked (users may put keys there too)."""
    return {
        key: (mask(str(value)) if key.lower() in _SECRET_CONFIG_KEYS else value)
        for key, value in config.items()
    }

"""The simulator's instruments: USDT-margined linear perpetuals with their maintenance brackets.

`load_markets(dialect)` reads `data/markets.json` and resolves the per-dialect figures (OKX sizes positions in
contracts of `ctVal` base units, so its `contract_size` is e.g. 0.01 for BTC; Binance and Bybit count base
units, contract size 1). Keys of the returned dict are exchange-neutral ids ("BTCUSDT"); every dialect
derives its own wire id (`BTC-USDT-SWAP`, ...) from `base`/`quote`.

`synthetic_markets(n)` makes extra, clearly fake markets (`SYN0001USDT`, ...) for load tests.

Tier rows are measured in notional (settle currency), whatever the dialect.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from typing import Any

from daemon.core.types import ContractType, Tier


@dataclass(frozen=True, slots=True)
class SimTier:
    min_notional: float
    max_notional: float
    mmr: float
    maintenance_amount: float
    max_leverage: float

    def to_core(self) -> Tier:
        return Tier(
            min_notional=self.min_notional,
            mmr=self.mmr,
            maintenance_amount=self.maintenance_amount,
            max_leverage=self.max_leverage,
        )


@dataclass(frozen=True, slots=True)
class Market:
    symbol: str
    base: str
    quote: str
    settle: str
    contract_type: ContractType
    contract_size: float
    price_tick: float
    qty_step: float
    min_qty: float
    max_leverage: float
    taker_fee: float
    maker_fee: float
    tiers: tuple[SimTier, ...]
    mark: float  # the initial mark price; the engine keeps the live one

    def tier_for_notional(self, notional: float) -> SimTier:
        """The bracket holding `notional` (the last one for anything beyond the table)."""
        chosen = self.tiers[0]
        for tier in self.tiers:
            if notional >= tier.min_notional:
                chosen = tier
        return chosen

    def core_tiers(self, in_contracts: bool = False) -> tuple[Tier, ...]:
        """The brackets as core tiers; `in_contracts` for venues that size brackets in contracts (OKX).

        Contract brackets (OKX) are the notional ones converted once at the listed mark and rounded, as
        the OKX dialect publishes them, and carry no maintenance amount (OKX publishes none).
        """
        if not in_contracts:
            return tuple(tier.to_core() for tier in self.tiers)
        per_contract = self.contract_size * self.mark
        return tuple(
            Tier(
                min_notional=float(round(tier.min_notional / per_contract)),
                mmr=tier.mmr,
                maintenance_amount=0.0,
                max_leverage=tier.max_leverage,
            )
            for tier in self.tiers
        )


def _market_from_json(row: dict[str, Any], dialect: str) -> Market:
    merged = {**row, **row.get("dialects", {}).get(dialect, {})}
    tiers = tuple(
        SimTier(
            min_notional=float(floor),
            max_notional=float(cap),
            mmr=float(mmr),
            maintenance_amount=float(cum),
            max_leverage=float(lev),
        )
        for floor, cap, mmr, cum, lev in merged["tiers"]
    )
    return Market(
        symbol=merged["symbol"],
        base=merged["base"],
        quote=merged["quote"],
        settle=merged["settle"],
        contract_type=ContractType(merged["contract_type"]),
        contract_size=float(merged.get("contract_size", 1.0)),
        price_tick=float(merged["price_tick"]),
        qty_step=float(merged["qty_step"]),
        min_qty=float(merged["min_qty"]),
        max_leverage=float(merged["max_leverage"]),
        taker_fee=float(merged["taker_fee"]),
        maker_fee=float(merged["maker_fee"]),
        tiers=tiers,
        mark=float(merged["mark"]),
    )


@cache
def _raw_rows() -> tuple[dict[str, Any], ...]:
    text = resources.files("daemon.sim").joinpath("data/markets.json").read_text(encoding="utf-8")
    return tuple(json.loads(text)["markets"])


def load_markets(dialect: str = "binance") -> dict[str, Market]:
    """All built-in markets as seen by `dialect` ("binance" | "bybit" | "okx"), keyed by neutral symbol."""
    return {row["symbol"]: _market_from_json(row, dialect) for row in _raw_rows()}


def synthetic_markets(
    count: int, template: Market | None = None, dialect: str = "binance"
) -> dict[str, Market]:
    """`count` fake markets shaped like `template` (SOL-like by default), with spread-out marks."""
    base_market = template or load_markets(dialect)["SOLUSDT"]
    markets: dict[str, Market] = {}
    for index in range(count):
        base = f"SYN{index:04d}"
        markets[f"{base}USDT"] = replace(
            base_market, symbol=f"{base}USDT", base=base, mark=round(1.0 + (index % 97) * 1.37, 4)
        )
    return markets

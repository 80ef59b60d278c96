"""Bybit v5 wire conventions: number formatting, symbol ids and the response envelope.

Bybit sends every figure as a JSON string (prices at the instrument's tick precision, quantities at its
step, money with up to 8 decimals), except a handful of integers (`retCode`, `positionIdx`, `tradeMode`,
`autoAddMargin`, `adlRankIndicator`, `seq`). An absent value is the empty string, never "0".
"""

from __future__ import annotations

import math
from typing import Any

from daemon.core.types import ContractType
from daemon.sim.markets import Market

MONEY_DECIMALS = 8


def decimals_of(step: float) -> int:
    """How many decimals a tick or step such as 0.001 needs (0 for whole numbers)."""
    if step <= 0:
        return MONEY_DECIMALS
    return max(0, min(12, -math.floor(math.log10(step) + 1e-9)))


def fixed(value: float, decimals: int) -> str:
    text = f"{value:.{decimals}f}"
    return "0" if text.strip("-0.") == "" else text


def trimmed(value: float, decimals: int = MONEY_DECIMALS) -> str:
    """`value` with at most `decimals` places and no trailing zeros ("0.5", "12", "0")."""
    text = fixed(value, decimals)
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def price(value: float | None, market: Market) -> str:
    """A price at the tick's precision, rounded to the nearest tick; "" when unknown."""
    if value is None:
        return ""
    ticks = round(value / market.price_tick)
    return fixed(ticks * market.price_tick, decimals_of(market.price_tick))


def qty(value: float, market: Market) -> str:
    return trimmed(value, decimals_of(market.qty_step))


def money(value: float | None) -> str:
    return "" if value is None else trimmed(value)


def wire_symbol(market: Market) -> str:
    """Bybit's instrument id: BTCUSDT for linear USDT perpetuals, BTCUSD for inverse ones."""
    if market.contract_type is ContractType.INVERSE:
        return f"{market.base}USD"
    return f"{market.base}{market.quote}"


def category_of(market: Market) -> str:
    return "inverse" if market.contract_type is ContractType.INVERSE else "linear"


def envelope(result: Any, now_ms: int, ret_code: int = 0, ret_msg: str = "OK") -> dict[str, Any]:
    """The frame every v5 REST answer comes in."""
    return {"retCode": ret_code, "retMsg": ret_msg, "result": result, "retExtInfo": {}, "time": now_ms}

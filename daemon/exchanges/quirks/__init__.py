"""Per-exchange differences, one small module each; `quirks_for(ccxt_id)` picks one."""

from __future__ import annotations

from daemon.exchanges.quirks import binance, bybit, gate, hyperliquid, okx
from daemon.exchanges.quirks.base import (
    AddMarginRequest,
    ExchangeCall,
    LegParam,
    MarkStream,
    ModeSettings,
    Quirks,
    RecordsCall,
    TiersCall,
    TransferRoute,
    unified_add_margin,
)

QUIRKS_BY_EXCHANGE: dict[str, Quirks] = {
    q.exchange_id: q for q in (binance.QUIRKS, bybit.QUIRKS, okx.QUIRKS, gate.QUIRKS, hyperliquid.QUIRKS)
}


def quirks_for(exchange_id: str) -> Quirks:
    """The quirks of a ccxt exchange id; a ValueError names the supported ids otherwise."""
    try:
        return QUIRKS_BY_EXCHANGE[exchange_id]
    except KeyError:
        known = ", ".join(sorted(QUIRKS_BY_EXCHANGE))
        raise ValueError(f"unsupported exchange {exchange_id!r} (supported: {known})") from None


__all__ = [
    "QUIRKS_BY_EXCHANGE",
    "AddMarginRequest",
    "ExchangeCall",
    "LegParam",
    "MarkStream",
    "ModeSettings",
    "Quirks",
    "RecordsCall",
    "TiersCall",
    "TransferRoute",
    "quirks_for",
    "unified_add_margin",
]

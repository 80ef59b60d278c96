"""OKX v5, USDT swaps (ccxt id `okx`)."""

from collections.abc import Mapping
from typing import Any

from daemon.exchanges.quirks.base import (
    ExchangeCall,
    LegParam,
    ModeSettings,
    Quirks,
    RecordsCall,
    TransferRoute,
    frozen,
)

# OKX demo trading is the live REST host with the `x-simulated-trading: 1` header and the wspap websocket
# host; ccxt's sandbox switch does exactly that, so demo and testnet are the same environment.
_SIMULATED = ModeSettings(sandbox=True, headers=frozen({"x-simulated-trading": "1"}))


def add_margin_request(market: Mapping[str, Any], amount: str, leg: Mapping[str, Any]) -> ExchangeCall:
    """POST /api/v5/account/position/margin-balance through ccxt's implicit method: ccxt 4.5.90's okx.add_margin
    sends the request, then fails parsing the answer (`type['type']` on a string), so the margin moves while
    the caller sees a TypeError."""
    return ExchangeCall(
        "private_post_account_position_margin_balance",
        (),
        frozen({"instId": market["id"], "type": "add", "amt": amount, **leg}),
    )


QUIRKS = Quirks(
    exchange_id="okx",
    family="okx",
    mark_stream="watch_mark_price",
    positions_push_is_thin=False,
    positions_quiet_by_nature=False,
    tiers_call="fetch_market_leverage_tiers",
    default_options=frozen({"fetchMarkets": {"types": ["swap"]}, "defaultType": "swap"}),
    signed_window_s=30.0,  # OKX refuses a REST timestamp more than 30 s old; the window cannot be set
    add_margin=add_margin_request,
    leg_param=LegParam("posSide", one_way="net", long="long", short="short"),
    margin_decimals=8,
    transfer=TransferRoute(
        from_account="funding", to_account="trading", client_id_param="clientId", client_id_style="hex"
    ),
    modes=frozen({"demo": _SIMULATED, "testnet": _SIMULATED}),
    # GET /api/v5/account/positions-history: closed legs with how they ended (type 3 liquidated, 4 partly).
    # ccxt stamps the rows with their opening time, so `since` is applied here, on the close (`uTime`).
    liquidations=RecordsCall(
        "fetch_positions_history",
        "okx_positions_history",
        pass_since=False,
        params=frozen({"instType": "SWAP"}),
        newest_first=True,
    ),
    # GET /api/v5/account/bills type 6 (margin transfer): subType 160 added, 161 removed, 162 added by the
    # exchange's auto-margin. ccxt's fetch_margin_adjustment_history fails parsing them (`type['type']` on a
    # string), so the implicit endpoint is read.
    margin_history=RecordsCall(
        "private_get_account_bills",
        "okx_margin_bills",
        implicit=True,
        since_param="begin",
        market_id_field="instId",
        params=frozen({"instType": "SWAP", "mgnMode": "isolated", "type": "6"}),
        newest_first=True,
    ),
)

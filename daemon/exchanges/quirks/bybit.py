"""Bybit v5, USDT linear perpetuals (ccxt id `bybit`)."""

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


def add_margin_request(market: Mapping[str, Any], amount: str, leg: Mapping[str, Any]) -> ExchangeCall:
    """ccxt has no unified add_margin for Bybit: POST /v5/position/add-margin through the implicit method."""
    category = "linear" if market.get("linear") else "inverse"
    return ExchangeCall(
        "private_post_v5_position_add_margin",
        (),
        frozen({"category": category, "symbol": market["id"], "margin": amount, **leg}),
    )


QUIRKS = Quirks(
    exchange_id="bybit",
    family="bybit",
    # ccxt has no watch_mark_price for Bybit; its `tickers.<SYMBOL>` topic carries markPrice.
    mark_stream="watch_ticker",
    positions_push_is_thin=False,
    positions_quiet_by_nature=False,
    tiers_call="fetch_market_leverage_tiers",
    default_options=frozen(
        {
            # Only linear swaps: ccxt otherwise also loads spot, inverse and option markets.
            "fetchMarkets": {"types": ["linear"]},
            "defaultType": "swap",
            "defaultSubType": "linear",
            "defaultSettle": "USDT",
            "recvWindow": 5000,  # ccxt's default too: said here because it bounds a late landing
        }
    ),
    signed_window_s=5.0,
    add_margin=add_margin_request,
    leg_param=LegParam("positionIdx", one_way=0, long=1, short=2),
    margin_decimals=4,
    # Unified accounts set the margin mode account-wide; position rows always say tradeMode 0.
    margin_mode_in_positions=False,
    # instruments-info has no fee rates (ccxt assumes 0.06 %); /v5/account/fee-rate gives the account's own.
    account_fee_rates=True,
    transfer=TransferRoute(from_account="funding", to_account="unified", client_id_param="transferId"),
    modes=frozen({"demo": ModeSettings(demo_trading=True), "testnet": ModeSettings(sandbox=True)}),
    # GET /v5/execution/list?execType=BustTrade: the executions that closed legs by liquidation.
    liquidations=RecordsCall("fetch_my_liquidations", "bybit_bust_trades", limit=100),
)

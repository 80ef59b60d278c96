"""Gate.io USDT perpetual futures (ccxt id `gate`). Watched and modelled; no simulator dialect yet."""

from daemon.exchanges.quirks.base import ModeSettings, Quirks, frozen, unified_add_margin

QUIRKS = Quirks(
    exchange_id="gate",
    family="gate",
    mark_stream="watch_ticker",
    positions_push_is_thin=False,
    positions_quiet_by_nature=False,
    tiers_call="fetch_market_leverage_tiers",
    default_options=frozen(
        {"fetchMarkets": {"types": ["swap"]}, "defaultType": "swap", "defaultSettle": "usdt"}
    ),
    add_margin=unified_add_margin,
    margin_decimals=8,
    signed_window_s=60.0,  # Gate refuses a signature whose timestamp is more than 60 s away
    modes=frozen({"testnet": ModeSettings(sandbox=True)}),
)

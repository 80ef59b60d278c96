"""Hyperliquid perpetuals (ccxt id `hyperliquid`). Signs with a wallet key; no simulator dialect yet."""

from daemon.exchanges.quirks.base import ModeSettings, Quirks, frozen, unified_add_margin

QUIRKS = Quirks(
    exchange_id="hyperliquid",
    family="hyperliquid",
    # No mark-price channel in ccxt; the ticker (allMids / asset contexts) carries markPx.
    mark_stream="watch_ticker",
    positions_push_is_thin=False,
    positions_quiet_by_nature=False,
    tiers_call="fetch_market_leverage_tiers",
    default_options=frozen({"defaultType": "swap"}),
    add_margin=unified_add_margin,
    margin_decimals=6,
    settle="USDC",
    # A signed action's nonce stays acceptable for days: an action sent cannot be bounded by a lease.
    signed_window_s=2 * 86_400.0,
    modes=frozen({"testnet": ModeSettings(sandbox=True)}),
)

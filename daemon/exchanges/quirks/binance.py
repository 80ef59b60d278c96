"""Binance USD-M futures (ccxt id `binanceusdm`)."""

from daemon.exchanges.quirks.base import (
    LegParam,
    ModeSettings,
    Quirks,
    RecordsCall,
    TransferRoute,
    frozen,
    unified_add_margin,
)

QUIRKS = Quirks(
    exchange_id="binanceusdm",
    family="binance",
    mark_stream="watch_mark_price",
    all_markets_marks=True,
    # ACCOUNT_UPDATE carries amount, entry, margin type and isolated wallet only (ccxt #27618), and is sent
    # only when something changes (ccxt #20201).
    positions_push_is_thin=True,
    positions_quiet_by_nature=True,
    # GET /fapi/v3/positionRisk has no leverage: GET /fapi/v1/symbolConfig (ccxt's fetch_leverages) has it.
    leverage_in_positions=False,
    tiers_call="fetch_leverage_tiers",
    # With a key, load_markets would also fetch currencies from the spot host (api.binance.com/sapi).
    # recvWindow: Binance's own default (ccxt sends 10 s); a shorter window bounds a late landing.
    default_options=frozen({"fetchCurrencies": False, "defaultType": "swap", "recvWindow": 5000}),
    signed_window_s=5.0,
    add_margin=unified_add_margin,
    margin_amount_uses_market_precision=True,
    leg_param=LegParam("positionSide", one_way="BOTH", long="LONG", short="SHORT"),
    margin_decimals=8,
    # Spot wallet -> USD-M wallet goes through the spot host's /sapi/v1/asset/transfer.
    transfer=TransferRoute(from_account="spot", to_account="future"),
    # ccxt refuses Binance's futures testnet for private calls (NotSupported) unless the account's ccxt_config
    # sets options.disableFuturesSandboxWarning; demo trading is the environment ccxt supports.
    modes=frozen({"demo": ModeSettings(demo_trading=True), "testnet": ModeSettings(sandbox=True)}),
    # GET /fapi/v1/forceOrders (autoCloseType LIQUIDATION): the `autoclose-` orders that closed legs.
    liquidations=RecordsCall(
        "fetch_my_liquidations", "binance_force_orders", limit=100, cheaper_by_symbol=True
    ),
    # GET /fapi/v1/positionMargin/history needs a symbol.
    margin_history=RecordsCall(
        "fetch_margin_adjustment_history", "binance_margin_history", per_symbol=True, limit=500
    ),
    # ccxt keeps the USD-M listen key under options["linear"]; a zero time makes it POST /listenKey again
    # (which answers the live key, extended, or a new one when the exchange forgot it).
    stream_session_options=frozen({"linear": frozen({"listenKey": None, "lastAuthenticatedTime": 0})}),
)

"""What differs between exchanges, as data: every quirk module fills in one `Quirks`.

Generic code (client factory, feeds, actuator) reads these fields instead of testing the exchange id.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

MarkStream = Literal["watch_mark_price", "watch_ticker", "poll"]
TiersCall = Literal["fetch_leverage_tiers", "fetch_market_leverage_tiers"]


def frozen(mapping: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class ExchangeCall:
    """One ccxt call as it is (or, in a dry run, would be) sent: the client's method, positional arguments and
    the params dict passed last."""

    method: str
    args: tuple[Any, ...] = ()
    params: Mapping[str, Any] = field(default_factory=frozen)


# How one venue asks for isolated margin to be added: (ccxt market, amount as sent, the leg's params from
# `LegParam`) -> the call. Each quirks module names its own; None in `Quirks.add_margin`: not supported.
AddMarginRequest = Callable[[Mapping[str, Any], str, Mapping[str, Any]], ExchangeCall]


def unified_add_margin(market: Mapping[str, Any], amount: str, leg: Mapping[str, Any]) -> ExchangeCall:
    """ccxt's unified `add_margin(symbol, amount, params)`."""
    return ExchangeCall("add_margin", (market["symbol"], amount), frozen(leg))


@dataclass(frozen=True)
class ModeSettings:
    """How one environment (demo, testnet, live) is selected on a ccxt client.

    `demo_trading`: call ccxt's `enable_demo_trading(True)` (switches `urls['api']` to the demo hosts).
    `sandbox`: call ccxt's `set_sandbox_mode(True)` (testnet hosts; OKX adds its simulated-trading header).
    `headers`: extra HTTP headers every request carries.
    `ws_urls`: websocket URLs to use in this mode, merged into `urls['api']['ws']`, for exchanges whose ccxt
        switch moves only the REST hosts.
    """

    demo_trading: bool = False
    sandbox: bool = False
    headers: Mapping[str, str] = field(default_factory=frozen)
    ws_urls: Mapping[str, Any] = field(default_factory=frozen)


@dataclass(frozen=True)
class TransferRoute:
    """A ccxt `transfer(code, amount, from_account, to_account)` that moves funds into the futures wallet.

    `client_id_param` is the exchange parameter carrying a client id that makes a repeated transfer a no-op;
    marginguard derives it from the action's tag, as a UUID ("uuid", Bybit) or 32 hex digits ("hex", OKX).
    """

    from_account: str
    to_account: str
    client_id_param: str | None = None
    client_id_style: Literal["uuid", "hex"] = "uuid"


@dataclass(frozen=True)
class LegParam:
    """The request parameter that names a position leg when margin is added: its name and its value for a
    one-way position and for each hedge-mode leg."""

    name: str
    one_way: str | int
    long: str | int
    short: str | int


# How the rows of a records call map onto marginguard's records (the mappers live in
# daemon/exchanges/venue_records.py, named here so that each venue picks its own as data).
LiquidationRows = Literal["binance_force_orders", "bybit_bust_trades", "okx_positions_history"]
MarginRows = Literal["binance_margin_history", "okx_margin_bills"]


@dataclass(frozen=True)
class RecordsCall:
    """A ccxt method that reads one kind of the exchange's own records, and how its rows are read.

    method: the ccxt method, called with keywords `since`, `limit`, `params` (and `symbol` when `per_symbol`);
        or, when `implicit`, ccxt's implicit method of the endpoint, called with one request dict (`params`,
        `since_param` = since, `limit`) and answering the exchange's raw document, whose `data_key` list holds
        the rows (each row's market is `market_id_field`, turned into ccxt's symbol). Implicit where ccxt's
        unified method cannot be used (OKX's margin history: its parser fails in ccxt 4.5.90).
    rows: the row mapper (see `LiquidationRows`, `MarginRows`).
    per_symbol: the endpoint needs a symbol (Binance positionMargin/history): asked once per watched symbol.
    pass_since: hand `since` to ccxt. False where ccxt filters on another time than the record's own (OKX
        positions-history rows are stamped by ccxt with their opening time; the close is `uTime`).
    limit: rows asked for (the venue's maximum page).
    params: extra request parameters.
    cheaper_by_symbol: the endpoint takes an optional symbol and costs less of the request budget with one
        (Binance forceOrders: weight 20 with a symbol, 50 without, which holds ccxt's request queue 2.5 s and
        every other call of the account behind it): asked once per symbol when the caller names them.
    newest_first: the venue lists its rows newest first (records stamped in the same millisecond keep the
        venue's order once read oldest first).
    """

    method: str
    rows: str
    per_symbol: bool = False
    pass_since: bool = True
    limit: int = 100
    params: Mapping[str, Any] = field(default_factory=frozen)
    implicit: bool = False
    since_param: str = ""
    data_key: str = "data"
    market_id_field: str = ""
    newest_first: bool = False
    cheaper_by_symbol: bool = False


@dataclass(frozen=True)
class Quirks:
    """One exchange's differences.

    family: the core margin family (`daemon.core.margin`) that models this exchange's liquidation.
    mark_stream: how mark prices arrive: ccxt `watch_mark_price`, `watch_ticker` (its ticker carries the
        mark), or REST polling.
    all_markets_marks: ccxt's `watch_mark_prices()` without symbols reads ONE stream that carries every
        market's mark (Binance's `!markPrice@arr@1s`), which a hub following many symbols takes instead of one
        stream per symbol (`HubSettings.all_markets`).
    positions_push_is_thin: websocket position pushes lack mark, liquidation price, leverage and margins:
        merge them onto the REST picture, never replace it.
    positions_quiet_by_nature: the position stream pushes only on change, so silence is not staleness:
        judge it by keepalive and reconciliation.
    margin_mode_in_positions: positions state their margin mode; when False (Bybit unified accounts, where
        the mode is account-wide) ask ccxt's `fetch_margin_mode` and fill it in (`parse.margin_mode_of`).
    leverage_in_positions: positions state their leverage; when False (Binance's v3 position risk, which ccxt
        reads, has none) ask ccxt's `fetch_leverages` at each snapshot and fill it in: the status, the page and
        `calc --compare-modes` show it.
    tiers_call: `fetch_leverage_tiers` (all symbols in one call) or `fetch_market_leverage_tiers` (per symbol).
    account_fee_rates: the market list does not carry the taker fee the exchange charges (ccxt guesses one),
        and the exchange's maintenance margin includes the fee to close: ask ccxt's `fetch_trading_fee` for the
        account's own rate once per symbol.
    default_options: ccxt options that keep the client on the exchange's own hosts and on swap markets.
    add_margin: the request that adds isolated margin (see `AddMarginRequest`), or None where marginguard
        does not add margin.
    margin_amount_uses_market_precision: ccxt rounds the add-margin amount with the market's AMOUNT precision
        (Binance), so the actuator rounds with it too and knows exactly what is sent.
    margin_decimals: decimal places of a margin amount when ccxt does not know the currency's precision.
    leg_param: how an add-margin request names the leg (one-way or hedge long/short).
    transfer: the route that moves funds into the futures wallet, or None when marginguard does not do it.
    modes: settings per environment.
    settle: the settle currency of the watched contracts.
    liquidations: how the exchange's record of forced closes is read (None: marginguard reads none; a vanished
        leg is then judged by its last distance).
    margin_history: how the exchange's history of isolated-margin changes is read (None: it keeps none).
    signed_window_s: how long after it was signed the exchange still accepts a request (Binance's and Bybit's
        recvWindow, which marginguard sets; OKX's fixed 30 s). A request is on time or refused within this, which
        bounds how late an action sent by an instance that lost its lease can land (`daemon.app.cluster`).
    stream_session_options: ccxt option buckets that cache a private stream's session, and the values that
        make ccxt open a new one (Binance: the listen key, which ccxt reuses for 20 minutes). Reset after a
        private stream fails, so the next watch never dials a key the exchange forgot (after its restart).
    """

    exchange_id: str
    family: str
    mark_stream: MarkStream
    positions_push_is_thin: bool
    positions_quiet_by_nature: bool
    tiers_call: TiersCall
    default_options: Mapping[str, Any]
    add_margin: AddMarginRequest | None
    margin_amount_uses_market_precision: bool = False
    all_markets_marks: bool = False
    margin_mode_in_positions: bool = True
    leverage_in_positions: bool = True
    account_fee_rates: bool = False
    margin_decimals: int = 8
    leg_param: LegParam | None = None
    transfer: TransferRoute | None = None
    modes: Mapping[str, ModeSettings] = field(default_factory=frozen)
    settle: str = "USDT"
    liquidations: RecordsCall | None = None
    margin_history: RecordsCall | None = None
    stream_session_options: Mapping[str, Mapping[str, Any]] = field(default_factory=frozen)
    signed_window_s: float = 60.0

    def mode(self, name: str) -> ModeSettings:
        """Settings for `name`; live (and any mode the exchange has no switch for) needs none."""
        return self.modes.get(name, ModeSettings())

"""`AccountRecords` over an account's ccxt client: the exchange's own books, read by REST.

Which ccxt method reads a venue's liquidations or margin history, and how its rows map onto
`LiquidationRecord` / `MarginChange`, comes from the venue's quirks (`Quirks.liquidations`,
`Quirks.margin_history`): a `RecordsCall` names the method and one of the row mappers below. A venue whose
quirks name none keeps no such record here: the answer is None and the caller falls back to what it has.

Every REST read goes through the injected `read` (default: await the call and translate ccxt's errors once,
`daemon.exchanges.errors.translate`), so the per-account gateway can route these reads through its one
retry-and-translate path. A read that fails raises the typed `ExchangeError`: an unanswered question is never
"no liquidation".

The mappers read the exchange's raw row (`info`, the payload as the exchange sent it) and ccxt's unified
symbol, so they are tested on recorded payloads (tests/unit/test_venue_records.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

from daemon.core.types import Side
from daemon.exchanges.errors import translate
from daemon.exchanges.parse import facts_from_positions
from daemon.exchanges.quirks import Quirks, RecordsCall
from daemon.exchanges.records import LegMargin, LiquidationRecord, MarginChange

Read = Callable[[Callable[[], Awaitable[Any]]], Awaitable[Any]]
Row = Mapping[str, Any]


def translating_read(client: Any) -> Read:
    """Await one ccxt call; its errors become marginguard's typed ones (what the caller should do)."""

    async def read(call: Callable[[], Awaitable[Any]]) -> Any:
        try:
            return await call()
        except Exception as exc:
            raise translate(exc, getattr(client, "last_response_headers", None)) from exc

    return read


class VenueRecords:
    """The `AccountRecords` port for one account. `symbols` lists the symbols to ask about where the venue's
    endpoint needs one (Binance's margin history); default: the client's loaded markets are not guessed at,
    only the symbols given."""

    def __init__(
        self,
        client: Any,
        quirks: Quirks,
        read: Read | None = None,
        symbols: Callable[[], Iterable[str]] = tuple,
    ) -> None:
        self.client = client
        self.quirks = quirks
        self.read = read or translating_read(client)
        self.symbols = symbols

    async def leg_margin(self, symbol: str, side: Side) -> LegMargin | None:
        rows = await self.read(lambda: self.client.fetch_positions([symbol]))
        for facts in facts_from_positions(rows):
            if facts.symbol == symbol and facts.side is side and facts.contracts != 0.0:
                return LegMargin(facts.contracts, facts.isolated_margin)
        return None  # not listed, or listed with no size (Bybit keeps a closed leg's row)

    async def liquidations(
        self, since_ms: int, symbols: Collection[str] = ()
    ) -> Sequence[LiquidationRecord] | None:
        call = self.quirks.liquidations
        if call is None:
            return None
        mapper = LIQUIDATION_ROWS[call.rows]
        found: dict[str, LiquidationRecord] = {}  # by the venue's own id: a row seen twice counts once
        named = symbols if call.cheaper_by_symbol else ()
        for row in await self._rows(call, since_ms, named):
            mapped = mapper(row)
            if mapped is not None and mapped[1].ts_ms >= since_ms:
                found.setdefault(mapped[0], mapped[1])
        return sorted(found.values(), key=lambda r: r.ts_ms)

    async def margin_changes(self, since_ms: int) -> Sequence[MarginChange] | None:
        call = self.quirks.margin_history
        if call is None:
            return None
        mapper = MARGIN_ROWS[call.rows]
        changes = [c for c in map(mapper, await self._rows(call, since_ms)) if c is not None]
        return sorted((c for c in changes if c.ts_ms >= since_ms), key=lambda c: c.ts_ms)

    async def _rows(self, call: RecordsCall, since_ms: int, symbols: Collection[str] = ()) -> list[Row]:
        """The call's rows since `since_ms`: asked once, or once per symbol where the endpoint needs one
        (`per_symbol`: the watched symbols) or `symbols` are named."""
        method = getattr(self.client, call.method)
        since = since_ms if call.pass_since else None
        if call.implicit:
            return await self._raw_rows(call, method, since)

        async def one(**symbol: str) -> list[Row]:
            rows = await self.read(
                lambda: method(**symbol, since=since, limit=call.limit, params=dict(call.params))
            )
            listed = list(rows or [])
            return listed[::-1] if call.newest_first else listed

        if not call.per_symbol and not symbols:
            return await one()
        rows: list[Row] = []
        for symbol in sorted(set(symbols or self.symbols())):
            rows += await one(symbol=symbol)
        return rows

    async def _raw_rows(self, call: RecordsCall, method: Any, since: int | None) -> list[Row]:
        """An implicit endpoint's rows, each beside ccxt's symbol for its market id (as unified methods give)."""
        request = {**call.params, "limit": str(call.limit)}
        if since is not None and call.since_param:
            request[call.since_param] = str(since)
        response = await self.read(lambda: method(request))
        rows = response.get(call.data_key) if isinstance(response, Mapping) else None
        wrapped: list[Row] = [
            {"symbol": self.client.safe_symbol(row.get(call.market_id_field)), "info": row}
            for row in rows or []
            if isinstance(row, Mapping)
        ]
        return wrapped[::-1] if call.newest_first else wrapped


# ---- row mappers: (the venue's id of the record, the record), or None for a row that is no record ----


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and number not in (float("inf"), float("-inf")) else None


def _closed_side(closing_order_side: str, position_side: str | None) -> Side | None:
    """The leg a closing order closed: a hedge leg names itself; in one-way mode a sell closes a long."""
    named = (position_side or "").lower()
    if named in ("long", "short"):
        return Side(named)
    order = closing_order_side.lower()
    if order == "sell":
        return Side.LONG
    if order == "buy":
        return Side.SHORT
    return None


def _liquidation(
    row: Row, side: Side | None, contracts: Any, price: Any, ts: Any, source: str
) -> LiquidationRecord | None:
    size, when = _number(contracts), _number(ts)
    symbol = row.get("symbol")
    if side is None or size is None or size == 0.0 or when is None or not isinstance(symbol, str):
        return None  # a zero-size fill closed nothing
    return LiquidationRecord(symbol, side, abs(size), _number(price), int(when), source)


def binance_force_order(row: Row) -> tuple[str, LiquidationRecord] | None:
    """GET /fapi/v1/forceOrders: an `autoclose-` order; its fills may be listed more than once."""
    info = row.get("info") or {}
    side = _closed_side(str(info.get("side", "")), info.get("positionSide"))
    record = _liquidation(
        row,
        side,
        info.get("executedQty"),
        info.get("avgPrice"),
        info.get("updateTime", info.get("time")),
        "forced (autoclose) order",
    )
    return None if record is None else (f"order:{info.get('orderId')}", record)


def bybit_bust_trade(row: Row) -> tuple[str, LiquidationRecord] | None:
    """GET /v5/execution/list?execType=BustTrade: the execution that closed a leg by liquidation."""
    info = row.get("info") or {}
    if info.get("execType") not in ("BustTrade", None):
        return None
    side = _closed_side(str(info.get("side", "")), None)
    record = _liquidation(
        row,
        side,
        info.get("execQty"),
        info.get("execPrice"),
        info.get("execTime"),
        "BustTrade execution",
    )
    key = info.get("execId") or f"{info.get('orderId')}:{info.get('execTime')}"
    return None if record is None else (f"exec:{key}", record)


OKX_LIQUIDATED = {"3": "liquidation", "4": "partial liquidation"}


def okx_position_history(row: Row) -> tuple[str, LiquidationRecord] | None:
    """GET /api/v5/account/positions-history: a closed leg; `type` 3 / 4 is a full / partial liquidation."""
    info = row.get("info") or {}
    how = OKX_LIQUIDATED.get(str(info.get("type")))
    if how is None:
        return None  # closed by its owner (1, 2) or auto-deleveraged (5): no liquidation
    named = str(info.get("posSide") or "").lower()
    direction = named if named in ("long", "short") else str(info.get("direction") or "").lower()
    side = Side(direction) if direction in ("long", "short") else None
    record = _liquidation(
        row,
        side,
        info.get("closeTotalPos"),
        info.get("closeAvgPx"),
        info.get("uTime"),
        f"positions history ({how})",
    )
    return None if record is None else (f"pos:{info.get('posId')}:{info.get('uTime')}", record)


def binance_margin_change(row: Row) -> MarginChange | None:
    """GET /fapi/v1/positionMargin/history: `type` 1 added, 2 removed. Margin a trade moved (deltaType TRADE)
    is no adjustment of anyone's: left out."""
    info = row.get("info") or {}
    if info.get("deltaType") == "TRADE":
        return None
    amount, when = _number(info.get("amount")), _number(info.get("time"))
    kind = {"1": "add", "2": "reduce"}.get(str(info.get("type")))
    symbol = row.get("symbol")
    if amount is None or when is None or kind is None or not isinstance(symbol, str):
        return None
    named = str(info.get("positionSide") or "").lower()
    side = Side(named) if named in ("long", "short") else None
    signed = abs(amount) if kind == "add" else -abs(amount)
    asset = str(info.get("asset") or row.get("code") or "")
    return MarginChange(symbol, side, signed, asset, int(when), "add" if kind == "add" else "reduce")


OKX_MARGIN_KINDS = {"160": "add", "161": "reduce", "162": "add"}  # 162: added by the exchange's auto-margin


def okx_margin_bill(row: Row) -> MarginChange | None:
    """GET /api/v5/account/bills type 6: an isolated leg's margin moved (`posBalChg`, signed). OKX's bills do
    not name the leg of a hedged position."""
    info = row.get("info") or {}
    kind = OKX_MARGIN_KINDS.get(str(info.get("subType")))
    amount, when = _number(info.get("posBalChg")), _number(info.get("ts"))
    symbol = row.get("symbol")
    if kind is None or amount is None or when is None or not isinstance(symbol, str):
        return None
    signed = abs(amount) if kind == "add" else -abs(amount)
    return MarginChange(
        symbol, None, signed, str(info.get("ccy") or ""), int(when), "add" if kind == "add" else "reduce"
    )


LIQUIDATION_ROWS: Mapping[str, Callable[[Row], tuple[str, LiquidationRecord] | None]] = {
    "binance_force_orders": binance_force_order,
    "bybit_bust_trades": bybit_bust_trade,
    "okx_positions_history": okx_position_history,
}
MARGIN_ROWS: Mapping[str, Callable[[Row], MarginChange | None]] = {
    "binance_margin_history": binance_margin_change,
    "okx_margin_bills": okx_margin_bill,
}

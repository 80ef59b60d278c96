"""Orders: POST /fapi/v1/order for MARKET orders (filled at once at the mark, answered as Binance answers),
and the exchange's own forced closes (liquidation orders) as GET /fapi/v1/forceOrders lists them.

Only market orders are simulated (marginguard never places others; tests use them to open positions the
way a trader would). One-way mode: BUY adds to a long or reduces/flips a short; `reduceOnly` refuses any
fill that would grow or flip the position. Hedge mode: `positionSide` LONG/SHORT picks the leg; the
opposite side closes it (whole closes only).
"""

from __future__ import annotations

from typing import Any

from daemon.core.types import Side
from daemon.sim.binance import payloads, wire
from daemon.sim.engine import Engine, SimAccount
from daemon.sim.markets import Market

# Forced-close orders are numbered by their place in the engine's liquidation log, so the REST history
# (GET /fapi/v1/forceOrders) and the user-stream push name the same order.
LIQUIDATION_ORDER_BASE = 8_000_000_001


def liquidation_order_id(log_index: int) -> int:
    return LIQUIDATION_ORDER_BASE + log_index


def liquidation_client_id(order_id: int, ts_ms: int) -> str:
    """Binance's form: "autoclose-" + the 13-digit time + a 6-digit sequence."""
    return f"autoclose-{ts_ms}{order_id % 1_000_000:06d}"


INVALID_ORDER_TYPE = wire.BinanceError(400, -1116, "Invalid orderType.")
INVALID_SIDE = wire.BinanceError(400, -1117, "Invalid side.")


def place_market_order(
    engine: Engine, account: SimAccount, symbol: str, params: dict[str, str], order_id: int
) -> dict[str, Any]:
    if params.get("type", "").upper() != "MARKET":
        raise wire.RefusedError(INVALID_ORDER_TYPE)
    buy_or_sell = params.get("side", "").upper()
    if buy_or_sell not in ("BUY", "SELL"):
        raise wire.RefusedError(INVALID_SIDE)
    quantity = wire.positive_param(params, "quantity", wire.QUANTITY_NOT_POSITIVE)
    side = Side.LONG if buy_or_sell == "BUY" else Side.SHORT
    position_side = params.get("positionSide", "BOTH").upper()
    reduce_only = params.get("reduceOnly", "false").lower() == "true"
    if (position_side == "BOTH") == account.hedge_mode:
        raise wire.RefusedError(wire.POSITION_SIDE_MISMATCH)
    market = engine.markets[symbol]
    if quantity < market.min_qty:
        raise wire.RefusedError(wire.QUANTITY_BELOW_MINIMUM)
    fill = engine.marks[symbol]
    if account.hedge_mode:
        _hedge_fill(engine, account, symbol, side, position_side, quantity)
    else:
        existing = engine.find_position(account.api_key, symbol)
        if reduce_only and (
            existing is None or existing.side is side or quantity > existing.contracts + 1e-12
        ):
            raise wire.RefusedError(wire.REDUCE_ONLY_REJECTED)
        engine.open_position(account.api_key, symbol, side, quantity)
    now = engine.now_ms()
    qty = payloads.quantity(market, quantity)
    return {
        "orderId": order_id,
        "symbol": symbol,
        "status": "FILLED",
        "clientOrderId": params.get("newClientOrderId", f"sim{now}"),
        "price": "0.00",
        "avgPrice": payloads.price(market, fill),
        "origQty": qty,
        "executedQty": qty,
        "cumQty": qty,
        "cumQuote": wire.money(quantity * market.contract_size * fill),
        "timeInForce": "GTC",
        "type": "MARKET",
        "reduceOnly": reduce_only,
        "closePosition": False,
        "side": buy_or_sell,
        "positionSide": position_side,
        "stopPrice": "0.00",
        "workingType": "CONTRACT_PRICE",
        "priceProtect": False,
        "origType": "MARKET",
        "priceMatch": "NONE",
        "selfTradePreventionMode": "NONE",
        "goodTillDate": 0,
        "updateTime": now,
    }


def _hedge_fill(
    engine: Engine, account: SimAccount, symbol: str, side: Side, position_side: str, quantity: float
) -> None:
    leg_side = Side.LONG if position_side == "LONG" else Side.SHORT
    if side is leg_side:  # BUY into LONG or SELL into SHORT opens or adds
        engine.open_position(account.api_key, symbol, side, quantity)
        return
    leg = engine.find_position(account.api_key, symbol, leg_side)
    if leg is None or abs(quantity - leg.contracts) > 1e-12:
        raise wire.RefusedError(wire.REDUCE_ONLY_REJECTED)
    engine.close_position(account.api_key, symbol, leg_side)


def force_order_row(market: Market, record: dict[str, Any], log_index: int) -> dict[str, Any]:
    """One row of GET /fapi/v1/forceOrders, from an engine liquidation record."""
    order_id = liquidation_order_id(log_index)
    qty = payloads.quantity(market, record["contracts"])
    fill = payloads.price(market, record["price"])
    ts = int(record["ts_ms"])
    return {
        "orderId": order_id,
        "symbol": market.symbol,
        "status": "FILLED",
        "clientOrderId": liquidation_client_id(order_id, ts),
        "price": fill,
        "avgPrice": fill,
        "origQty": qty,
        "executedQty": qty,
        "cumQuote": wire.money(record["contracts"] * market.contract_size * record["price"]),
        "timeInForce": "IOC",
        "type": "LIMIT",
        "reduceOnly": False,
        "closePosition": False,
        "side": "SELL" if record["side"] == Side.LONG.value else "BUY",
        "positionSide": record["position_side"],
        "stopPrice": "0",
        "workingType": "CONTRACT_PRICE",
        "origType": "LIMIT",
        "time": ts,
        "updateTime": ts,
    }


def force_orders(
    engine: Engine, account: SimAccount, symbol: str | None, params: dict[str, str]
) -> list[Any]:
    """GET /fapi/v1/forceOrders: the account's forced closes (no ADL is simulated), oldest first."""
    if params.get("autoCloseType", "LIQUIDATION") != "LIQUIDATION":
        return []
    start = int(params.get("startTime", 0))
    end = int(params.get("endTime", 2**62))
    limit = min(int(params.get("limit", 50)), 100)
    rows = [
        force_order_row(engine.markets[record["symbol"]], record, index)
        for index, record in enumerate(engine.liquidations)
        if record["api_key"] == account.api_key
        and (symbol is None or record["symbol"] == symbol)
        and start <= record["ts_ms"] <= end
    ]
    return rows[-limit:]


def margin_history(engine: Engine, account: SimAccount, symbol: str, params: dict[str, str]) -> list[Any]:
    """GET /fapi/v1/positionMargin/history: one symbol's isolated-margin moves (`type` 1 add, 2 reduce),
    oldest first. Binance also lists the margin a trade moves (deltaType TRADE); the simulator lists the
    owner's own adjustments (USER_ADJUST) only."""
    start = int(params.get("startTime", 0))
    end = int(params.get("endTime", 2**62))
    limit = min(int(params.get("limit", 500)), 500)
    wanted = params.get("type")
    rows = []
    for change in engine.margin_changes:
        kind = "1" if change["amount"] > 0 else "2"
        if (
            change["api_key"] != account.api_key
            or change["symbol"] != symbol
            or not start <= change["ts_ms"] <= end
            or (wanted is not None and wanted != kind)
        ):
            continue
        rows.append(
            {
                "symbol": symbol,
                "type": kind,
                "deltaType": "USER_ADJUST",
                "amount": wire.money(abs(change["amount"])),
                "asset": change["asset"],
                "time": str(change["ts_ms"]),
                "positionSide": change["position_side"],
                "clientTranId": "",
            }
        )
    return rows[-limit:]

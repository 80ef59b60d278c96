"""Binance USD-M websocket push bodies: user-data events and market-stream frames.

Shapes follow Binance's published examples (`tests/data/binance_payloads.json`): ACCOUNT_UPDATE position
rows are thin (no mark, no liquidation price, no leverage) exactly as the exchange sends them; MARGIN_CALL
writes the margin type upper-case ("CROSSED") where ACCOUNT_UPDATE writes it lower-case ("cross");
`listenKeyExpired` carries its event time as a string.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from daemon.core.types import MarginMode, Side
from daemon.sim.binance import wire
from daemon.sim.binance.orders import liquidation_client_id
from daemon.sim.binance.payloads import (
    AccountView,
    break_even,
    is_isolated,
    next_funding_ms,
    price,
    quantity,
    signed_amount,
)
from daemon.sim.engine import Engine
from daemon.sim.markets import Market
from daemon.sim.model import SETTLE, SimPosition


def balance_row(view: AccountView, balance_change: float = 0.0) -> dict[str, str]:
    return {
        "a": SETTLE,
        "wb": wire.money(view.summary.wallet_balance),
        "cw": wire.money(view.summary.cross_wallet),
        "bc": wire.money(balance_change),
    }


def update_row(view: AccountView, pos: SimPosition, realized: float) -> dict[str, str]:
    """A position row of ACCOUNT_UPDATE: thin, exactly the fields Binance sends (no mark, no liq price)."""
    market = view.market(pos)
    return {
        "s": pos.symbol,
        "pa": signed_amount(market, pos),
        "ep": wire.trimmed(pos.entry_price),
        "bep": wire.trimmed(break_even(market, pos), 9),
        "cr": wire.money(realized),
        "up": wire.money(view.upnl(pos)),
        "mt": "isolated" if is_isolated(pos) else "cross",
        "iw": wire.money(pos.isolated_margin if is_isolated(pos) else 0.0),
        "ps": pos.position_side,
    }


def closed_row(view: AccountView, symbol: str, position_side: str, realized: float) -> dict[str, str]:
    market = view.engine.markets[symbol]
    isolated = view.account.margin_mode_for(symbol) is MarginMode.ISOLATED
    return {
        "s": symbol,
        "pa": quantity(market, 0.0),
        "ep": "0.0",
        "bep": "0",
        "cr": wire.money(realized),
        "up": "0",
        "mt": "isolated" if isolated else "cross",
        "iw": wire.money(0.0),
        "ps": position_side,
    }


def account_update(
    reason: str, now_ms: int, balances: list[dict[str, str]], positions: list[dict[str, str]]
) -> dict[str, Any]:
    return {
        "e": "ACCOUNT_UPDATE",
        "E": now_ms,
        "T": now_ms,
        "a": {"m": reason, "B": balances, "P": positions},
    }


def margin_call(view: AccountView, symbols: Iterable[str], now_ms: int) -> dict[str, Any]:
    wanted = set(symbols)
    rows = [
        {
            "s": pos.symbol,
            "ps": pos.position_side,
            "pa": signed_amount(view.market(pos), pos),
            "mt": "ISOLATED" if is_isolated(pos) else "CROSSED",
            "iw": wire.money(pos.isolated_margin if is_isolated(pos) else 0.0),
            "mp": wire.money(view.mark(pos)),
            "up": wire.money(view.upnl(pos)),
            "mm": wire.money(view.maintenance(leg)),
        }
        for pos, leg in view.legs
        if pos.symbol in wanted
    ]
    message: dict[str, Any] = {"e": "MARGIN_CALL", "E": now_ms}
    if any(row["mt"] == "CROSSED" for row in rows):
        message["cw"] = wire.money(view.summary.cross_wallet)  # only sent for cross positions
    message["p"] = rows
    return message


def liquidation_order(
    market: Market,
    side: Side,
    position_side: str,
    contracts: float,
    fill_price: float,
    realized: float,
    order_id: int,
    now_ms: int,
) -> dict[str, Any]:
    """ORDER_TRADE_UPDATE for the exchange's forced close: type LIQUIDATION, client id "autoclose-…"."""
    qty = quantity(market, contracts)
    fill = price(market, fill_price)
    close_side = "SELL" if side is Side.LONG else "BUY"
    return {
        "e": "ORDER_TRADE_UPDATE",
        "E": now_ms,
        "T": now_ms,
        "o": {
            "s": market.symbol,
            "c": liquidation_client_id(order_id, now_ms),
            "S": close_side,
            "o": "LIQUIDATION",
            "f": "IOC",
            "q": qty,
            "p": fill,
            "ap": fill,
            "sp": "0",
            "x": "CALCULATED",
            "X": "FILLED",
            "i": order_id,
            "l": qty,
            "z": qty,
            "L": fill,
            "n": "0",
            "N": market.settle,
            "T": now_ms,
            "t": order_id,
            "b": "0",
            "a": "0",
            "m": False,
            "R": False,
            "wt": "CONTRACT_PRICE",
            "ot": "LIQUIDATION",
            "ps": position_side,
            "cp": False,
            "rp": wire.money(realized),
            "pP": False,
            "si": 0,
            "ss": 0,
            "V": "NONE",
            "pm": "NONE",
            "gtd": 0,
        },
    }


def leverage_update(symbol: str, leverage: float, now_ms: int) -> dict[str, Any]:
    return {"e": "ACCOUNT_CONFIG_UPDATE", "E": now_ms, "T": now_ms, "ac": {"s": symbol, "l": int(leverage)}}


def listen_key_expired(listen_key: str, now_ms: int) -> dict[str, Any]:
    # Published with "E" as a string, unlike every other event.
    return {"e": "listenKeyExpired", "E": str(now_ms), "listenKey": listen_key}


def mark_price_update(engine: Engine, symbol: str, mark: float, index: float, now_ms: int) -> dict[str, Any]:
    return {
        "e": "markPriceUpdate",
        "E": now_ms,
        "s": symbol,
        "p": wire.money(mark),
        "ap": wire.money(mark),
        "P": wire.money(index),
        "i": wire.money(index),
        "r": wire.money(engine.funding_rate(symbol)),
        "T": next_funding_ms(now_ms),
    }


def force_order(order: dict[str, Any], now_ms: int) -> dict[str, Any]:
    """The public liquidation stream's view of a forced close (no account details)."""
    return {
        "e": "forceOrder",
        "E": now_ms,
        "o": {
            "s": order["s"],
            "S": order["S"],
            "o": "LIMIT",
            "f": "IOC",
            "q": order["q"],
            "p": order["p"],
            "ap": order["ap"],
            "X": "FILLED",
            "l": order["l"],
            "z": order["z"],
            "T": order["T"],
        },
    }

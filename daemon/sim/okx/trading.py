"""OKX v5 REST endpoints that change the account: margin, leverage, position mode, orders, closing.

Simplifications, each stricter than OKX so that what passes here passes there:
- Margin mode is a per-instrument setting chosen through set-leverage's `mgnMode` (OKX picks it per order
  with `tdMode`); changing it while a position in that instrument is open is refused with 59000.
- Only market orders fill (at the mark); in long/short mode a reducing order must close the whole leg.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from daemon.core.types import MarginMode, Side
from daemon.sim.engine import EngineError, SimAccount
from daemon.sim.markets import Market
from daemon.sim.okx import payloads
from daemon.sim.okx.auth import OkxError
from daemon.sim.okx.errors import (
    ALREADY_HAS_POSITION,
    BAD_JSON,
    NO_POSITION_TO_CLOSE,
    SETTINGS_BLOCKED,
    engine_error,
    missing,
    order_error,
    parameter_error,
    unknown_instrument,
)
from daemon.sim.okx.replies import ok, refuse

if TYPE_CHECKING:
    from daemon.sim.okx.dialect import OkxDialect


class OkxTrading:
    def __init__(self, dialect: OkxDialect) -> None:
        self.dialect = dialect
        self.engine = dialect.engine

    def _market(self, instrument: str | None) -> Market | None:
        return self.dialect.market_for(instrument)

    def _now(self) -> str:
        return str(self.dialect.faults.server_time_ms())

    # ---- account settings ----

    async def margin_balance(
        self, request: web.Request, account: SimAccount, params: dict[str, Any]
    ) -> web.Response:
        for name in ("instId", "posSide", "type", "amt"):
            if params.get(name) in (None, ""):
                return refuse(missing(name))
        market = self._market(params["instId"])
        if market is None:
            return refuse(unknown_instrument())
        kind = params["type"]
        if kind not in ("add", "reduce"):
            return refuse(parameter_error("type"))
        fits, side = self._pos_side(account, params["posSide"])
        if not fits:
            return refuse(parameter_error("posSide"))
        try:
            amount = float(params["amt"])
        except (TypeError, ValueError):
            return refuse(parameter_error("amt"))
        if not amount > 0:
            return refuse(parameter_error("amt"))
        try:
            margin = self.engine.adjust_isolated_margin(
                account.api_key, market.symbol, side, amount if kind == "add" else -amount
            )
        except EngineError as error:
            return refuse(engine_error(error, context=f"margin_{kind}"))
        pos = self.engine.find_position(account.api_key, market.symbol, side)
        leverage = self.engine.notional(pos) / margin if pos is not None and margin > 0 else None
        row = {
            "amt": payloads.okx_number(amount),
            "ccy": market.settle,
            "instId": params["instId"],
            "leverage": payloads.okx_number(round(leverage, 2) if leverage else None),
            "posSide": params["posSide"],
            "type": kind,
        }
        return ok([row])

    async def set_leverage(
        self, request: web.Request, account: SimAccount, params: dict[str, Any]
    ) -> web.Response:
        for name in ("lever", "mgnMode"):
            if params.get(name) in (None, ""):
                return refuse(missing(name))
        if not params.get("instId"):
            return refuse(missing("instId"))
        market = self._market(params["instId"])
        if market is None:
            return refuse(unknown_instrument())
        mode_name = params["mgnMode"]
        if mode_name not in ("cross", "isolated"):
            return refuse(parameter_error("mgnMode"))
        try:
            lever = float(params["lever"])
        except (TypeError, ValueError):
            return refuse(parameter_error("lever"))
        mode = MarginMode(mode_name)
        symbol = market.symbol
        switching = account.margin_mode_for(symbol) is not mode
        if switching and any(pos.symbol == symbol for pos in account.positions):
            return refuse(SETTINGS_BLOCKED)
        try:
            self.engine.set_leverage(account.api_key, symbol, lever)  # validates before anything changes
            if switching:
                self.engine.set_margin_mode(account.api_key, symbol, mode)
        except EngineError as error:
            return refuse(engine_error(error, context="leverage"))
        pos_side = params.get("posSide", "net") if mode is MarginMode.ISOLATED else ""
        row = {"instId": params["instId"], "lever": payloads.okx_number(lever), "mgnMode": mode_name}
        return ok([{**row, "posSide": pos_side}])

    async def set_position_mode(
        self, request: web.Request, account: SimAccount, params: dict[str, Any]
    ) -> web.Response:
        mode = params.get("posMode")
        if not mode:
            return refuse(missing("posMode"))
        if mode not in ("long_short_mode", "net_mode"):
            return refuse(parameter_error("posMode"))
        try:
            self.engine.set_hedge_mode(account.api_key, mode == "long_short_mode")
        except EngineError:
            return refuse(SETTINGS_BLOCKED)
        return ok([{"posMode": mode}])

    async def close_position(
        self, request: web.Request, account: SimAccount, params: dict[str, Any]
    ) -> web.Response:
        for name in ("instId", "mgnMode"):
            if not params.get(name):
                return refuse(missing(name))
        market = self._market(params["instId"])
        if market is None:
            return refuse(unknown_instrument())
        fits, side = self._pos_side(account, params.get("posSide", "net"))
        if not fits:
            return refuse(parameter_error("posSide"))
        try:
            self.engine.close_position(account.api_key, market.symbol, side)
        except EngineError:
            return refuse(NO_POSITION_TO_CLOSE)
        row = {"clOrdId": "", "instId": params["instId"], "posSide": params.get("posSide", "net"), "tag": ""}
        return ok([row])

    async def order(self, request: web.Request, account: SimAccount, params: dict[str, Any]) -> web.Response:
        return self._order_answer([self._place(account, params)])

    async def batch_orders(
        self, request: web.Request, account: SimAccount, params: dict[str, Any]
    ) -> web.Response:
        batch = params.get("_batch")
        if not isinstance(batch, list) or not batch:
            return refuse(BAD_JSON)
        return self._order_answer([self._place(account, entry) for entry in batch])

    # ---- orders ----

    def _order_answer(self, results: list[dict[str, Any]]) -> web.Response:
        failed = sum(1 for row in results if row["sCode"] != "0")
        now = self._now()
        extra = {"inTime": now, "outTime": now}
        if not failed:
            return ok(results, **extra)
        if failed == len(results):
            body = payloads.envelope(results, code="1", msg="All operations failed")
        else:
            body = payloads.envelope(results, code="2", msg="Batch operation partially succeeded")
        return web.json_response({**body, **extra})

    def _place(self, account: SimAccount, order: Any) -> dict[str, Any]:
        """Fill one market order; the row OKX answers for it (sCode "0" on success)."""
        if not isinstance(order, dict):
            order = {}
        answer = {
            "clOrdId": order.get("clOrdId", ""),
            "ordId": "",
            "tag": order.get("tag", ""),
            "ts": self._now(),
        }
        error = self._fill(account, order)
        if error is not None:
            return {**answer, "sCode": error.code, "sMsg": error.msg}
        self.dialect.order_count += 1
        order_id = str(700_000_000_000_000_000 + self.dialect.order_count)
        return {**answer, "ordId": order_id, "sCode": "0", "sMsg": "Order placed"}

    def _fill(self, account: SimAccount, order: dict[str, Any]) -> OkxError | None:
        for name in ("instId", "tdMode", "side", "ordType", "sz"):
            if not order.get(name):
                return missing(name)
        market = self._market(order["instId"])
        if market is None:
            return unknown_instrument()
        if order["ordType"] not in ("market", "optimal_limit_ioc"):
            return parameter_error("ordType")
        if order["side"] not in ("buy", "sell") or order["tdMode"] not in ("cross", "isolated"):
            return parameter_error("side" if order["side"] not in ("buy", "sell") else "tdMode")
        try:
            size = float(order["sz"])
        except (TypeError, ValueError):
            return parameter_error("sz")
        buying = order["side"] == "buy"
        symbol = market.symbol
        mode = MarginMode(order["tdMode"])
        try:
            if account.margin_mode_for(symbol) is not mode:
                if any(pos.symbol == symbol for pos in account.positions):
                    return ALREADY_HAS_POSITION
                self.engine.set_margin_mode(account.api_key, symbol, mode)
            if account.hedge_mode:
                return self._fill_hedged(account, market, order, size, buying)
            if _truthy(order.get("reduceOnly")):
                pos = self.engine.find_position(account.api_key, symbol)
                if pos is None or (pos.side is Side.LONG) == buying:
                    return order_error("reduce_only")
                size = min(size, pos.contracts)
            self.engine.open_position(account.api_key, symbol, Side.LONG if buying else Side.SHORT, size)
        except EngineError as error:
            return engine_error(error, context="order")
        return None

    def _fill_hedged(
        self, account: SimAccount, market: Market, order: dict[str, Any], size: float, buying: bool
    ) -> OkxError | None:
        leg_side = {"long": Side.LONG, "short": Side.SHORT}.get(order.get("posSide", ""))
        if leg_side is None:
            return parameter_error("posSide")
        opening = buying == (leg_side is Side.LONG)
        if opening:
            self.engine.open_position(account.api_key, market.symbol, leg_side, size)
            return None
        pos = self.engine.find_position(account.api_key, market.symbol, leg_side)
        if pos is None:
            return order_error("reduce_only")
        if size + 1e-12 < pos.contracts:
            return order_error("partial_close")
        self.engine.close_position(account.api_key, market.symbol, leg_side)
        return None

    @staticmethod
    def _pos_side(account: SimAccount, pos_side: str) -> tuple[bool, Side | None]:
        """Whether `pos_side` fits the account's position mode, and the leg it names (None: the net leg)."""
        if pos_side == "net":
            return not account.hedge_mode, None
        if pos_side in ("long", "short") and account.hedge_mode:
            return True, Side.LONG if pos_side == "long" else Side.SHORT
        return False, None


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() == "true"

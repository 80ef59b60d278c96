"""OKX v5 REST endpoints at their real paths, answering as OKX does: `{"code", "msg", "data"}`, strings only.

Private endpoints check OKX's signature headers first (see `auth`); refusals use OKX's codes and HTTP 401.
Parameter errors answer HTTP 400, business refusals HTTP 200 with a non-zero `code`, as the exchange does.

Simplifications, each stricter than OKX so that what passes here passes there:
- Margin mode is a per-instrument setting chosen through set-leverage's `mgnMode` (OKX picks it per order
  with `tdMode`); changing it while a position in that instrument is open is refused with 59000.
- Only market orders fill (at the mark); in long/short mode a reducing order must close the whole leg.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from daemon.core.types import MarginMode, Side
from daemon.sim.engine import EngineError, SimAccount
from daemon.sim.markets import Market
from daemon.sim.okx import payloads
from daemon.sim.okx.auth import OkxError, check_rest_request
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
from daemon.sim.okx.views import balance_data, position_rows, uid_of

if TYPE_CHECKING:
    from daemon.sim.okx.dialect import OkxDialect

Handler = Callable[[web.Request], Awaitable[web.Response]]
PrivateHandler = Callable[[web.Request, SimAccount, dict[str, Any]], Awaitable[web.Response]]
API = "/api/v5"


def ok(data: list[Any], **extra: Any) -> web.Response:
    return web.json_response({**payloads.envelope(data), **extra})


def refuse(error: OkxError, data: list[Any] | None = None) -> web.Response:
    body = payloads.envelope(data or [], code=error.code, msg=error.msg)
    return web.json_response(body, status=error.http_status)


class OkxRest:
    def __init__(self, dialect: OkxDialect) -> None:
        self.dialect = dialect
        self.engine = dialect.engine

    def routes(self) -> list[web.RouteDef]:
        private = self._private
        return [
            web.get(f"{API}/public/time", self.public_time),
            web.get(f"{API}/public/instruments", self.instruments),
            web.get(f"{API}/public/mark-price", self.mark_price),
            web.get(f"{API}/public/position-tiers", self.position_tiers),
            web.get(f"{API}/public/funding-rate", self.funding_rate),
            web.get(f"{API}/asset/currencies", private(self.currencies)),
            web.get(f"{API}/account/config", private(self.account_config)),
            web.get(f"{API}/account/balance", private(self.balance)),
            web.get(f"{API}/account/positions", private(self.positions)),
            web.get(f"{API}/account/leverage-info", private(self.leverage_info)),
            web.post(f"{API}/account/position/margin-balance", private(self.margin_balance)),
            web.post(f"{API}/account/set-leverage", private(self.set_leverage)),
            web.post(f"{API}/account/set-position-mode", private(self.set_position_mode)),
            web.post(f"{API}/trade/order", private(self.order)),
            web.post(f"{API}/trade/batch-orders", private(self.batch_orders)),
            web.post(f"{API}/trade/close-position", private(self.close_position)),
        ]

    # ---- authentication ----

    def _private(self, handler: PrivateHandler) -> Handler:
        async def authenticated(request: web.Request) -> web.Response:
            body = await request.text()
            result = check_rest_request(
                request.headers,
                request.method,
                request.raw_path,
                body,
                self.engine.account_by_key,
                self.dialect.faults.server_time_ms() / 1000.0,
            )
            if result.error is not None:
                return refuse(result.error)
            assert result.account is not None
            params: dict[str, Any] = dict(request.query)
            if request.method == "POST" and body:
                try:
                    decoded = json.loads(body)
                except ValueError:
                    return refuse(BAD_JSON)
                if isinstance(decoded, dict):
                    params.update(decoded)
                else:
                    params["_batch"] = decoded
            return await handler(request, result.account, params)

        return authenticated

    # ---- helpers ----

    def _market(self, instrument: str | None) -> Market | None:
        return self.dialect.market_by_inst.get(instrument or "")

    def _now(self) -> str:
        return str(self.dialect.faults.server_time_ms())

    # ---- public ----

    async def public_time(self, request: web.Request) -> web.Response:
        return ok([{"ts": self._now()}])

    async def instruments(self, request: web.Request) -> web.Response:
        inst_type = request.query.get("instType", "")
        if not inst_type:
            return refuse(missing("instType"))
        if inst_type not in ("SPOT", "MARGIN", "SWAP", "FUTURES", "OPTION"):
            return refuse(parameter_error("instType"))
        if inst_type != payloads.INST_TYPE:
            return ok([])  # the simulator lists perpetual swaps only
        wanted_id = request.query.get("instId")
        family = request.query.get("instFamily") or request.query.get("uly")
        rows = [
            payloads.instrument(market)
            for market in self.engine.markets.values()
            if (not wanted_id or payloads.inst_id(market) == wanted_id)
            and (not family or payloads.inst_family(market) == family)
        ]
        return ok(rows)

    async def mark_price(self, request: web.Request) -> web.Response:
        inst_type = request.query.get("instType", payloads.INST_TYPE)
        wanted_id = request.query.get("instId")
        if wanted_id and self._market(wanted_id) is None:
            return refuse(unknown_instrument())
        if inst_type != payloads.INST_TYPE:
            return ok([])
        ts_ms = self.engine.now_ms()
        rows = [
            payloads.mark_price_row(market, self.engine.marks[market.symbol], ts_ms)
            for market in self.engine.markets.values()
            if not wanted_id or payloads.inst_id(market) == wanted_id
        ]
        return ok(rows)

    async def position_tiers(self, request: web.Request) -> web.Response:
        query = request.query
        for name in ("instType", "tdMode"):
            if not query.get(name):
                return refuse(missing(name))
        if query["tdMode"] not in ("cross", "isolated"):
            return refuse(parameter_error("tdMode"))
        if query["instType"] != payloads.INST_TYPE:
            return ok([])
        family = query.get("instFamily") or query.get("uly")
        if not family:
            return refuse(missing("instFamily"))
        rows = [
            row
            for market in self.engine.markets.values()
            if payloads.inst_family(market) in family.split(",")
            for row in payloads.position_tiers(market)
        ]
        if not rows:
            return refuse(parameter_error("instFamily"))
        return ok(rows)

    async def funding_rate(self, request: web.Request) -> web.Response:
        market = self._market(request.query.get("instId"))
        if market is None:
            return refuse(unknown_instrument())
        now = self.engine.now_ms()
        next_funding = (now // 28_800_000 + 1) * 28_800_000
        rate = payloads.okx_number(self.engine.funding_rate(market.symbol))
        row = {
            "formulaType": "noRate",
            "fundingRate": rate,
            "fundingTime": str(next_funding),
            "impactValue": "",
            "instId": payloads.inst_id(market),
            "instType": payloads.INST_TYPE,
            "interestRate": "0",
            "maxFundingRate": "0.0075",
            "method": "current_period",
            "minFundingRate": "-0.0075",
            "nextFundingRate": "",
            "nextFundingTime": str(next_funding + 28_800_000),
            "premium": "0",
            "settFundingRate": rate,
            "settState": "settled",
            "ts": str(now),
        }
        return ok([row])

    # ---- private: reading ----

    async def currencies(
        self, request: web.Request, account: SimAccount, params: dict[str, Any]
    ) -> web.Response:
        codes = {market.base for market in self.engine.markets.values()} | set(account.wallet)
        return ok(payloads.currency_rows(codes))

    async def account_config(
        self, request: web.Request, account: SimAccount, params: dict[str, Any]
    ) -> web.Response:
        return ok([payloads.account_config(uid_of(account.api_key), account.hedge_mode, "marginguard-sim")])

    async def balance(
        self, request: web.Request, account: SimAccount, params: dict[str, Any]
    ) -> web.Response:
        wanted = {code for code in str(params.get("ccy", "")).split(",") if code}
        return ok([balance_data(self.engine, account, wanted or None)])

    async def positions(
        self, request: web.Request, account: SimAccount, params: dict[str, Any]
    ) -> web.Response:
        inst_type = params.get("instType")
        if inst_type and inst_type not in ("MARGIN", "SWAP", "FUTURES", "OPTION"):
            return refuse(parameter_error("instType"))
        if inst_type and inst_type != payloads.INST_TYPE:
            return ok([])
        wanted = {inst for inst in str(params.get("instId", "")).split(",") if inst}
        rows = position_rows(self.engine, account, wanted or None)
        pos_ids = {pos_id for pos_id in str(params.get("posId", "")).split(",") if pos_id}
        if pos_ids:
            rows = [row for row in rows if row["posId"] in pos_ids]
        return ok(rows)

    async def leverage_info(
        self, request: web.Request, account: SimAccount, params: dict[str, Any]
    ) -> web.Response:
        mode = params.get("mgnMode")
        if not params.get("instId"):
            return refuse(missing("instId"))
        if mode not in ("cross", "isolated"):
            return refuse(missing("mgnMode") if not mode else parameter_error("mgnMode"))
        rows = []
        for inst in str(params["instId"]).split(","):
            market = self._market(inst)
            if market is None:
                return refuse(unknown_instrument())
            sides = ("long", "short") if account.hedge_mode and mode == "isolated" else ("net",)
            lever = payloads.okx_number(account.leverage_for(market.symbol))
            rows += [{"instId": inst, "lever": lever, "mgnMode": mode, "posSide": side} for side in sides]
        return ok(rows)

    # ---- private: changing ----

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
        try:
            if account.margin_mode_for(symbol) is not mode:
                if any(pos.symbol == symbol for pos in account.positions):
                    return refuse(SETTINGS_BLOCKED)
                self.engine.set_margin_mode(account.api_key, symbol, mode)
            self.engine.set_leverage(account.api_key, symbol, lever)
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

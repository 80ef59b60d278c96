"""Bybit v5 REST endpoints at their real paths: market data (public) and account, position, order (signed).

Every answer is `{"retCode", "retMsg", "result", "retExtInfo", "time"}`; signed requests are checked as the
exchange checks them (see `auth.py`) and answered with its rate-limit headers.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from daemon.core.types import MarginMode, Side
from daemon.sim.bybit import errors
from daemon.sim.bybit.account import AccountEndpoints
from daemon.sim.bybit.auth import AuthRefusal, check_rest
from daemon.sim.bybit.errors import BybitError, json_response, number_param
from daemon.sim.bybit.executions import execution_list
from daemon.sim.bybit.payloads import REST_ONLY_TICKER_FIELDS, instrument_row, position_row, risk_limit_rows
from daemon.sim.bybit.views import SessionState, empty_figures, position_rows, side_of_idx, ticker
from daemon.sim.bybit.wire import category_of, envelope, wire_symbol
from daemon.sim.engine import Engine, EngineError
from daemon.sim.faults import Faults
from daemon.sim.markets import Market

Params = dict[str, Any]
PrivateHandler = Callable[[str, Params], Any]

UNIFIED_MODES = {"ISOLATED_MARGIN": MarginMode.ISOLATED, "REGULAR_MARGIN": MarginMode.CROSS}
RATE_LIMIT_PER_SECOND = 10
ADD_MARGIN_FIELDS = (
    "positionIdx", "riskId", "riskLimitValue", "size", "positionValue", "avgPrice", "liqPrice", "bustPrice",
    "markPrice", "leverage", "autoAddMargin", "positionStatus", "positionIM", "positionMM", "unrealisedPnl",
    "cumRealisedPnl", "stopLoss", "takeProfit", "trailingStop", "createdTime", "updatedTime",
)  # fmt: skip


class RestApi:
    def __init__(self, engine: Engine, faults: Faults, session: SessionState) -> None:
        self.engine = engine
        self.faults = faults
        self.session = session
        self.by_wire: dict[str, Market] = {wire_symbol(m): m for m in engine.markets.values()}
        self._limit_windows: dict[tuple[str, str], tuple[int, int]] = {}
        self.account = AccountEndpoints(engine, self.now_ms)

    def routes(self) -> list[web.RouteDef]:
        public = {
            "/v5/market/time": self.market_time,
            "/v5/market/instruments-info": self.instruments,
            "/v5/market/risk-limit": self.risk_limit,
            "/v5/market/tickers": self.tickers,
        }
        private_get: dict[str, PrivateHandler] = {
            "/v5/account/wallet-balance": self.account.wallet_balance,
            "/v5/position/list": self.position_list,
            "/v5/asset/coin/query-info": self.account.coin_info,
            "/v5/user/query-api": self.account.query_api,
            "/v5/account/info": self.account.account_info,
            "/v5/account/fee-rate": self.account.fee_rate,
            "/v5/execution/list": self.execution_list,
        }
        private_post: dict[str, PrivateHandler] = {
            "/v5/position/set-leverage": self.set_leverage,
            "/v5/account/set-margin-mode": self.set_margin_mode,
            "/v5/position/switch-isolated": self.switch_isolated,
            "/v5/position/switch-mode": self.switch_mode,
            "/v5/position/add-margin": self.add_margin,
            "/v5/order/create": self.create_order,
            "/v5/asset/transfer/inter-transfer": self.account.inter_transfer,
        }
        routes = [web.get(path, self._public(handler)) for path, handler in public.items()]
        routes += [web.get(path, self._private(handler)) for path, handler in private_get.items()]
        routes += [web.post(path, self._private(handler)) for path, handler in private_post.items()]
        return routes

    # ---- plumbing ----

    def now_ms(self) -> int:
        return self.faults.server_time_ms()

    def _public(self, handler: Callable[[Params], Any]) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def serve(request: web.Request) -> web.Response:
            try:
                result = handler(dict(request.query))
            except BybitError as refusal:
                return refusal.response(self.now_ms())
            return json_response(envelope(result, self.now_ms()))

        return serve

    def _private(self, handler: PrivateHandler) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def serve(request: web.Request) -> web.Response:
            body = await request.text() if request.method == "POST" else ""
            url = request.rel_url
            payloads = (body,) if request.method == "POST" else (url.raw_query_string, url.query_string)
            verdict = check_rest(request.headers, payloads, self._secret_for, self.now_ms())
            if isinstance(verdict, AuthRefusal):
                status = 401 if verdict.ret_code in (10003, 10004) else 200
                return BybitError(verdict.ret_code, verdict.ret_msg, status).response(self.now_ms())
            headers = self._limit_headers(verdict, request.path)
            try:
                params = json.loads(body) if body else dict(request.query)
                if not isinstance(params, dict):
                    raise errors.params_error("request body must be a JSON object")
                result = handler(verdict, params)
            except json.JSONDecodeError:
                return errors.params_error("request body is not valid JSON").response(self.now_ms(), headers)
            except BybitError as refusal:
                return refusal.response(self.now_ms(), headers)
            except EngineError as refusal:
                return errors.params_error(refusal.message).response(self.now_ms(), headers)
            return json_response(envelope(result, self.now_ms()), headers=headers)

        return serve

    def _secret_for(self, api_key: str) -> str | None:
        account = self.engine.account_by_key(api_key)
        return account.secret if account is not None else None

    def _limit_headers(self, api_key: str, path: str) -> dict[str, str]:
        """Bybit's per-key, per-endpoint window headers (the simulator counts but never refuses here)."""
        now = self.now_ms()
        second = now // 1000
        window_second, used = self._limit_windows.get((api_key, path), (second, 0))
        used = used + 1 if window_second == second else 1
        self._limit_windows[(api_key, path)] = (second, used)
        return {
            "X-Bapi-Limit": str(RATE_LIMIT_PER_SECOND),
            "X-Bapi-Limit-Status": str(max(0, RATE_LIMIT_PER_SECOND - used)),
            "X-Bapi-Limit-Reset-Timestamp": str((second + 1) * 1000),
        }

    def _market(self, params: Params, category: str | None = None) -> Market:
        symbol = str(params.get("symbol", ""))
        market = self.by_wire.get(symbol)
        if market is None or (category is not None and category_of(market) != category):
            raise errors.invalid_symbol()
        return market

    def _markets_of(self, category: str, symbol: str | None) -> list[Market]:
        if category not in ("linear", "inverse", "spot", "option"):
            raise errors.params_error("Illegal category")
        chosen = [m for m in self.engine.markets.values() if category_of(m) == category]
        if symbol:
            chosen = [m for m in chosen if wire_symbol(m) == symbol]
        return chosen

    # ---- public market data ----

    def market_time(self, params: Params) -> Any:
        now = self.now_ms()
        return {"timeSecond": str(now // 1000), "timeNano": str(now * 1_000_000)}

    def instruments(self, params: Params) -> Any:
        category = str(params.get("category", ""))
        markets = self._markets_of(category, params.get("symbol"))
        if params.get("status") not in (None, "", "Trading"):
            markets = []  # every simulated instrument is trading: none is pre-launch or settling
        return {"category": category, "list": [instrument_row(m) for m in markets], "nextPageCursor": ""}

    def risk_limit(self, params: Params) -> Any:
        category = str(params.get("category", ""))
        markets = self._markets_of(category, params.get("symbol"))
        rows = [row for m in markets for row in risk_limit_rows(m)]
        return {"category": category, "list": rows, "nextPageCursor": ""}

    def tickers(self, params: Params) -> Any:
        category = str(params.get("category", ""))
        markets = self._markets_of(category, params.get("symbol"))
        rows = [{**ticker(self.engine, self.session, m.symbol), **REST_ONLY_TICKER_FIELDS} for m in markets]
        return {"category": category, "list": rows}

    # ---- positions ----

    def execution_list(self, api_key: str, params: Params) -> Any:
        return execution_list(self.engine, self.by_wire, api_key, params)

    def position_list(self, api_key: str, params: Params) -> Any:
        category = str(params.get("category", ""))
        if category not in ("linear", "inverse"):
            raise errors.params_error("Illegal category")
        symbol, settle = params.get("symbol"), params.get("settleCoin")
        if not symbol and not settle and category == "linear":
            raise errors.params_error("Missing some parameters that must be filled in, symbol or settleCoin")
        seq = self.session.seq
        if symbol:
            market = self._market(params, category)
            rows = position_rows(self.engine, api_key, seq, symbol=market.symbol)
            if not rows:  # Bybit lists the symbol's (empty) legs with their leverage
                account = self.engine.account(api_key)
                sides: list[Side | None] = [Side.LONG, Side.SHORT] if account.hedge_mode else [None]
                rows = [
                    position_row(empty_figures(self.engine, account, market, side, seq, self.now_ms()))
                    for side in sides
                ]
        else:
            rows = [
                row
                for row in position_rows(self.engine, api_key, seq)
                if category_of(self.by_wire[row["symbol"]]) == category
                and self.by_wire[row["symbol"]].settle == (settle or self.by_wire[row["symbol"]].settle)
            ]
        return {"list": rows, "nextPageCursor": "", "category": category}

    def set_leverage(self, api_key: str, params: Params) -> Any:
        market = self._market(params)
        buy, sell = number_param(params, "buyLeverage"), number_param(params, "sellLeverage")
        account = self.engine.account(api_key)
        if not account.hedge_mode and buy != sell:
            raise errors.params_error("buy leverage must be equal to sell leverage in one-way mode")
        if account.leverage_for(market.symbol) == buy:
            raise errors.NOT_MODIFIED_LEVERAGE
        try:
            self.engine.set_leverage(api_key, market.symbol, buy)
        except EngineError as refusal:
            if refusal.kind == "leverage_too_high":
                raise errors.LEVERAGE_RISK_LIMIT from None
            raise
        return {}

    def set_margin_mode(self, api_key: str, params: Params) -> Any:
        """Unified accounts switch margin mode for every symbol at once."""
        requested = str(params.get("setMarginMode", ""))
        if requested == "PORTFOLIO_MARGIN":
            raise errors.set_margin_mode_failed(
                "3400000", "Equity needs to be equal to or greater than 1000 USDC"
            )
        mode = UNIFIED_MODES.get(requested)
        if mode is None:
            raise errors.params_error("setMarginMode invalid")
        account = self.engine.account(api_key)
        if any(p.margin_mode is not mode for p in account.positions):
            raise errors.set_margin_mode_failed("3400065", "Please close all positions before switching")
        for symbol in self.engine.markets:
            if account.margin_mode_for(symbol) is not mode:
                self.engine.set_margin_mode(api_key, symbol, mode)
        return {"reasons": []}

    def switch_isolated(self, api_key: str, params: Params) -> Any:
        """Classic accounts switch one symbol between cross (tradeMode 0) and isolated (1)."""
        market = self._market(params)
        mode = MarginMode.ISOLATED if int(params.get("tradeMode", -1)) == 1 else MarginMode.CROSS
        leverage = number_param(params, "buyLeverage")
        try:
            self.engine.set_margin_mode(api_key, market.symbol, mode)
        except EngineError as refusal:
            if refusal.kind == "margin_mode_already_set":
                raise errors.MARGIN_MODE_NOT_MODIFIED from None
            if refusal.kind == "position_open":
                raise errors.params_error("cannot switch margin mode with an open position") from None
            raise
        if self.engine.account(api_key).leverage_for(market.symbol) != leverage:
            self.engine.set_leverage(api_key, market.symbol, leverage)
        return {}

    def switch_mode(self, api_key: str, params: Params) -> Any:
        hedge = int(params.get("mode", 0)) == 3
        account = self.engine.account(api_key)
        if account.hedge_mode == hedge:
            raise errors.POSITION_MODE_NOT_MODIFIED
        if account.positions:
            raise errors.POSITION_MODE_HAS_POSITION
        self.engine.set_hedge_mode(api_key, hedge)
        return {}

    def add_margin(self, api_key: str, params: Params) -> Any:
        """Add (positive `margin`) or reduce (negative) an isolated position's margin."""
        market = self._market(params)
        amount = number_param(params, "margin")
        account = self.engine.account(api_key)
        side = side_of_idx(account, int(params.get("positionIdx", 0)))
        try:
            self.engine.adjust_isolated_margin(api_key, market.symbol, side, amount)
        except EngineError as refusal:
            mapped = {
                "no_position": errors.NO_POSITION_FOR_MARGIN,
                "not_isolated": errors.CROSS_MARGIN_POSITION,
                "insufficient_balance": errors.ADD_MARGIN_INSUFFICIENT
                if amount > 0
                else errors.REDUCE_MARGIN_TOO_MUCH,
            }.get(refusal.kind)
            if mapped is not None:
                raise mapped from None
            raise
        row = next(
            r
            for r in position_rows(self.engine, api_key, self.session.next_seq(), symbol=market.symbol)
            if side is None or r["positionIdx"] == int(params.get("positionIdx", 0))
        )
        return {"category": category_of(market), "symbol": wire_symbol(market)} | {
            key: row[key] for key in ADD_MARGIN_FIELDS
        }

    # ---- orders ----

    def create_order(self, api_key: str, params: Params) -> Any:
        """Market (and marketable limit) orders fill at once at the mark price."""
        market = self._market(params)
        side_text = params.get("side")
        if side_text not in ("Buy", "Sell"):
            raise errors.params_error("params error: side invalid")
        side = Side.LONG if side_text == "Buy" else Side.SHORT
        quantity = number_param(params, "qty")
        account = self.engine.account(api_key)
        idx = int(params.get("positionIdx", 0))
        reduce_only = str(params.get("reduceOnly", "false")).lower() == "true"
        try:
            if account.hedge_mode:
                leg = Side.LONG if idx == 1 else Side.SHORT
                if side is leg:
                    self.engine.open_position(api_key, market.symbol, side, quantity)
                else:  # an opposite order on a hedge leg closes it; partial closes are not simulated
                    held = self.engine.find_position(api_key, market.symbol, leg)
                    if held is None:
                        raise BybitError(110017, "current position is zero, cannot fix reduce-only order qty")
                    if quantity < held.contracts:
                        raise errors.params_error("the simulator closes hedge-mode legs in full only")
                    self.engine.close_position(api_key, market.symbol, leg)
            else:
                existing = self.engine.find_position(api_key, market.symbol)
                if reduce_only:
                    if existing is None or existing.side is side:
                        raise BybitError(110017, "current position is zero, cannot fix reduce-only order qty")
                    quantity = min(quantity, existing.contracts)
                self.engine.open_position(api_key, market.symbol, side, quantity)
        except EngineError as refusal:
            if refusal.kind == "insufficient_balance":
                raise errors.ORDER_INSUFFICIENT from None
            raise
        return {"orderId": str(uuid.uuid4()), "orderLinkId": str(params.get("orderLinkId", ""))}

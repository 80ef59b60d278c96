"""Binance USD-M REST endpoints at their real paths (`/fapi/v1/...`, `/fapi/v2/...`, `/fapi/v3/...`).

Public endpoints answer anyone; SIGNED ones go through `auth.check_signed`; listenKey endpoints need the
key header only. Every answer carries `X-MBX-USED-WEIGHT-1M`, the request weight used in the last minute,
as Binance's does. Engine refusals become the exchange's own error codes (see `wire`).
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from daemon.core.types import MarginMode, Side
from daemon.sim.binance import auth, orders, payloads, wire
from daemon.sim.binance.listen_keys import ListenKeys
from daemon.sim.engine import Engine, EngineError, SimAccount
from daemon.sim.faults import Faults

Params = dict[str, str]
SignedHandler = Callable[[SimAccount, Params], Any]

# Request weights of the endpoints served (Binance's published figures, simplified to one per route).
WEIGHTS = {"exchangeInfo": 1, "account": 5, "positionRisk": 5, "balance": 5, "leverageBracket": 1}

_ENGINE_ERRORS: dict[str, wire.BinanceError] = {
    "not_found": wire.INVALID_SYMBOL,
    "no_position": wire.NO_POSITION_FOR_MARGIN,
    "not_isolated": wire.ADD_MARGIN_NOT_ISOLATED,
    "insufficient_balance": wire.MARGIN_INSUFFICIENT,
    "margin_mode_already_set": wire.NO_NEED_TO_CHANGE_MARGIN_TYPE,
    "position_open": wire.MARGIN_TYPE_WITH_POSITION,
}


class BinanceRest:
    def __init__(self, engine: Engine, faults: Faults, listen_keys: ListenKeys) -> None:
        self.engine = engine
        self.faults = faults
        self.listen_keys = listen_keys
        self._weights: deque[tuple[float, int]] = deque()
        self._order_ids = itertools.count(3_000_000_001)
        self._transfer_ids = itertools.count(13_526_853_623)

    def routes(self) -> list[web.RouteDef]:
        signed = self._signed
        return [
            web.get("/fapi/v1/ping", self._public(lambda params: {})),
            web.get(
                "/fapi/v1/time", self._public(lambda params: {"serverTime": self.faults.server_time_ms()})
            ),
            web.get("/fapi/v1/exchangeInfo", self._public(self.exchange_info, WEIGHTS["exchangeInfo"])),
            web.get("/fapi/v1/premiumIndex", self._public(self.premium_index)),
            web.get("/fapi/v1/leverageBracket", signed(self.leverage_bracket, WEIGHTS["leverageBracket"])),
            web.get("/fapi/v2/account", signed(self.account_v2, WEIGHTS["account"])),
            web.get("/fapi/v3/account", signed(self.account_v3, WEIGHTS["account"])),
            web.get("/fapi/v2/balance", signed(self.balance, WEIGHTS["balance"])),
            web.get("/fapi/v3/balance", signed(self.balance, WEIGHTS["balance"])),
            web.get("/fapi/v2/positionRisk", signed(self.position_risk_v2, WEIGHTS["positionRisk"])),
            web.get("/fapi/v3/positionRisk", signed(self.position_risk_v3, WEIGHTS["positionRisk"])),
            web.get("/fapi/v1/symbolConfig", signed(self.symbol_config)),
            web.post("/fapi/v1/positionMargin", signed(self.position_margin)),
            web.post("/fapi/v1/marginType", signed(self.margin_type)),
            web.post("/fapi/v1/leverage", signed(self.leverage)),
            web.get("/fapi/v1/positionSide/dual", signed(self.get_dual_side)),
            web.post("/fapi/v1/positionSide/dual", signed(self.set_dual_side)),
            web.post("/fapi/v1/order", signed(self.order)),
            web.get("/fapi/v1/ticker/24hr", self._public(self.ticker_24hr)),
            web.get("/fapi/v1/forceOrders", signed(self.force_orders, 20)),
            web.get("/fapi/v1/positionMargin/history", signed(self.margin_history)),
            web.post("/sapi/v1/asset/transfer", signed(self.asset_transfer)),
            web.post("/sapi/v1/futures/transfer", signed(self.futures_transfer)),
            web.post("/fapi/v1/listenKey", self._user_stream(self.listen_keys_post)),
            web.put("/fapi/v1/listenKey", self._user_stream(self.listen_keys_put)),
            web.delete("/fapi/v1/listenKey", self._user_stream(self.listen_keys_delete)),
        ]

    # ---- plumbing: weight header, authentication, error mapping ----

    def _used_weight(self, weight: int) -> str:
        now = time.monotonic()
        self._weights.append((now, weight))
        while self._weights and self._weights[0][0] < now - 60:
            self._weights.popleft()
        return str(sum(w for _, w in self._weights))

    def _answer(self, payload: Any, weight: int, status: int = 200) -> web.Response:
        return wire.json_response(payload, status, {"X-MBX-USED-WEIGHT-1M": self._used_weight(weight)})

    def _refuse(self, error: wire.BinanceError, weight: int = 1) -> web.Response:
        return error.response({"X-MBX-USED-WEIGHT-1M": self._used_weight(weight)})

    def _public(
        self, handler: Callable[[Params], Any], weight: int = 1
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def serve(request: web.Request) -> web.Response:
            try:
                return self._answer(handler(dict(request.query)), weight)
            except wire.RefusedError as refused:
                return self._refuse(refused.error, weight)
            except EngineError as exc:
                return self._refuse(_ENGINE_ERRORS.get(exc.kind, wire.UNKNOWN_ERROR), weight)

        return serve

    def _signed(
        self, handler: SignedHandler, weight: int = 1
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def serve(request: web.Request) -> web.Response:
            signed = auth.SignedRequest(
                api_key=request.headers.get("X-MBX-APIKEY"),
                raw_query=request.rel_url.raw_query_string,
                raw_body=await request.text() if request.body_exists else "",
            )
            if not signed.api_key:
                return self._refuse(wire.API_KEY_FORMAT, weight)
            account = self.engine.account_by_key(signed.api_key)
            if account is None:
                return self._refuse(wire.REJECTED_KEY, weight)
            error = auth.check_signed(signed, account.secret, self.faults.server_time_ms())
            if error is not None:
                return self._refuse(error, weight)
            try:
                return self._answer(handler(account, signed.params()), weight)
            except wire.RefusedError as refused:
                return self._refuse(refused.error, weight)
            except EngineError as exc:
                return self._refuse(_ENGINE_ERRORS.get(exc.kind, wire.UNKNOWN_ERROR), weight)

        return serve

    def _user_stream(self, handler: SignedHandler) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def serve(request: web.Request) -> web.Response:
            api_key = request.headers.get("X-MBX-APIKEY")
            if not api_key:
                return self._refuse(wire.API_KEY_FORMAT)
            account = self.engine.account_by_key(api_key)
            if account is None:
                return self._refuse(wire.REJECTED_KEY)
            try:
                return self._answer(handler(account, {}), 1)
            except wire.RefusedError as refused:
                return self._refuse(refused.error)

        return serve

    def _market_id(self, params: Params, required: bool = True) -> str | None:
        symbol = params.get("symbol")
        if not symbol:
            if required:
                raise wire.RefusedError(wire.mandatory("symbol"))
            return None
        if symbol not in self.engine.markets:
            raise wire.RefusedError(wire.INVALID_SYMBOL)
        return symbol

    # ---- market data ----

    def exchange_info(self, params: Params) -> Any:
        return payloads.exchange_info(self.engine.markets.values(), self.faults.server_time_ms())

    def premium_index(self, params: Params) -> Any:
        now = self.engine.now_ms()
        symbol = self._market_id(params, required=False)
        if symbol is not None:
            return payloads.premium_index(self.engine, symbol, now)
        return [payloads.premium_index(self.engine, s, now) for s in self.engine.markets]

    def ticker_24hr(self, params: Params) -> Any:
        now = self.engine.now_ms()
        symbol = self._market_id(params, required=False)
        if symbol is not None:
            return payloads.ticker_24hr(self.engine, symbol, now)
        return [payloads.ticker_24hr(self.engine, s, now) for s in self.engine.markets]

    # ---- account ----

    def leverage_bracket(self, account: SimAccount, params: Params) -> Any:
        symbol = self._market_id(params, required=False)
        if symbol is not None:
            return payloads.leverage_brackets(self.engine.markets[symbol])  # an object, as published
        return [payloads.leverage_brackets(market) for market in self.engine.markets.values()]

    def account_v3(self, account: SimAccount, params: Params) -> Any:
        return payloads.account_v3(payloads.AccountView(self.engine, account), self.engine.now_ms())

    def account_v2(self, account: SimAccount, params: Params) -> Any:
        body = payloads.account_v3(payloads.AccountView(self.engine, account), self.engine.now_ms())
        assets = [{**row, "marginAvailable": True} for row in body.pop("assets")]
        head = {"feeTier": 0, "canTrade": True, "canDeposit": True, "canWithdraw": True, "tradeGroupId": -1}
        return {**head, "updateTime": 0, "multiAssetsMargin": False, **body, "assets": assets}

    def balance(self, account: SimAccount, params: Params) -> Any:
        view = payloads.AccountView(self.engine, account)
        body = payloads.account_v3(view, self.engine.now_ms())
        asset = body["assets"][0]
        return [
            {
                "accountAlias": "SgsR",
                "asset": asset["asset"],
                "balance": asset["walletBalance"],
                "crossWalletBalance": asset["crossWalletBalance"],
                "crossUnPnl": asset["crossUnPnl"],
                "availableBalance": asset["availableBalance"],
                "maxWithdrawAmount": asset["maxWithdrawAmount"],
                "marginAvailable": True,
                "updateTime": asset["updateTime"],
            }
        ]

    def position_risk_v3(self, account: SimAccount, params: Params) -> Any:
        symbol = self._market_id(params, required=False)
        view = payloads.AccountView(self.engine, account)
        # v3 lists only symbols with a position.
        return [
            payloads.position_risk_v3(view, pos, leg)
            for pos, leg in view.legs
            if symbol is None or pos.symbol == symbol
        ]

    def position_risk_v2(self, account: SimAccount, params: Params) -> Any:
        symbol = self._market_id(params, required=False)
        view = payloads.AccountView(self.engine, account)
        held = {(pos.symbol, pos.position_side): (pos, leg) for pos, leg in view.legs}
        sides = ("LONG", "SHORT") if account.hedge_mode else ("BOTH",)
        rows = []
        for market in self.engine.markets.values():  # v2 lists every symbol, flat or not
            if symbol is not None and market.symbol != symbol:
                continue
            for side in sides:
                found = held.get((market.symbol, side))
                if found is not None:
                    rows.append(payloads.position_risk_v2(view, *found))
                else:
                    rows.append(payloads.flat_position_v2(self.engine, account, market, side))
        return rows

    def symbol_config(self, account: SimAccount, params: Params) -> Any:
        symbol = self._market_id(params, required=False)
        markets = [self.engine.markets[symbol]] if symbol else list(self.engine.markets.values())
        return [payloads.symbol_config(account, market) for market in markets]

    def force_orders(self, account: SimAccount, params: Params) -> Any:
        return orders.force_orders(self.engine, account, self._market_id(params, required=False), params)

    def margin_history(self, account: SimAccount, params: Params) -> Any:
        symbol = self._market_id(params)
        assert symbol is not None
        return orders.margin_history(self.engine, account, symbol, params)

    # ---- account changes ----

    def position_margin(self, account: SimAccount, params: Params) -> Any:
        symbol = self._market_id(params)
        assert symbol is not None
        kind = params.get("type")
        if kind not in ("1", "2"):
            raise wire.RefusedError(wire.mandatory("type") if kind is None else wire.invalid_value("type"))
        amount = wire.positive_param(params, "amount", wire.AMOUNT_NOT_POSITIVE)
        side = _leg_side(account, params)
        try:
            self.engine.adjust_isolated_margin(
                account.api_key, symbol, side, amount if kind == "1" else -amount
            )
        except EngineError as exc:
            if exc.kind == "insufficient_balance" and kind == "2":
                raise wire.RefusedError(wire.ISOLATED_BALANCE_INSUFFICIENT) from exc
            raise
        return {
            "amount": amount,
            "code": 200,
            "msg": "Successfully modify position margin.",
            "type": int(kind),
        }

    def margin_type(self, account: SimAccount, params: Params) -> Any:
        symbol = self._market_id(params)
        assert symbol is not None
        wanted = params.get("marginType", "").upper()
        modes = {"ISOLATED": MarginMode.ISOLATED, "CROSSED": MarginMode.CROSS}
        if wanted not in modes:
            raise wire.RefusedError(
                wire.mandatory("marginType") if not wanted else wire.invalid_value("marginType")
            )
        self.engine.set_margin_mode(account.api_key, symbol, modes[wanted])
        return {"code": 200, "msg": "success"}

    def leverage(self, account: SimAccount, params: Params) -> Any:
        symbol = self._market_id(params)
        assert symbol is not None
        text = params.get("leverage")
        if not text:
            raise wire.RefusedError(wire.mandatory("leverage"))
        try:
            leverage = int(text)
        except ValueError:
            raise wire.RefusedError(wire.invalid_value("leverage")) from None
        market = self.engine.markets[symbol]
        if not 1 <= leverage <= market.max_leverage:
            raise wire.RefusedError(wire.invalid_leverage(leverage))
        try:
            self.engine.set_leverage(account.api_key, symbol, leverage)
        except EngineError as exc:
            if exc.kind == "leverage_too_high":  # allowed for the symbol, not for the open position's size
                raise wire.RefusedError(wire.POSITION_TOO_LARGE_FOR_LEVERAGE) from exc
            raise
        return {
            "leverage": leverage,
            "maxNotionalValue": payloads.max_notional(market, leverage),
            "symbol": symbol,
        }

    def get_dual_side(self, account: SimAccount, params: Params) -> Any:
        return {"dualSidePosition": account.hedge_mode}

    def set_dual_side(self, account: SimAccount, params: Params) -> Any:
        wanted = params.get("dualSidePosition", "").lower()
        if wanted not in ("true", "false"):
            raise wire.RefusedError(wire.mandatory("dualSidePosition"))
        on = wanted == "true"
        if account.hedge_mode == on:
            raise wire.RefusedError(wire.NO_NEED_TO_CHANGE_POSITION_SIDE)
        try:
            self.engine.set_hedge_mode(account.api_key, on)
        except EngineError as exc:
            raise wire.RefusedError(wire.POSITION_SIDE_WITH_POSITION) from exc
        return {"code": 200, "msg": "success"}

    def order(self, account: SimAccount, params: Params) -> Any:
        symbol = self._market_id(params)
        assert symbol is not None
        return orders.place_market_order(self.engine, account, symbol, params, next(self._order_ids))

    # ---- wallet transfers (the spot side is not simulated: it never runs dry) ----

    def asset_transfer(self, account: SimAccount, params: Params) -> Any:
        """POST /sapi/v1/asset/transfer: MAIN_UMFUTURE moves into the USD-M wallet, UMFUTURE_MAIN out of it."""
        direction = {"MAIN_UMFUTURE": 1.0, "UMFUTURE_MAIN": -1.0}.get(params.get("type", ""))
        if direction is None:
            raise wire.RefusedError(
                wire.mandatory("type") if "type" not in params else wire.invalid_value("type")
            )
        return {"tranId": self._transfer(account, params, direction)}

    def futures_transfer(self, account: SimAccount, params: Params) -> Any:
        """POST /sapi/v1/futures/transfer: type 1 spot -> USD-M, 2 USD-M -> spot."""
        direction = {"1": 1.0, "2": -1.0}.get(params.get("type", ""))
        if direction is None:
            raise wire.RefusedError(
                wire.mandatory("type") if "type" not in params else wire.invalid_value("type")
            )
        return {"tranId": self._transfer(account, params, direction)}

    def _transfer(self, account: SimAccount, params: Params, direction: float) -> int:
        asset = params.get("asset", "")
        if asset != "USDT":
            raise wire.RefusedError(wire.invalid_value("asset"))
        amount = wire.positive_param(params, "amount", wire.AMOUNT_NOT_POSITIVE)
        try:
            self.engine.transfer(account.api_key, asset, direction * amount)
        except EngineError as exc:
            if exc.kind == "insufficient_balance":
                raise wire.RefusedError(wire.TRANSFER_INSUFFICIENT) from exc
            raise
        return next(self._transfer_ids)

    # ---- user data stream keys ----

    def listen_keys_post(self, account: SimAccount, params: Params) -> Any:
        return {"listenKey": self.listen_keys.issue(account.api_key)}

    def listen_keys_put(self, account: SimAccount, params: Params) -> Any:
        key = self.listen_keys.extend(account.api_key)
        if key is None:
            raise wire.RefusedError(wire.NO_LISTEN_KEY)
        return {"listenKey": key}

    def listen_keys_delete(self, account: SimAccount, params: Params) -> Any:
        self.listen_keys.revoke(account.api_key)
        return {}


def _leg_side(account: SimAccount, params: Params) -> Side | None:
    """The leg a margin change names: hedge mode needs positionSide LONG/SHORT, one-way BOTH (or nothing)."""
    position_side = params.get("positionSide", "BOTH").upper()
    if account.hedge_mode:
        if position_side not in ("LONG", "SHORT"):
            raise wire.RefusedError(wire.POSITION_SIDE_MISMATCH)
        return Side.LONG if position_side == "LONG" else Side.SHORT
    if position_side != "BOTH":
        raise wire.RefusedError(wire.POSITION_SIDE_MISMATCH)
    return None

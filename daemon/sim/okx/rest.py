"""OKX v5 REST endpoints at their real paths, answering as OKX does: `{"code", "msg", "data"}`, strings only.

Private endpoints check OKX's signature headers first (see `auth`); refusals use OKX's codes and HTTP 401.
Parameter errors answer HTTP 400, business refusals HTTP 200 with a non-zero `code`, as the exchange does.
This module routes every endpoint and serves the public and reading ones; `trading` serves the changing ones.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from daemon.sim.engine import SimAccount
from daemon.sim.markets import Market
from daemon.sim.okx import account_payloads, payloads
from daemon.sim.okx.auth import check_rest_request
from daemon.sim.okx.errors import BAD_JSON, WRONG_ENVIRONMENT, missing, parameter_error, unknown_instrument
from daemon.sim.okx.funding import OkxFunding
from daemon.sim.okx.replies import Handler, PrivateHandler, ok, refuse
from daemon.sim.okx.trading import OkxTrading
from daemon.sim.okx.views import balance_data, position_rows, uid_of

if TYPE_CHECKING:
    from daemon.sim.okx.dialect import OkxDialect

API = "/api/v5"


class OkxRest:
    def __init__(self, dialect: OkxDialect) -> None:
        self.dialect = dialect
        self.engine = dialect.engine
        self.trading = OkxTrading(dialect)
        self.funding = OkxFunding(dialect)

    def routes(self) -> list[web.RouteDef]:
        private = self._private
        trading, funding = self.trading, self.funding
        return [
            web.get(f"{API}/public/time", self.public_time),
            web.get(f"{API}/public/instruments", self.instruments),
            web.get(f"{API}/public/mark-price", self.mark_price),
            web.get(f"{API}/public/position-tiers", self.position_tiers),
            web.get(f"{API}/public/funding-rate", self.funding_rate),
            web.get(f"{API}/asset/currencies", private(self.currencies)),
            web.get(f"{API}/asset/balances", private(funding.balances)),
            web.post(f"{API}/asset/transfer", private(funding.transfer)),
            web.get(f"{API}/asset/transfer-state", private(funding.transfer_state)),
            web.get(f"{API}/account/config", private(self.account_config)),
            web.get(f"{API}/account/balance", private(self.balance)),
            web.get(f"{API}/account/positions", private(self.positions)),
            web.get(f"{API}/account/positions-history", private(self.dialect.history.positions_history)),
            web.get(f"{API}/account/bills", private(self.dialect.history.bills)),
            web.get(f"{API}/account/leverage-info", private(self.leverage_info)),
            web.post(f"{API}/account/position/margin-balance", private(trading.margin_balance)),
            web.post(f"{API}/account/set-leverage", private(trading.set_leverage)),
            web.post(f"{API}/account/set-position-mode", private(trading.set_position_mode)),
            web.post(f"{API}/trade/order", private(trading.order)),
            web.post(f"{API}/trade/batch-orders", private(trading.batch_orders)),
            web.post(f"{API}/trade/close-position", private(trading.close_position)),
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
            demo = request.headers.get("x-simulated-trading") == "1"
            if self.dialect.demo_keys.get(result.account.api_key, demo) != demo:
                return refuse(WRONG_ENVIRONMENT)
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
        return self.dialect.market_for(instrument)

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
        return ok(
            [account_payloads.account_config(uid_of(account.api_key), account.hedge_mode, "marginguard-sim")]
        )

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
        rows = position_rows(self.engine, account, wanted or None, self.dialect.history.opened_at)
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

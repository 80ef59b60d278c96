"""`BybitDialect`: the simulator speaking Bybit v5 (ccxt id `bybit`), unified account, USDT perpetuals."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from daemon.sim.bybit.errors import RATE_LIMIT_MSG, SERVER_ERROR_MSG, BybitError
from daemon.sim.bybit.rest import RATE_LIMIT_PER_SECOND, RestApi
from daemon.sim.bybit.streams import Streams
from daemon.sim.bybit.views import SessionState
from daemon.sim.dialect import RestPart, SimDialect, StreamPart
from daemon.sim.engine import SimAccount


class BybitDialect(SimDialect):
    ccxt_id = "bybit"
    family = "bybit"

    def build(self) -> tuple[RestPart, StreamPart]:
        self.session = SessionState()
        for symbol, mark in self.engine.marks.items():
            self.session.observe(symbol, mark)
        return (
            RestApi(self.engine, self.faults, self.session),
            Streams(self.engine, self.faults, self.hub, self.session),
        )

    def ccxt_config(self, http_base: str, ws_base: str, account: SimAccount) -> dict[str, Any]:
        """Every URL of ccxt's bybit pointed at this server; markets narrowed to the linear ones it lists."""
        public_ws = {kind: f"{ws_base}/v5/public/{kind}" for kind in ("spot", "inverse", "option", "linear")}
        private_ws = f"{ws_base}/v5/private"
        return {
            "apiKey": account.api_key,
            "secret": account.secret,
            "urls": {
                "api": {
                    **{name: http_base for name in ("spot", "futures", "v2", "public", "private")},
                    "ws": {
                        "public": public_ws,
                        "private": {
                            "spot": {"unified": private_ws, "nonUnified": f"{ws_base}/spot/private/v3"},
                            "contract": private_ws,
                            "usdc": f"{ws_base}/trade/option/usdc/private/v1",
                            "trade": f"{ws_base}/v5/trade",
                        },
                    },
                }
            },
            "options": {
                "fetchMarkets": {"types": ["linear"]},
                "defaultType": "swap",
                "defaultSubType": "linear",
                "defaultSettle": "USDT",
            },
        }

    def error_response(self, kind: str, status: int) -> web.Response:
        """HTTP faults the way Bybit's edge answers them.

        rate_limited: retCode 10006 with the X-Bapi-Limit* headers; banned: Bybit's IP ban is HTTP 403
        "access too frequent" (there is no 418 at Bybit); gateway failures: an HTML error page; an internal
        failure: retCode 10016.
        """
        now = self.faults.server_time_ms()
        if kind == "rate_limited":
            headers = {
                "X-Bapi-Limit": str(RATE_LIMIT_PER_SECOND),
                "X-Bapi-Limit-Status": "0",
                "X-Bapi-Limit-Reset-Timestamp": str((now // 1000 + 1) * 1000),
            }
            return BybitError(10006, RATE_LIMIT_MSG, status).response(now, headers)
        if kind == "banned":
            return web.Response(status=403, text="access too frequent", content_type="text/plain")
        if status == 500:
            return BybitError(10016, SERVER_ERROR_MSG, status).response(now)
        reason = {502: "Bad Gateway", 503: "Service Temporarily Unavailable", 504: "Gateway Time-out"}
        title = f"{status} {reason.get(status, 'Error')}"
        page = (
            f"<html><head><title>{title}</title></head><body><center><h1>{title}</h1></center></body></html>"
        )
        return web.Response(status=status, text=page, content_type="text/html")

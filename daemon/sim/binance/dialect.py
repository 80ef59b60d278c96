"""`BinanceDialect`: the simulator speaking Binance USD-M futures (ccxt id `binanceusdm`)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from daemon.sim.binance import wire
from daemon.sim.binance.listen_keys import ListenKeys
from daemon.sim.binance.payloads import WEIGHT_LIMIT_PER_MINUTE
from daemon.sim.binance.rest import BinanceRest
from daemon.sim.binance.streams import BinanceStreams
from daemon.sim.dialect import RestPart, SimDialect, StreamPart
from daemon.sim.engine import SimAccount

# Every REST base ccxt's binance classes know, with its path: all of them point at the simulator so that
# nothing a client does can leave the machine (unserved ones answer 404 instead of reaching the internet).
REST_BASES = {
    "fapiPublic": "/fapi/v1",
    "fapiPublicV2": "/fapi/v2",
    "fapiPublicV3": "/fapi/v3",
    "fapiPrivate": "/fapi/v1",
    "fapiPrivateV2": "/fapi/v2",
    "fapiPrivateV3": "/fapi/v3",
    "fapiData": "/futures/data",
    "dapiPublic": "/dapi/v1",
    "dapiPrivate": "/dapi/v1",
    "dapiPrivateV2": "/dapi/v2",
    "dapiData": "/futures/data",
    "eapiPublic": "/eapi/v1",
    "eapiPrivate": "/eapi/v1",
    "sapi": "/sapi/v1",
    "sapiV2": "/sapi/v2",
    "sapiV3": "/sapi/v3",
    "sapiV4": "/sapi/v4",
    "public": "/api/v3",
    "private": "/api/v3",
    "v1": "/api/v1",
    "papi": "/papi/v1",
    "papiV2": "/papi/v2",
}

BAN_SECONDS = 120  # Binance's first ban lasts two minutes


class BinanceDialect(SimDialect):
    ccxt_id = "binanceusdm"
    family = "binance"

    def build(self) -> tuple[RestPart, StreamPart]:
        self.listen_keys = ListenKeys(self.engine.clock)
        return (
            BinanceRest(self.engine, self.faults, self.listen_keys),
            BinanceStreams(self.engine, self.faults, self.hub, self.listen_keys),
        )

    def ccxt_config(self, http_base: str, ws_base: str, account: SimAccount) -> dict[str, Any]:
        ws = (
            f"{ws_base}/ws"  # ccxt turns a linear base ending in /ws into /market/ws, /public/ws, /private/ws
        )
        return {
            "apiKey": account.api_key,
            "secret": account.secret,
            "urls": {
                "api": {
                    **{name: http_base + path for name, path in REST_BASES.items()},
                    "ws": {
                        "spot": ws,
                        "margin": ws,
                        "linear": ws,
                        "inverse": ws,
                        "stock": ws,
                        "option": f"{ws_base}/public/ws",
                        "optionMarket": f"{ws_base}/market/ws",
                        "optionPrivate": f"{ws_base}/private/ws",
                        "papi": f"{ws_base}/pm/ws",
                        "ws-api": {
                            "spot": f"{ws_base}/ws-api/v3",
                            "linear": f"{ws_base}/ws-fapi/v1",
                            "inverse": f"{ws_base}/ws-dapi/v1",
                        },
                    },
                },
            },
            # With a key, load_markets would also ask the spot wallet for currencies (sapi); USD-M needs none.
            "options": {"fetchCurrencies": False, "defaultType": "swap"},
        }

    def error_response(self, kind: str, status: int) -> web.Response:
        weight = {"X-MBX-USED-WEIGHT-1M": str(WEIGHT_LIMIT_PER_MINUTE + 1)}  # what got the client limited
        if kind == "rate_limited":
            return wire.rate_limited(WEIGHT_LIMIT_PER_MINUTE).response({"Retry-After": "60", **weight})
        if kind == "banned":
            until_ms = self.faults.server_time_ms() + BAN_SECONDS * 1000
            return wire.banned(until_ms).response({"Retry-After": str(BAN_SECONDS), **weight})
        if status == 500:
            return wire.INTERNAL_ERROR.response()
        if status == 503:
            return wire.SERVICE_UNAVAILABLE.response()
        # 502 / 504 come from Binance's front proxies, not from its API: an HTML page, no JSON code.
        reason = {502: "Bad Gateway", 504: "Gateway Time-out"}.get(status, "Error")
        html = f"<html><head><title>{status} {reason}</title></head><body><center><h1>{status} {reason}</h1></center></body></html>"
        return web.Response(text=html, status=status, content_type="text/html")

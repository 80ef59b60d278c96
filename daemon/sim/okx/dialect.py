"""`OkxDialect`: the simulator speaking OKX v5 (ccxt id `okx`) over REST and websockets.

OKX sizes swap positions in contracts of `ctVal` base units (BTC-USDT-SWAP: 0.01 BTC), so the engine runs
with the OKX contract sizes from `markets.json`, and the margin model with the "okx" family.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from daemon.sim.dialect import RestPart, SimDialect, StreamPart
from daemon.sim.engine import SimAccount
from daemon.sim.markets import Market
from daemon.sim.okx import payloads
from daemon.sim.okx.errors import RATE_LIMITED, SYSTEM_BUSY, SYSTEM_ERROR
from daemon.sim.okx.history import PositionHistory
from daemon.sim.okx.rest import OkxRest
from daemon.sim.okx.streams import OkxStreams


class OkxDialect(SimDialect):
    ccxt_id = "okx"
    family = "okx"

    def build(self) -> tuple[RestPart, StreamPart]:
        self.market_by_inst: dict[str, Market] = {
            payloads.inst_id(m): m for m in self.engine.markets.values()
        }
        self.order_count = 0
        # api key -> True for a demo-trading key, False for a live one. OKX refuses a demo key without the
        # `x-simulated-trading: 1` header and a live key with it; keys not listed here are accepted either way.
        self.demo_keys: dict[str, bool] = {}
        self.history = PositionHistory(self)
        return OkxRest(self), OkxStreams(self)

    def market_for(self, instrument: str | None) -> Market | None:
        """The market an OKX instId ("BTC-USDT-SWAP") names, or None."""
        return self.market_by_inst.get(instrument or "")

    def ccxt_config(self, http_base: str, ws_base: str, account: SimAccount) -> dict[str, Any]:
        """An unmodified `ccxt.pro.okx` pointed here: only URLs, keys and market types are set.

        ccxt loads spot, futures, swap and option instruments by default; the simulator lists swaps only
        (and answers the other types with empty lists), so the config narrows `fetchMarkets` to swaps to
        spare three requests.
        """
        urls = {"rest": http_base, "ws": f"{ws_base}/ws/v5"}
        return {
            "apiKey": account.api_key,
            "secret": account.secret,
            "password": account.passphrase,
            # `test` too: a client switched to demo trading ("sandbox") must still only reach this server.
            "urls": {"api": dict(urls), "test": dict(urls)},
            "options": {"fetchMarkets": {"types": ["swap"]}},
        }

    def error_response(self, kind: str, status: int) -> web.Response:
        """An HTTP fault in OKX's shape: rate limits are 50011 (HTTP 429), outages 50013 / 50026."""
        if kind in ("rate_limited", "banned"):
            error = RATE_LIMITED
        elif status == 500:
            error = SYSTEM_ERROR
        else:
            error = SYSTEM_BUSY
        body = payloads.envelope([], code=error.code, msg=error.msg)
        return web.json_response(body, status=status)

"""The simulator's control API under `/_sim/`: JSON, no authentication, loopback clients only.

    POST   /_sim/mark        {"symbol": "BTCUSDT", "price": 60000, "index"?: 59990}
    POST   /_sim/marks       {"BTCUSDT": 60000, "ETHUSDT": 3000}
    POST   /_sim/account     {"api_key", "secret", "passphrase"?, "wallet"?: {"USDT": 1000}, "hedge_mode"?}
    POST   /_sim/position    {"api_key"?, "symbol", "side": "long"|"short", "contracts", "action"?: "set"|"open",
                              "entry_price"?, "margin_mode"?, "leverage"?, "isolated_margin"?}
    DELETE /_sim/position    ?symbol=BTCUSDT&side=long&api_key=...   (closes at the mark)
    POST   /_sim/balance     {"api_key"?, "asset"?: "USDT", "amount"} sets the cross wallet, or {"transfer": x}
    POST   /_sim/funding     {"symbol", "rate"} settles one funding interval at the mark (what each account paid)
    POST   /_sim/fault       {"kind", "duration_s"?, "count"?, ...kind parameters (see daemon.sim.faults)}
    DELETE /_sim/fault       ?kind=stall (all faults without kind)
    POST   /_sim/restart     {"down_s"?: 3} every socket closed, everything else refused (503) for down_s, what a
                             restart forgets forgotten (Binance listen keys), then serving the same state again
    GET    /_sim/requests    ?since=N (entries from index N on)
    GET    /_sim/connections ?open=1&api_key=...&since_mono=T   the private-stream sessions (daemon.sim.sessions)
    GET    /_sim/liquidations
    GET    /_sim/state       marks, accounts with positions and model liquidation prices, faults, sockets
    POST   /_sim/scenario    {"name", "speed"?: 1.0}

`api_key` defaults to the server's default account. Refusals answer 400 {"error": kind, "message"}.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from daemon.core.types import MarginMode, Side
from daemon.sim.engine import EngineError

if TYPE_CHECKING:
    from daemon.sim.server import SimServer

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def control_routes(sim: SimServer) -> list[web.RouteDef]:
    engine = sim.engine

    def guarded(handler: Callable[[web.Request], Awaitable[Any]]) -> Handler:
        async def wrapper(request: web.Request) -> web.StreamResponse:
            if not _is_loopback(request.remote):
                return web.json_response({"error": "forbidden", "message": "loopback only"}, status=403)
            try:
                return web.json_response(await handler(request))
            except EngineError as exc:
                return web.json_response({"error": exc.kind, "message": exc.message}, status=400)
            except (ValueError, KeyError, TypeError) as exc:
                return web.json_response({"error": "invalid", "message": repr(exc)}, status=400)

        return wrapper

    async def body(request: web.Request) -> dict[str, Any]:
        if not request.can_read_body:
            return dict(request.query)
        data = await request.json(loads=json.loads)
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        return {**request.query, **data}

    def api_key(data: dict[str, Any]) -> str:
        return str(data.get("api_key") or sim.account.api_key)

    async def set_mark(request: web.Request) -> Any:
        data = await body(request)
        index = data.get("index")
        engine.set_mark(data["symbol"], float(data["price"]), float(index) if index is not None else None)
        return {"symbol": data["symbol"], "mark": engine.marks[data["symbol"]]}

    async def set_marks(request: web.Request) -> Any:
        data = await body(request)
        engine.set_marks({symbol: float(price) for symbol, price in data.items()})
        return {symbol: engine.marks[symbol] for symbol in data}

    async def add_account(request: web.Request) -> Any:
        data = await body(request)
        account = engine.add_account(
            data["api_key"],
            data["secret"],
            data.get("passphrase", ""),
            wallet=data.get("wallet"),
            hedge_mode=bool(data.get("hedge_mode", False)),
        )
        return {"api_key": account.api_key, "ccxt_config": sim.ccxt_config(account)}

    async def put_position(request: web.Request) -> Any:
        data = await body(request)
        key, symbol, side = api_key(data), data["symbol"], Side(data["side"])
        if data.get("action", "set") == "open":
            if "leverage" in data:
                engine.set_leverage(key, symbol, float(data["leverage"]))
            if (
                "margin_mode" in data
                and engine.account(key).margin_mode_for(symbol).value != data["margin_mode"]
            ):
                engine.set_margin_mode(key, symbol, MarginMode(data["margin_mode"]))
            pos = engine.open_position(key, symbol, side, float(data["contracts"]), _opt_float(data, "price"))
        else:
            pos = engine.set_position(
                key,
                symbol,
                side,
                float(data["contracts"]),
                entry_price=_opt_float(data, "entry_price"),
                margin_mode=MarginMode(data["margin_mode"]) if "margin_mode" in data else None,
                leverage=_opt_float(data, "leverage"),
                isolated_margin=_opt_float(data, "isolated_margin"),
            )
        return {"position": _position_json(sim, key, pos) if pos is not None else None}

    async def delete_position(request: web.Request) -> Any:
        data = await body(request)
        side = Side(data["side"]) if data.get("side") else None
        return {"realized_pnl": engine.close_position(api_key(data), data["symbol"], side)}

    async def set_balance(request: web.Request) -> Any:
        data = await body(request)
        key, asset = api_key(data), str(data.get("asset", "USDT"))
        if "transfer" in data:
            engine.transfer(key, asset, float(data["transfer"]))
        else:
            engine.set_wallet(key, asset, float(data["amount"]))
        return {"wallet": engine.account(key).wallet}

    async def funding(request: web.Request) -> Any:
        data = await body(request)
        return {"paid": engine.pay_funding(str(data["symbol"]), float(data["rate"]))}

    async def set_fault(request: web.Request) -> Any:
        data = await body(request)
        kind = data.pop("kind")
        duration = data.pop("duration_s", None)
        count = data.pop("count", None)
        sim.faults.set(
            kind,
            duration_s=float(duration) if duration is not None else None,
            count=int(count) if count is not None else None,
            **data,
        )
        return {"faults": sim.faults.active()}

    async def restart(request: web.Request) -> Any:
        data = await body(request)
        sim.faults.set("restart", down_s=float(data.get("down_s", 3.0)))
        return {"faults": sim.faults.active(), "restarts": sim.faults.restarts}

    async def clear_fault(request: web.Request) -> Any:
        sim.faults.clear(request.query.get("kind"))
        return {"faults": sim.faults.active()}

    async def requests(request: web.Request) -> Any:
        since = int(request.query.get("since", "0"))
        return {"requests": engine.request_log[since:], "next": len(engine.request_log)}

    async def connections(request: web.Request) -> Any:
        query = request.query
        sessions = sim.sessions.sessions
        if query.get("open", "") in ("1", "true"):
            sessions = [s for s in sessions if s.open]
        if "api_key" in query:
            sessions = [s for s in sessions if s.api_key == query["api_key"]]
        if "since_mono" in query:
            sessions = [s for s in sessions if s.opened_mono >= float(query["since_mono"])]
        return {"sessions": [s.to_json() for s in sessions]}

    async def liquidations(request: web.Request) -> Any:
        return {"liquidations": engine.liquidations}

    async def state(request: web.Request) -> Any:
        return {
            "exchange": sim.exchange,
            "marks": engine.marks,
            "accounts": {key: _account_json(sim, key) for key in engine.accounts},
            "faults": sim.faults.active(),
            "open_sockets": sim.faults.open_sockets,
            "liquidations": len(engine.liquidations),
        }

    async def scenario(request: web.Request) -> Any:
        data = await body(request)
        sim.start_scenario(str(data["name"]), float(data.get("speed", 1.0)))
        return {"scenario": data["name"], "state": _account_json(sim, sim.account.api_key)}

    return [
        web.post("/_sim/mark", guarded(set_mark)),
        web.post("/_sim/marks", guarded(set_marks)),
        web.post("/_sim/account", guarded(add_account)),
        web.post("/_sim/position", guarded(put_position)),
        web.delete("/_sim/position", guarded(delete_position)),
        web.post("/_sim/balance", guarded(set_balance)),
        web.post("/_sim/funding", guarded(funding)),
        web.post("/_sim/fault", guarded(set_fault)),
        web.delete("/_sim/fault", guarded(clear_fault)),
        web.post("/_sim/restart", guarded(restart)),
        web.get("/_sim/requests", guarded(requests)),
        web.get("/_sim/connections", guarded(connections)),
        web.get("/_sim/liquidations", guarded(liquidations)),
        web.get("/_sim/state", guarded(state)),
        web.post("/_sim/scenario", guarded(scenario)),
    ]


def _opt_float(data: dict[str, Any], name: str) -> float | None:
    value = data.get(name)
    return float(value) if value is not None else None


def _is_loopback(remote: str | None) -> bool:
    if remote is None:
        return False
    try:
        return ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False


def _position_json(sim: SimServer, api_key: str, pos: Any) -> dict[str, Any]:
    engine = sim.engine
    try:
        liquidation: float | None = engine.liquidation_price(api_key, pos.symbol, pos.side)
    except ImportError:
        liquidation = None
    return {
        "symbol": pos.symbol,
        "side": pos.side.value,
        "position_side": pos.position_side,
        "contracts": pos.contracts,
        "entry_price": pos.entry_price,
        "margin_mode": pos.margin_mode.value,
        "leverage": pos.leverage,
        "isolated_margin": pos.isolated_margin,
        "unrealized_pnl": engine.unrealized_pnl(pos),
        "liquidation_price": liquidation,
    }


def _account_json(sim: SimServer, api_key: str) -> dict[str, Any]:
    account = sim.engine.account(api_key)
    return {
        "wallet": account.wallet,
        "hedge_mode": account.hedge_mode,
        "positions": [_position_json(sim, api_key, pos) for pos in account.positions],
    }

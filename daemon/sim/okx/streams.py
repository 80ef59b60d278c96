"""OKX v5 websockets: `/ws/v5/public` (mark-price) and `/ws/v5/private` (login, positions, account).

Wire behaviour reproduced from OKX's v5 documentation and ccxt.pro's okx client:
- text "ping" is answered with text "pong" (OKX has no protocol-level ping);
- `{"op": "login", "args": [...]}` answers `{"event": "login", "code": "0", "msg": "", "connId"}` or
  `{"event": "error", "code": "600xx", "msg", "connId"}`;
- `{"op": "subscribe", "args": [...]}` answers one `{"event": "subscribe", "arg", "connId"}` per argument,
  then pushes the channel's current state (`eventType` "snapshot"), then every change ("event_update");
- a flat or liquidated position is pushed once with `pos` "0", then no longer listed;
- `positions` and `account` also repeat their snapshot regularly (every 5 s, or the `updateInterval` of the
  subscription's `extraParams`; "0" switches that off), paced by the engine's mark announcements so that
  no timer task is needed;
- `balance_and_position` sends its snapshot on subscription and an `eventType` "liquidation" element when
  a position is liquidated (other event types of that channel are not produced).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web

from daemon.sim.engine import BalanceChanged, Liquidated, MarkChanged, PositionChanged, SimAccount
from daemon.sim.okx import account_payloads, payloads
from daemon.sim.okx.auth import OkxError, check_ws_login
from daemon.sim.okx.views import (
    balance_data,
    cash_balances,
    flat_position_row,
    position_row_for,
    position_rows,
    uid_of,
)
from daemon.sim.server import serve_socket
from daemon.sim.sockets import SimSocket, encode

if TYPE_CHECKING:
    from daemon.sim.okx.dialect import OkxDialect

PUBLIC_CHANNELS = frozenset({"mark-price"})
PRIVATE_CHANNELS = frozenset({"positions", "account", "balance_and_position"})
POSITION_INST_TYPES = frozenset({"ANY", "SWAP", "FUTURES", "MARGIN", "OPTION"})
REGULAR_CHANNELS = frozenset({"positions", "account"})
DEFAULT_REGULAR_PUSH_MS = 5_000
ALLOWED_REGULAR_PUSH_MS = frozenset({2_000, 3_000, 4_000})

Arg = dict[str, Any]


def _error(code: str, msg: str, conn_id: str) -> dict[str, str]:
    return {"event": "error", "code": code, "msg": msg, "connId": conn_id}


def _mark_key(instrument: str) -> str:
    return f"mark-price|{instrument}"


def regular_interval_ms(arg: Mapping[str, Any]) -> int | None:
    """How often OKX repeats a private snapshot for this subscription; None when only events push."""
    try:
        extra = json.loads(arg.get("extraParams") or "{}")
        wanted = int(extra.get("updateInterval", DEFAULT_REGULAR_PUSH_MS))
    except (TypeError, ValueError, AttributeError):
        return DEFAULT_REGULAR_PUSH_MS
    if wanted == 0:
        return None
    return wanted if wanted in ALLOWED_REGULAR_PUSH_MS else DEFAULT_REGULAR_PUSH_MS


def _matches(arg: Mapping[str, Any], instrument: str) -> bool:
    """Whether a `positions` subscription covers `instrument` (by instType, instFamily, instId)."""
    if arg.get("instType") not in ("ANY", payloads.INST_TYPE):
        return False
    if arg.get("instId") and arg["instId"] != instrument:
        return False
    return not arg.get("instFamily") or instrument.startswith(f"{arg['instFamily']}-")


class OkxStreams:
    def __init__(self, dialect: OkxDialect) -> None:
        self.dialect = dialect
        self.engine = dialect.engine
        self.hub = dialect.hub
        # api key -> hub channel key -> the subscription argument pushes echo (with the account's uid)
        self._private_args: dict[str, dict[str, Arg]] = {}
        self._regular_due: dict[str, int] = {}  # hub channel key -> engine ms of its next regular push
        self._next_regular_scan_ms = 0

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/ws/v5/public", self._serve("public")),
            web.get("/ws/v5/private", self._serve("private")),
            web.get("/ws/v5/business", self._serve("business")),
        ]

    def _serve(self, access: str) -> Any:
        async def on_open(socket: SimSocket) -> None:
            socket.state["access"] = access
            socket.state["conn_id"] = secrets.token_hex(4)

        async def handler(request: web.Request) -> web.WebSocketResponse:
            return await serve_socket(request, self.dialect.faults, self.hub, self._on_message, on_open)

        return handler

    # ---- incoming frames ----

    async def _on_message(self, socket: SimSocket, text: str) -> None:
        conn_id = socket.state["conn_id"]
        if text == "ping":
            socket.enqueue("pong", control=True)
            return
        try:
            message = json.loads(text)
        except ValueError:
            message = None
        if not isinstance(message, dict) or not isinstance(message.get("args", []), list):
            socket.enqueue(encode(_error("60012", f"Illegal request: {text}", conn_id)))
            return
        op = message.get("op")
        args = [arg for arg in message.get("args", []) if isinstance(arg, dict)]
        if op == "login":
            self._login(socket, args)
        elif op == "subscribe":
            for arg in args:
                self._subscribe(socket, arg)
        elif op == "unsubscribe":
            for arg in args:
                self._unsubscribe(socket, arg)
        else:
            socket.enqueue(encode(_error("60019", f"Invalid op: {op}", conn_id)))

    def _login(self, socket: SimSocket, args: list[Arg]) -> None:
        conn_id = socket.state["conn_id"]
        if socket.state.get("account") is not None:
            socket.enqueue(encode(_error("60010", "Already logged in", conn_id)))
            return
        if not args:
            socket.enqueue(encode(_error("60009", "Login failed.", conn_id)))
            return
        now_s = self.dialect.faults.server_time_ms() / 1000.0
        result = check_ws_login(args[0], self.engine.account_by_key, now_s)
        if result.error is not None or result.account is None:
            error = result.error or OkxError("60009", "Login failed.")
            socket.enqueue(encode(_error(error.code, error.msg, conn_id)))
            return
        socket.state["account"] = result.account
        self.hub.private_session(socket, result.account.api_key)
        socket.enqueue(encode({"event": "login", "code": "0", "msg": "", "connId": conn_id}))

    def _subscribe(self, socket: SimSocket, arg: Arg) -> None:
        conn_id = socket.state["conn_id"]
        problem = self._check_arg(socket, arg)
        if problem is not None:
            socket.enqueue(encode(_error(problem.code, problem.msg, conn_id)))
            return
        channel = arg["channel"]
        socket.enqueue(encode({"event": "subscribe", "arg": arg, "connId": conn_id}))
        if channel == "mark-price":
            key = _mark_key(arg["instId"])
            self.hub.subscribe(key, socket)
            market = self.dialect.market_by_inst[arg["instId"]]
            row = payloads.mark_price_row(market, self.engine.marks[market.symbol], self.engine.now_ms())
            socket.enqueue(encode({"arg": arg, "data": [row]}))
            return
        account: SimAccount = socket.state["account"]
        pushed_arg = {**arg, "uid": uid_of(account.api_key)}
        key = f"{channel}|{account.api_key}|{json.dumps(pushed_arg, sort_keys=True)}"
        self._private_args.setdefault(account.api_key, {})[key] = pushed_arg
        self.hub.subscribe(key, socket)
        interval = regular_interval_ms(arg) if channel in REGULAR_CHANNELS else None
        if interval is not None:
            due = self._regular_due.setdefault(key, self.engine.now_ms() + interval)
            self._next_regular_scan_ms = min(self._next_regular_scan_ms, due)
        data = (
            self._positions(account, pushed_arg) if channel == "positions" else [self._balance(account, arg)]
        )
        socket.enqueue(encode(self._push(pushed_arg, "snapshot", data)))

    def _unsubscribe(self, socket: SimSocket, arg: Arg) -> None:
        conn_id = socket.state["conn_id"]
        channel = arg.get("channel")
        account: SimAccount | None = socket.state.get("account")
        wanted = {_mark_key(str(arg.get("instId")))} if channel == "mark-price" else set()
        private_prefix = f"{channel}|{account.api_key}|" if account is not None else None
        for key in self.hub.channels_of(socket):
            if key in wanted or (private_prefix is not None and key.startswith(private_prefix)):
                self.hub.unsubscribe(key, socket)
        socket.enqueue(encode({"event": "unsubscribe", "arg": arg, "connId": conn_id}))

    def _check_arg(self, socket: SimSocket, arg: Arg) -> OkxError | None:
        channel = arg.get("channel")
        access = socket.state["access"]
        if not channel:
            return OkxError("60013", "Invalid args")
        if access == "public" and channel in PUBLIC_CHANNELS:
            if arg.get("instId") not in self.dialect.market_by_inst:
                return OkxError(
                    "60018", f"Wrong URL or channel:{channel},instId:{arg.get('instId')} doesn't exist."
                )
            return None
        if access == "private" and channel in PRIVATE_CHANNELS:
            if socket.state.get("account") is None:
                return OkxError("60011", "Please log in")
            if channel == "positions" and arg.get("instType") not in POSITION_INST_TYPES:
                return OkxError(
                    "60018", f"Wrong URL or channel:{channel},instType:{arg.get('instType')} doesn't exist."
                )
            return None
        return OkxError("60018", f"Wrong URL or channel:{channel} doesn't exist.")

    # ---- payloads ----

    @staticmethod
    def _push(arg: Arg, event_type: str, data: list[Any]) -> dict[str, Any]:
        return {"arg": arg, "eventType": event_type, "curPage": 1, "lastPage": True, "data": data}

    def _positions(self, account: SimAccount, arg: Arg) -> list[Any]:
        rows = position_rows(self.engine, account, opened_at=self.dialect.history.opened_at)
        return [row for row in rows if _matches(arg, row["instId"])]

    def _balance(self, account: SimAccount, arg: Mapping[str, Any]) -> dict[str, Any]:
        currency = arg.get("ccy")
        return balance_data(self.engine, account, {currency} if currency else None)

    # ---- engine events -> pushes ----

    def on_event(self, event: object) -> None:
        """Engine events as OKX pushes them; position changes and liquidations are written to the position
        history (GET /api/v5/account/positions-history) first, so a push never names a record REST lacks."""
        history = self.dialect.history
        if isinstance(event, MarkChanged):
            self.on_mark(event)
        elif isinstance(event, PositionChanged):
            history.on_position(event)
            self.on_position(event)
        elif isinstance(event, BalanceChanged):
            self.on_balance(event)
        elif isinstance(event, Liquidated):
            history.on_liquidated(event)
            self.on_liquidation(event)

    def on_mark(self, event: MarkChanged) -> None:
        market = self.engine.markets[event.symbol]
        key = _mark_key(payloads.inst_id(market))
        if self.hub.has_subscribers(key):
            row = payloads.mark_price_row(market, event.mark, event.ts_ms)
            self.hub.publish(key, {"arg": {"channel": "mark-price", "instId": row["instId"]}, "data": [row]})
        if event.ts_ms >= self._next_regular_scan_ms:
            self._push_regular(event.ts_ms)

    def _push_regular(self, now_ms: int) -> None:
        """Repeat the snapshot of every private subscription whose regular push is due."""
        next_scan = now_ms + DEFAULT_REGULAR_PUSH_MS
        for api_key in list(self._private_args):
            account = self.engine.account_by_key(api_key)
            for channel in REGULAR_CHANNELS:
                for key, arg in self._live_args(api_key, channel).items():
                    interval = regular_interval_ms(arg)
                    if account is None or interval is None:
                        continue
                    due = self._regular_due.setdefault(key, now_ms + interval)
                    if now_ms >= due:
                        due = self._regular_due[key] = now_ms + interval
                        self._publish_snapshot(key, account, arg)
                    next_scan = min(next_scan, due)
        self._next_regular_scan_ms = next_scan

    def _publish_snapshot(self, key: str, account: SimAccount, arg: Arg) -> None:
        if arg["channel"] == "account":
            self.hub.publish(key, self._push(arg, "snapshot", [self._balance(account, arg)]))
            return
        rows = self._positions(account, arg)
        if rows:  # nothing to repeat for a flat account
            self.hub.publish(key, self._push(arg, "snapshot", rows))

    def on_position(self, event: PositionChanged) -> None:
        account = self.engine.account_by_key(event.api_key)
        subscriptions = self._live_args(event.api_key, "positions")
        if account is None or not subscriptions:
            return
        row = position_row_for(self.engine, account, event.symbol, event.side, self.dialect.history.opened_at)
        if row is None:
            row = flat_position_row(self.engine, account, event.symbol, event.side, event.ts_ms)
        for key, arg in subscriptions.items():
            if _matches(arg, row["instId"]):
                self.hub.publish(key, self._push(arg, "event_update", [row]))

    def on_balance(self, event: BalanceChanged) -> None:
        account = self.engine.account_by_key(event.api_key)
        subscriptions = self._live_args(event.api_key, "account")
        if account is None or not subscriptions:
            return
        for key, arg in subscriptions.items():
            if arg.get("ccy") and arg["ccy"] != event.asset:
                continue
            data = balance_data(self.engine, account, {event.asset})
            self.hub.publish(key, self._push(arg, "event_update", [data]))

    def on_liquidation(self, event: Liquidated) -> None:
        account = self.engine.account_by_key(event.api_key)
        subscriptions = self._live_args(event.api_key, "balance_and_position")
        if account is None or not subscriptions:
            return
        flat = flat_position_row(self.engine, account, event.symbol, event.side, event.ts_ms)
        element = account_payloads.balance_and_position_data(
            "liquidation", cash_balances(account), [flat], event.ts_ms
        )
        for key, arg in subscriptions.items():
            self.hub.publish(key, {"arg": arg, "data": [element]})

    def _live_args(self, api_key: str, channel: str) -> dict[str, Arg]:
        """The account's subscriptions to `channel` that still have a socket (forgetting the dead ones)."""
        args = self._private_args.get(api_key)
        if not args:
            return {}
        for key in [key for key in args if not self.hub.has_subscribers(key)]:
            del args[key]
            self._regular_due.pop(key, None)
        return {key: arg for key, arg in args.items() if arg["channel"] == channel}

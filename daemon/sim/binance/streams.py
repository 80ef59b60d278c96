"""Binance USD-M websockets: the market stream (`/market/ws`, `/public/ws`, `/ws`) and the user-data
stream (`/private/ws?listenKey=...`, or the legacy `/ws/<listenKey>`).

Market sockets take `{"method": "SUBSCRIBE", "params": ["btcusdt@markPrice@1s"], "id": 1}` and answer
`{"result": null, "id": 1}`; a stream named in the path (`/ws/btcusdt@markPrice`) is subscribed at once.
Mark updates of one engine step are gathered and sent together: one `markPriceUpdate` per symbol stream,
one array per `!markPrice@arr` stream, each encoded once for all its subscribers.

User-data pushes are gathered per account the same way, so one engine operation becomes what Binance
sends for it: the liquidation order (`ORDER_TRADE_UPDATE`, type LIQUIDATION, client id "autoclose-…"),
then one `ACCOUNT_UPDATE` with the balance row and the thin rows of the legs that changed (their "cr"
from `realized.RealizedLedger`), then
`MARGIN_CALL` or `ACCOUNT_CONFIG_UPDATE` where due.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from daemon.core.types import Side
from daemon.sim.binance import orders, payloads, pushes, wire
from daemon.sim.binance.listen_keys import ListenKeys
from daemon.sim.binance.realized import RealizedLedger
from daemon.sim.engine import BalanceChanged, Engine, Liquidated, MarginCall, MarkChanged, PositionChanged
from daemon.sim.faults import FaultChanged, Faults
from daemon.sim.server import serve_socket
from daemon.sim.sockets import SimSocket, SocketHub, encode

MARK_ARRAY_STREAMS = ("!markPrice@arr@1s", "!markPrice@arr")
LIQUIDATION_ARRAY_STREAM = "!forceOrder@arr"
METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")

# ACCOUNT_UPDATE "m" (event reason) for each engine reason; ORDER wins when a fill is involved.
_REASONS = {
    "open": "ORDER",
    "increase": "ORDER",
    "reduce": "ORDER",
    "close": "ORDER",
    "flip": "ORDER",
    "liquidation": "ORDER",
    "fee": "ORDER",
    "realized_pnl": "ORDER",
    "set": "ADJUSTMENT",
    "margin": "MARGIN_TRANSFER",
    "isolated_margin": "MARGIN_TRANSFER",
    "deposit": "DEPOSIT",
    "withdraw": "WITHDRAW",
}


def user_channel(api_key: str) -> str:
    return f"user:{api_key}"  # market stream names never contain ':'


def mark_streams(symbol: str) -> tuple[str, str]:
    lower = symbol.lower()
    return f"{lower}@markPrice@1s", f"{lower}@markPrice"


@dataclass(slots=True)
class _Outbox:
    """What one account's next push must say, gathered over one engine step."""

    orders: list[dict[str, Any]] = field(default_factory=list)
    legs: dict[tuple[str, str], None] = field(default_factory=dict)  # ordered set of (symbol, positionSide)
    reasons: list[str] = field(default_factory=list)
    balance: bool = False
    balance_change: float = 0.0
    margin_call: tuple[str, ...] = ()
    configs: list[dict[str, Any]] = field(default_factory=list)


class BinanceStreams:
    def __init__(self, engine: Engine, faults: Faults, hub: SocketHub, listen_keys: ListenKeys) -> None:
        self.engine = engine
        self.faults = faults
        self.hub = hub
        self.listen_keys = listen_keys
        self._marks: dict[str, MarkChanged] = {}
        self._outboxes: dict[str, _Outbox] = {}
        self._wallets: dict[str, float] = {}  # last cross wallet seen per account, for "bc"
        self._flush_scheduled = False
        self._closing: set[asyncio.Task[None]] = set()
        self.realized = RealizedLedger(engine)
        listen_keys.on_revoke.append(lambda api_key: self._retire_stale_sockets(user_channel(api_key)))

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/market/ws", self.market_socket),
            web.get("/market/ws/{stream}", self.market_socket),
            web.get("/public/ws", self.market_socket),
            web.get("/public/ws/{stream}", self.market_socket),
            web.get("/ws", self.market_socket),
            web.get("/ws/{stream}", self.market_socket),
            web.get("/private/ws", self.private_socket),
        ]

    async def until_subscribed(self, channel: str) -> None:
        """Return once some client listens on `channel` (a stream name, or `user_channel(api_key)`), so a
        scenario can move prices only after the client listens; pair it with a timeout."""
        await self.hub.until_subscribed(channel)

    def _subscribe(self, channel: str, socket: SimSocket) -> None:
        self.hub.subscribe(channel, socket)

    # ---- connections ----

    async def market_socket(self, request: web.Request) -> web.StreamResponse:
        named = request.match_info.get("stream", "")
        if named and self.listen_keys.account_for(named) is not None:
            return await self.private_socket(request)  # the legacy /ws/<listenKey> form

        async def on_open(socket: SimSocket) -> None:
            # ccxt appends a connection number (/market/ws/0); only a real stream name subscribes.
            if "@" in named:
                self._subscribe(_normalise(named), socket)

        return await serve_socket(request, self.faults, self.hub, self._on_market_message, on_open)

    async def private_socket(self, request: web.Request) -> web.StreamResponse:
        listen_key = request.query.get("listenKey") or request.match_info.get("stream", "")
        api_key = self.listen_keys.account_for(listen_key) if listen_key else None
        if api_key is None:
            return wire.NO_LISTEN_KEY.response()

        async def on_open(socket: SimSocket) -> None:
            socket.state["listen_key"] = listen_key
            self.hub.private_session(socket, api_key)
            account = self.engine.account_by_key(api_key)
            if account is not None:
                self._wallets.setdefault(api_key, account.wallet.get("USDT", 0.0))
            self._subscribe(user_channel(api_key), socket)

        return await serve_socket(request, self.faults, self.hub, self._on_private_message, on_open)

    async def _on_market_message(self, socket: SimSocket, text: str) -> None:
        try:
            request = json.loads(text)
        except ValueError:
            await socket.send_json(
                {"error": {"code": 3, "msg": "Invalid JSON: expected value at line 1 column 1"}}
            )
            return
        if not isinstance(request, dict):
            await socket.send_json({"error": {"code": 2, "msg": "Invalid request: expected an object"}})
            return
        request_id = request.get("id")
        if not isinstance(request_id, int) or request_id < 0:
            await socket.send_json(
                {
                    "error": {"code": 2, "msg": "Invalid request: request ID must be an unsigned integer"},
                    "id": None,
                }
            )
            return
        method = request.get("method")
        if method not in METHODS:
            allowed = ", ".join(f"`{m}`" for m in METHODS)
            message = f"Invalid request: unknown variant `{method}`, expected one of {allowed}"
            await socket.send_json({"error": {"code": 2, "msg": message}, "id": request_id})
            return
        streams = request.get("params", [])
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not isinstance(streams, list) or not all(isinstance(s, str) and "@" in s for s in streams):
                await socket.send_json(
                    {"error": {"code": 2, "msg": "Invalid request: invalid stream"}, "id": request_id}
                )
                return
            for stream in streams:
                if method == "SUBSCRIBE":
                    self._subscribe(_normalise(stream), socket)
                else:
                    self.hub.unsubscribe(_normalise(stream), socket)
            await socket.send_json({"result": None, "id": request_id})
        elif method == "LIST_SUBSCRIPTIONS":
            await socket.send_json({"result": sorted(self.hub.channels_of(socket)), "id": request_id})
        else:
            await socket.send_json({"result": None if method == "SET_PROPERTY" else False, "id": request_id})

    async def _on_private_message(self, socket: SimSocket, text: str) -> None:
        # The user-data stream needs no requests; answer well-formed ones so a client is never left waiting.
        try:
            request = json.loads(text)
        except ValueError:
            return
        if isinstance(request, dict) and "id" in request:
            await socket.send_json({"result": None, "id": request["id"]})

    # ---- engine events -> pushes ----

    def on_event(self, event: object) -> None:
        if isinstance(event, MarkChanged):
            if self._wants_mark(event.symbol):
                self._marks[event.symbol] = event
                self._schedule()
        elif isinstance(event, PositionChanged):
            self.realized.on_position(event)
            box = self._outbox(event.api_key)
            if event.reason == "leverage" and event.position is not None:
                box.configs.append(pushes.leverage_update(event.symbol, event.position.leverage, event.ts_ms))
            else:
                box.legs[(event.symbol, event.position_side)] = None
                box.reasons.append(event.reason)
            self._schedule()
        elif isinstance(event, BalanceChanged):
            previous = self._wallets.get(event.api_key, event.wallet)
            self._wallets[event.api_key] = event.wallet
            box = self._outbox(event.api_key)
            box.balance = True
            box.reasons.append(event.reason)
            if event.reason in ("deposit", "withdraw", "set"):
                box.balance_change += event.wallet - previous  # "bc" excludes PnL and fees
            self._schedule()
        elif isinstance(event, Liquidated):
            self.realized.on_liquidated(event)
            self._on_liquidated(event)
        elif isinstance(event, MarginCall):
            self._outbox(event.api_key).margin_call = event.symbols
            self._schedule()
        elif isinstance(event, FaultChanged) and event.kind == "listen_key_expired" and event.active:
            self._expire_listen_keys()
        elif isinstance(event, FaultChanged) and event.kind == "restart" and event.active:
            self.listen_keys.forget_all()  # kept in memory only: a restart loses them

    def _wants_mark(self, symbol: str) -> bool:
        streams = (*mark_streams(symbol), *MARK_ARRAY_STREAMS)
        return any(self.hub.has_subscribers(stream) for stream in streams)

    def _outbox(self, api_key: str) -> _Outbox:
        box = self._outboxes.get(api_key)
        if box is None:
            box = self._outboxes[api_key] = _Outbox()
        return box

    def _on_liquidated(self, event: Liquidated) -> None:
        account = self.engine.account_by_key(event.api_key)
        market = self.engine.markets[event.symbol]
        hedge = account is not None and account.hedge_mode
        position_side = ("LONG" if event.side is Side.LONG else "SHORT") if hedge else "BOTH"
        # The engine logs the liquidation before announcing it: the last record is this one.
        order_id = orders.liquidation_order_id(len(self.engine.liquidations) - 1)
        order = pushes.liquidation_order(
            market,
            event.side,
            position_side,
            event.contracts,
            event.price,
            -event.loss,
            order_id,
            event.ts_ms,
        )
        self._outbox(event.api_key).orders.append(order)
        # The public liquidation streams (`<symbol>@forceOrder`, `!forceOrder@arr`) carry the order too.
        force = pushes.force_order(order["o"], event.ts_ms)
        text = encode(force)
        self.hub.publish_text(f"{event.symbol.lower()}@forceOrder", text)
        self.hub.publish_text(LIQUIDATION_ARRAY_STREAM, text)
        self._schedule()

    def _expire_listen_keys(self) -> None:
        for api_key in self.listen_keys.expire_all():
            self._retire_stale_sockets(user_channel(api_key))

    def _retire_stale_sockets(self, channel: str) -> None:
        """Sockets whose listen key is no longer live stop getting events: an expired key's stream says
        `listenKeyExpired` and goes silent; a key closed by DELETE /listenKey ends its stream."""
        for socket in self.hub.subscribers(channel):
            listen_key = socket.state.get("listen_key", "")
            status = self.listen_keys.status(listen_key)
            if status == "live":
                continue
            self.hub.unsubscribe(channel, socket)
            if status == "expired":
                socket.enqueue(encode(pushes.listen_key_expired(listen_key, self.engine.now_ms())))
            else:
                self._close_later(socket)

    def _close_later(self, socket: SimSocket) -> None:
        try:
            closing = asyncio.get_running_loop().create_task(socket.close())
        except RuntimeError:
            socket.abort()
            return
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)

    def _schedule(self) -> None:
        if self._flush_scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()  # no event loop (a plain script driving the engine): push at once
            return
        self._flush_scheduled = True
        loop.call_soon(self.flush)

    def flush(self) -> None:
        """Send everything gathered since the last flush."""
        self._flush_scheduled = False
        marks, self._marks = self._marks, {}
        outboxes, self._outboxes = self._outboxes, {}
        if marks:
            self._send_marks(list(marks.values()))
        for api_key, box in outboxes.items():
            channel = user_channel(api_key)
            self._retire_stale_sockets(channel)  # keys lapse on the clock too, not only by the fault
            if self.hub.has_subscribers(channel):
                self._send_user(api_key, box)

    def _send_marks(self, events: list[MarkChanged]) -> None:
        frames = []
        for event in events:
            frame = pushes.mark_price_update(self.engine, event.symbol, event.mark, event.index, event.ts_ms)
            frames.append(frame)
            text = encode(frame)
            for stream in mark_streams(event.symbol):
                self.hub.publish_text(stream, text)
        if any(self.hub.has_subscribers(stream) for stream in MARK_ARRAY_STREAMS):
            text = encode(frames)
            for stream in MARK_ARRAY_STREAMS:
                self.hub.publish_text(stream, text)

    def _send_user(self, api_key: str, box: _Outbox) -> None:
        account = self.engine.account_by_key(api_key)
        if account is None:
            return
        channel = user_channel(api_key)
        now = self.engine.now_ms()
        for order in box.orders:
            self.hub.publish(channel, order)
        view = (
            payloads.AccountView(self.engine, account)
            if (box.legs or box.balance or box.margin_call)
            else None
        )
        if view is not None and (box.legs or box.balance):
            rows = []
            for symbol, position_side in box.legs:
                pos = next(
                    (p for p in account.positions if p.symbol == symbol and p.position_side == position_side),
                    None,
                )
                realized = self.realized.total(api_key, symbol, position_side)
                rows.append(
                    pushes.update_row(view, pos, realized)
                    if pos is not None
                    else pushes.closed_row(view, symbol, position_side, realized)
                )
            balances = [pushes.balance_row(view, box.balance_change)]
            self.hub.publish(channel, pushes.account_update(_reason(box.reasons), now, balances, rows))
        if view is not None and box.margin_call:
            self.hub.publish(channel, pushes.margin_call(view, box.margin_call, now))
        for config in box.configs:
            self.hub.publish(channel, config)


def _reason(reasons: list[str]) -> str:
    mapped = [_REASONS.get(reason, "ADJUSTMENT") for reason in reasons]
    return "ORDER" if "ORDER" in mapped else (mapped[0] if mapped else "ADJUSTMENT")


def _normalise(stream: str) -> str:
    """Stream names are case-insensitive in the symbol part: `BTCUSDT@markPrice` is `btcusdt@markPrice`."""
    symbol, _, rest = stream.partition("@")
    return f"{symbol.lower()}@{rest}" if not symbol.startswith("!") else stream

"""Bybit v5 websockets: public `/v5/public/linear` (tickers) and private `/v5/private` (position, wallet,
order, execution), and the translation of engine events into their pushes.

Connection control follows Bybit's documented frames: `{"op": "subscribe", "req_id", "args"}` answered
`{"success": true, "ret_msg": "", "conn_id", "req_id", "op": "subscribe"}`; JSON ping answered with the public
pong (`"ret_msg": "pong", "op": "ping"`) or the private one (`"op": "pong", "args": [ms]`); private login
`{"op": "auth", "args": [key, expires, signature]}`. A public ticker topic starts with a snapshot and then
carries deltas of the changed fields; private topics push only on change, with no initial snapshot.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

from aiohttp import web

from daemon.core.types import Side
from daemon.sim.bybit.auth import AuthRefusal, check_ws_auth
from daemon.sim.bybit.payloads import position_row
from daemon.sim.bybit.views import (
    SessionState,
    empty_figures,
    position_idx,
    position_rows,
    ticker,
    wallet_row,
)
from daemon.sim.bybit.wire import category_of, money, price, qty, trimmed, wire_symbol
from daemon.sim.engine import BalanceChanged, Engine, Liquidated, MarkChanged, PositionChanged
from daemon.sim.faults import Faults
from daemon.sim.markets import Market
from daemon.sim.server import serve_socket
from daemon.sim.sockets import SimSocket, SocketHub

PRIVATE_TOPICS = {
    "position": "position",
    "position.linear": "position",
    "wallet": "wallet",
    "order": "order",
    "order.linear": "order",
    "execution": "execution",
    "execution.linear": "execution",
}


def private_channel(topic: str, api_key: str) -> str:
    return f"{topic}:{api_key}"


class Streams:
    def __init__(self, engine: Engine, faults: Faults, hub: SocketHub, session: SessionState) -> None:
        self.engine = engine
        self.faults = faults
        self.hub = hub
        self.session = session
        self.by_wire: dict[str, Market] = {wire_symbol(m): m for m in engine.markets.values()}

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/v5/public/linear", self.public_linear), web.get("/v5/private", self.private)]

    async def until_subscribed(self, channel: str) -> None:
        """Return once some client has subscribed `channel` (a hub channel such as "position:<api key>"), so a
        scenario can move prices only after the client listens; pair it with a timeout."""
        await self.hub.until_subscribed(channel)

    def _subscribe(self, channel: str, socket: SimSocket) -> None:
        self.hub.subscribe(channel, socket)

    # ---- connections ----

    async def public_linear(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, self._on_public)

    async def private(self, request: web.Request) -> web.StreamResponse:
        return await self._serve(request, self._on_private)

    async def _serve(
        self, request: web.Request, on_frame: Callable[[SimSocket, dict[str, Any]], None]
    ) -> web.StreamResponse:
        async def on_open(socket: SimSocket) -> None:
            socket.state["conn_id"] = uuid.uuid4().hex[:20]

        async def on_message(socket: SimSocket, text: str) -> None:
            try:
                frame = json.loads(text)
            except json.JSONDecodeError:
                frame = None
            if isinstance(frame, dict):
                on_frame(socket, frame)
            else:
                self._reply(socket, {"success": False, "ret_msg": "error:invalid op", "op": ""})

        return await serve_socket(request, self.faults, self.hub, on_message, on_open)

    def _reply(self, socket: SimSocket, body: dict[str, Any], control: bool = False) -> None:
        socket.enqueue(
            json.dumps({**body, "conn_id": socket.state["conn_id"]}, separators=(",", ":")), control
        )

    def _ack(self, socket: SimSocket, frame: dict[str, Any], ok: bool, ret_msg: str = "") -> None:
        self._reply(
            socket,
            {
                "success": ok,
                "ret_msg": ret_msg,
                "req_id": str(frame.get("req_id", "")),
                "op": frame.get("op"),
            },
        )

    # ---- public ----

    def _on_public(self, socket: SimSocket, frame: dict[str, Any]) -> None:
        op = frame.get("op")
        if op == "ping":
            self._reply(
                socket,
                {"success": True, "ret_msg": "pong", "req_id": str(frame.get("req_id", "")), "op": "ping"},
                True,
            )
        elif op == "subscribe":
            topics = [str(t) for t in frame.get("args") or []]
            unknown = [t for t in topics if self._ticker_market(t) is None]
            if unknown or not topics:
                self._ack(socket, frame, False, f"Invalid symbol :[{','.join(unknown)}]")
                return
            self._ack(socket, frame, True)
            for topic in topics:
                self._subscribe(topic, socket)
                market = self._ticker_market(topic)
                assert market is not None
                snapshot = {
                    "topic": topic,
                    "type": "snapshot",
                    "data": ticker(self.engine, self.session, market.symbol),
                    "cs": self.session.next_seq(),
                    "ts": self.engine.now_ms(),
                }
                socket.enqueue(json.dumps(snapshot, separators=(",", ":")))
        elif op == "unsubscribe":
            for topic in frame.get("args") or []:
                self.hub.unsubscribe(str(topic), socket)
            self._ack(socket, frame, True)
        else:
            self._ack(socket, frame, False, "error:invalid op")

    def _ticker_market(self, topic: str) -> Market | None:
        name, _, symbol = topic.partition(".")
        market = self.by_wire.get(symbol)
        if name != "tickers" or market is None or category_of(market) != "linear":
            return None
        return market

    # ---- private ----

    def _on_private(self, socket: SimSocket, frame: dict[str, Any]) -> None:
        op = frame.get("op")
        req_id = str(frame.get("req_id", ""))
        if op == "ping":
            self._reply(
                socket, {"req_id": req_id, "op": "pong", "args": [str(self.faults.server_time_ms())]}, True
            )
        elif op == "auth":
            verdict = check_ws_auth(frame.get("args"), self._secret_for, self.faults.server_time_ms())
            if isinstance(verdict, AuthRefusal):
                self._reply(socket, {"success": False, "ret_msg": verdict.ret_msg, "op": "auth"})
                return
            socket.state["api_key"] = verdict
            self.hub.private_session(socket, verdict)
            self._reply(socket, {"req_id": req_id, "success": True, "ret_msg": "", "op": "auth"})
        elif op == "subscribe":
            api_key = socket.state.get("api_key")
            if api_key is None:
                self._ack(socket, frame, False, "Request not authorized")
                return
            topics = [str(t) for t in frame.get("args") or []]
            unknown = [t for t in topics if t not in PRIVATE_TOPICS]
            if unknown or not topics:
                self._ack(socket, frame, False, f"error:handler not found,topic:{','.join(unknown)}")
                return
            for topic in topics:
                self._subscribe(private_channel(PRIVATE_TOPICS[topic], api_key), socket)
            self._ack(socket, frame, True)
        elif op == "unsubscribe":
            api_key = socket.state.get("api_key")
            for topic in frame.get("args") or []:
                if api_key is not None and topic in PRIVATE_TOPICS:
                    self.hub.unsubscribe(private_channel(PRIVATE_TOPICS[topic], api_key), socket)
            self._ack(socket, frame, True)
        else:
            self._ack(socket, frame, False, "error:invalid op")

    def _secret_for(self, api_key: str) -> str | None:
        account = self.engine.account_by_key(api_key)
        return account.secret if account is not None else None

    # ---- engine events -> pushes ----

    def on_event(self, event: object) -> None:
        if isinstance(event, MarkChanged):
            self._push_ticker_delta(event)
        elif isinstance(event, PositionChanged):
            self._push_position(event)
        elif isinstance(event, BalanceChanged):
            self._push_wallet(event)
        elif isinstance(event, Liquidated):
            self._push_liquidation(event)

    def _push_ticker_delta(self, event: MarkChanged) -> None:
        """A `delta` carries only what changed ("a missing field has not changed"); mark and index are always
        sent, so the once-a-second re-announcement of an unchanged mark still reaches the client."""
        market = self.engine.markets.get(event.symbol)
        if market is None:
            return
        before = self.session.stats.get(event.symbol)
        old_mark, old_high, old_low = (before[3], before[1], before[2]) if before else (None, None, None)
        self.session.observe(event.symbol, event.mark)
        topic = f"tickers.{wire_symbol(market)}"
        if not self.hub.has_subscribers(topic):
            return
        open_price, high, low, _ = self.session.stats[event.symbol]
        data: dict[str, Any] = {
            "symbol": wire_symbol(market),
            "markPrice": price(event.mark, market),
            "indexPrice": price(event.index, market),
        }
        if event.mark != old_mark:
            data["tickDirection"] = "PlusTick" if old_mark is None or event.mark > old_mark else "MinusTick"
            data["lastPrice"] = price(event.mark, market)
            data["price24hPcnt"] = trimmed((event.mark - open_price) / open_price if open_price else 0.0, 6)
            data["bid1Price"] = price(event.mark - market.price_tick, market)
            data["ask1Price"] = price(event.mark + market.price_tick, market)
        if high != old_high:
            data["highPrice24h"] = price(high, market)
        if low != old_low:
            data["lowPrice24h"] = price(low, market)
        frame = {
            "topic": topic,
            "type": "delta",
            "data": data,
            "cs": self.session.next_seq(),
            "ts": event.ts_ms,
        }
        self.hub.publish(topic, frame)

    def _private_frame(self, topic: str, data: list[dict[str, Any]], ts_ms: int) -> dict[str, Any]:
        return {
            "id": f"{self.session.seq}{uuid.uuid4()}",
            "topic": topic,
            "creationTime": ts_ms,
            "data": data,
        }

    def _push_position(self, event: PositionChanged) -> None:
        channel = private_channel("position", event.api_key)
        account = self.engine.account_by_key(event.api_key)
        if not self.hub.has_subscribers(channel) or account is None:
            return
        seq = self.session.next_seq()
        market = self.engine.markets[event.symbol]
        leg_side: Side | None = event.side if account.hedge_mode else None
        rows = []
        if event.position is not None:
            idx = position_idx(account, event.side)
            rows = [
                row
                for row in position_rows(self.engine, event.api_key, seq, websocket=True, symbol=event.symbol)
                if row["positionIdx"] == idx
            ]
        if not rows:  # the leg is gone: Bybit pushes it with size 0 and no side
            figures = empty_figures(self.engine, account, market, leg_side, seq, event.ts_ms)
            rows = [position_row(figures, websocket=True)]
        self.hub.publish(channel, self._private_frame("position", rows, event.ts_ms))

    def _push_wallet(self, event: BalanceChanged) -> None:
        channel = private_channel("wallet", event.api_key)
        if not self.hub.has_subscribers(channel) or self.engine.account_by_key(event.api_key) is None:
            return
        row = wallet_row(self.engine, event.api_key)
        self.hub.publish(channel, self._private_frame("wallet", [row], event.ts_ms))

    def _push_liquidation(self, event: Liquidated) -> None:
        """The forced close as Bybit reports it: an order created by liquidation and its bust execution."""
        account = self.engine.account_by_key(event.api_key)
        market = self.engine.markets.get(event.symbol)
        if account is None or market is None:
            return
        order_id = str(uuid.uuid4())
        closing_side = "Sell" if event.side is Side.LONG else "Buy"
        value = event.contracts * market.contract_size * event.price
        fee = value * market.taker_fee
        common = {
            "category": category_of(market),
            "symbol": wire_symbol(market),
            "orderId": order_id,
            "orderLinkId": "",
            "side": closing_side,
            "positionIdx": position_idx(account, event.side),
            "createType": "CreateByLiq",
        }
        order = {
            **common,
            "blockTradeId": "",
            "orderStatus": "Filled",
            "cancelType": "UNKNOWN",
            "rejectReason": "EC_NoError",
            "timeInForce": "IOC",
            "isLeverage": "",
            "price": price(event.price, market),
            "qty": qty(event.contracts, market),
            "avgPrice": price(event.price, market),
            "leavesQty": "0",
            "leavesValue": "0",
            "cumExecQty": qty(event.contracts, market),
            "cumExecValue": money(value),
            "cumExecFee": money(fee),
            "closedPnl": money(-event.loss),
            "orderType": "Limit",
            "stopOrderType": "",
            "triggerPrice": "",
            "takeProfit": "",
            "stopLoss": "",
            "reduceOnly": True,
            "closeOnTrigger": False,
            "tpslMode": "UNKNOWN",
            "feeCurrency": "",
            "createdTime": str(event.ts_ms),
            "updatedTime": str(event.ts_ms),
        }
        execution = {
            **common,
            "execId": str(uuid.uuid4()),
            "execPrice": price(event.price, market),
            "execQty": qty(event.contracts, market),
            "execType": "BustTrade",
            "execValue": money(value),
            "execFee": money(fee),
            "execPnl": money(-event.loss),
            "feeRate": trimmed(market.taker_fee),
            "isMaker": False,
            "markPrice": price(self.engine.marks[event.symbol], market),
            "leavesQty": "0",
            "orderPrice": price(event.price, market),
            "orderQty": qty(event.contracts, market),
            "orderType": "Limit",
            "stopOrderType": "UNKNOWN",
            "execTime": str(event.ts_ms),
            "closedSize": qty(event.contracts, market),
            "seq": self.session.next_seq(),
        }
        self.hub.publish(
            private_channel("order", event.api_key), self._private_frame("order", [order], event.ts_ms)
        )
        self.hub.publish(
            private_channel("execution", event.api_key),
            self._private_frame("execution", [execution], event.ts_ms),
        )

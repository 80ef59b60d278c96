"""OKX v5 GET /api/v5/account/positions-history: legs that were closed, with how they ended; and
GET /api/v5/account/bills: the isolated-margin moves (bill type 6, subType 160 added / 161 removed).

Rows carry the fields of ccxt's recorded OKX answer (`direction`, no `posSide`, no `pos`: ccxt therefore
reports their `contracts` as None; `closeTotalPos` has the size). The engine reports a closed leg without its
last figures, so every position event's snapshot is kept here
and turned into a history row when the leg goes flat. `type` is OKX's: "2" closed in full, "3" liquidated.
A client that missed the websocket push can tell a liquidation from a close by asking this endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from daemon.core.types import Side
from daemon.sim.engine import Liquidated, PositionChanged, SimAccount, SimPosition
from daemon.sim.okx.account_payloads import mgn_mode, pos_side
from daemon.sim.okx.payloads import INST_TYPE, Row, inst_family, inst_id, okx_number, stable_id
from daemon.sim.okx.replies import ok

if TYPE_CHECKING:
    from daemon.sim.okx.dialect import OkxDialect

CLOSED_IN_FULL, LIQUIDATED = "2", "3"
MAX_ROWS = 100
MARGIN_TRANSFER, MARGIN_ADDED, MARGIN_REMOVED = "6", "160", "161"


@dataclass(slots=True)
class _Open:
    snapshot: SimPosition
    opened_ms: int
    hedge_mode: bool


class PositionHistory:
    def __init__(self, dialect: OkxDialect) -> None:
        self.engine = dialect.engine
        self.rows: dict[str, list[Row]] = {}  # api key -> history rows, newest first
        self._open: dict[tuple[str, str, Side], _Open] = {}
        self._liquidated_at: dict[tuple[str, str, Side], float] = {}  # bankruptcy price of the close

    def opened_at(self, api_key: str, symbol: str, side: Side) -> int | None:
        """When the open leg was opened (engine ms), as far as this history has seen it."""
        known = self._open.get((api_key, symbol, side))
        return known.opened_ms if known is not None else None

    def on_liquidated(self, event: Liquidated) -> None:
        self._liquidated_at[(event.api_key, event.symbol, event.side)] = event.price

    def on_position(self, event: PositionChanged) -> None:
        key = (event.api_key, event.symbol, event.side)
        account = self.engine.account_by_key(event.api_key)
        if event.position is not None:
            known = self._open.get(key)
            opened = known.opened_ms if known is not None else event.ts_ms
            hedge = account.hedge_mode if account is not None else False
            self._open[key] = _Open(event.position, opened, hedge)
            return
        known = self._open.pop(key, None)
        if known is None:
            return
        liquidation_price = self._liquidated_at.pop(key, None)
        close_price = liquidation_price if liquidation_price is not None else self.engine.marks[event.symbol]
        row = self._row(event.api_key, known, close_price, event.ts_ms, liquidation_price is not None)
        rows = self.rows.setdefault(event.api_key, [])
        rows.insert(0, row)
        del rows[MAX_ROWS:]

    def _row(self, api_key: str, known: _Open, close_price: float, ts_ms: int, liquidated: bool) -> Row:
        pos = known.snapshot
        market = self.engine.markets[pos.symbol]
        quantity = pos.contracts * market.contract_size
        pnl = pos.side.sign * quantity * (close_price - pos.entry_price)
        fee = -quantity * close_price * market.taker_fee
        margin = quantity * pos.entry_price / pos.leverage
        side_name = pos_side(pos.side, known.hedge_mode)
        return {
            "cTime": str(known.opened_ms),
            "ccy": market.settle,
            "closeAvgPx": okx_number(close_price),
            "closeTotalPos": okx_number(pos.contracts),
            "direction": pos.side.value,
            "fee": okx_number(fee),
            "fundingFee": "0",
            "instId": inst_id(market),
            "instType": INST_TYPE,
            "lever": okx_number(pos.leverage),
            "liqPenalty": "0",
            "mgnMode": mgn_mode(pos.margin_mode),
            "openAvgPx": okx_number(pos.entry_price),
            "openMaxPos": okx_number(pos.contracts),
            "pnl": okx_number(pnl),
            "pnlRatio": okx_number(pnl / margin if margin else None),
            "posId": stable_id(api_key, pos.symbol, side_name),
            "realizedPnl": okx_number(pnl + fee),
            "triggerPx": okx_number(close_price) if liquidated else "",
            "type": LIQUIDATED if liquidated else CLOSED_IN_FULL,
            "uTime": str(ts_ms),
            "uly": inst_family(market),
        }

    async def positions_history(
        self, request: web.Request, account: SimAccount, params: dict[str, Any]
    ) -> web.Response:
        rows = self.rows.get(account.api_key, [])
        filters = {
            name: str(params[name]) for name in ("instId", "mgnMode", "type", "posId") if params.get(name)
        }
        if params.get("instType") and params["instType"] != INST_TYPE:
            return ok([])
        chosen = [row for row in rows if all(row[name] == value for name, value in filters.items())]
        try:
            limit = min(int(params.get("limit", MAX_ROWS)), MAX_ROWS)
        except (TypeError, ValueError):
            limit = MAX_ROWS
        return ok(chosen[:limit])

    async def bills(self, request: web.Request, account: SimAccount, params: dict[str, Any]) -> web.Response:
        """The account's bills of the last days, newest first. The simulator books margin moves only."""
        try:
            begin = int(params.get("begin") or 0)
            end = int(params.get("end") or 2**62)
            limit = min(int(params.get("limit") or MAX_ROWS), MAX_ROWS)
        except (TypeError, ValueError):
            return ok([])
        rows = []
        for index, change in enumerate(self.engine.margin_changes):
            if change["api_key"] != account.api_key or not begin <= change["ts_ms"] <= end:
                continue
            rows.append(self._bill(account.api_key, index, change))
        names = ("instType", "mgnMode", "type", "subType", "instId", "ccy")
        filters = {name: str(params[name]) for name in names if params.get(name)}
        chosen = [row for row in reversed(rows) if all(row[name] == value for name, value in filters.items())]
        return ok(chosen[:limit])

    def _bill(self, api_key: str, index: int, change: dict[str, Any]) -> Row:
        market = self.engine.markets[change["symbol"]]
        amount = float(change["amount"])
        return {
            "bal": okx_number(change["wallet_after"]),
            "balChg": okx_number(-amount),
            "billId": stable_id(api_key, "bill", str(index)),
            "ccy": change["asset"],
            "clOrdId": "",
            "execType": "",
            "fee": "0",
            "fillTime": str(change["ts_ms"]),
            "from": "",
            "instId": inst_id(market),
            "instType": INST_TYPE,
            "interest": "0",
            "mgnMode": "isolated",
            "notes": "",
            "ordId": "",
            "pnl": "0",
            "posBal": okx_number(change["margin_after"]),
            "posBalChg": okx_number(amount),
            "px": "",
            "subType": MARGIN_ADDED if amount > 0 else MARGIN_REMOVED,
            "sz": okx_number(abs(amount)),
            "tag": "",
            "to": "",
            "tradeId": "0",
            "ts": str(change["ts_ms"]),
            "type": MARGIN_TRANSFER,
        }

"""OKX v5 funding account: its balances and transfers between it ("6") and the trading account ("18").

The engine models the trading (futures) wallet only, so the funding wallet lives here, per account, starting
at `DEFAULT_FUNDING` (a demo account's play money). A transfer moves money between the two and the engine
sees it as a deposit into, or a withdrawal from, the trading wallet. Transfers are recorded for
GET /api/v5/asset/transfer-state; a `clientId` used before is refused (51000) so a repeated request cannot
move money twice.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

from aiohttp import web

from daemon.sim.engine import EngineError, SimAccount
from daemon.sim.okx.auth import OkxError
from daemon.sim.okx.errors import missing, parameter_error
from daemon.sim.okx.payloads import Row, okx_number
from daemon.sim.okx.replies import ok, refuse

if TYPE_CHECKING:
    from daemon.sim.okx.dialect import OkxDialect

FUNDING, TRADING = "6", "18"
DEFAULT_FUNDING = {"USDT": 100_000.0}
INSUFFICIENT = OkxError("58350", "Insufficient balance.")


class OkxFunding:
    def __init__(self, dialect: OkxDialect) -> None:
        self.engine = dialect.engine
        self.wallets: dict[str, dict[str, float]] = {}  # api key -> asset -> funding balance
        self.transfers: dict[str, tuple[str, Row]] = {}  # transId -> (api key, transfer-state row)
        self._client_ids: dict[tuple[str, str], str] = {}  # (api key, clientId) -> transId
        self._ids = itertools.count(754_147_000)

    def wallet(self, api_key: str) -> dict[str, float]:
        return self.wallets.setdefault(api_key, dict(DEFAULT_FUNDING))

    async def balances(
        self, request: web.Request, account: SimAccount, params: dict[str, Any]
    ) -> web.Response:
        """GET /api/v5/asset/balances: the funding account, one row per currency held."""
        wanted = {code for code in str(params.get("ccy", "")).split(",") if code}
        rows = [
            {"availBal": okx_number(amount), "bal": okx_number(amount), "ccy": ccy, "frozenBal": "0"}
            for ccy, amount in sorted(self.wallet(account.api_key).items())
            if not wanted or ccy in wanted
        ]
        return ok(rows)

    async def transfer(
        self, request: web.Request, account: SimAccount, params: dict[str, Any]
    ) -> web.Response:
        """POST /api/v5/asset/transfer between the funding and trading accounts of one user (type "0")."""
        for name in ("ccy", "amt", "from", "to"):
            if params.get(name) in (None, ""):
                return refuse(missing(name))
        source, target, ccy = str(params["from"]), str(params["to"]), str(params["ccy"])
        if str(params.get("type", "0")) != "0" or {source, target} != {FUNDING, TRADING}:
            return refuse(parameter_error("type" if str(params.get("type", "0")) != "0" else "from"))
        try:
            amount = float(params["amt"])
        except (TypeError, ValueError):
            return refuse(parameter_error("amt"))
        if not amount > 0:
            return refuse(parameter_error("amt"))
        client_id = str(params.get("clientId") or "")
        if client_id and (account.api_key, client_id) in self._client_ids:
            return refuse(parameter_error("clientId"))
        funding = self.wallet(account.api_key)
        try:
            if source == FUNDING:
                if funding.get(ccy, 0.0) + 1e-12 < amount:
                    return refuse(INSUFFICIENT)
                self.engine.transfer(account.api_key, ccy, amount)
                funding[ccy] = funding.get(ccy, 0.0) - amount
            else:
                self.engine.transfer(account.api_key, ccy, -amount)
                funding[ccy] = funding.get(ccy, 0.0) + amount
        except EngineError:
            return refuse(INSUFFICIENT)
        trans_id = str(next(self._ids))
        row = {"amt": okx_number(amount), "ccy": ccy, "clientId": client_id, "from": source, "to": target}
        self.transfers[trans_id] = (
            account.api_key,
            {
                **row,
                "instId": "",
                "state": "success",
                "subAcct": "",
                "toInstId": "",
                "transId": trans_id,
                "type": "0",
            },
        )
        if client_id:
            self._client_ids[(account.api_key, client_id)] = trans_id
        return ok([{**row, "transId": trans_id}])

    async def transfer_state(
        self, request: web.Request, account: SimAccount, params: dict[str, Any]
    ) -> web.Response:
        """GET /api/v5/asset/transfer-state by transId or clientId."""
        trans_id = str(params.get("transId") or "")
        client_id = str(params.get("clientId") or "")
        if not trans_id and not client_id:
            return refuse(OkxError("50015", "Either parameter transId or clientId is required.", 400))
        if not trans_id:
            trans_id = self._client_ids.get((account.api_key, client_id), "")
        owner, row = self.transfers.get(trans_id, ("", {}))
        if owner != account.api_key:
            return refuse(parameter_error("transId"))
        return ok([row])

"""How every OKX REST answer is written: `{"code", "msg", "data"}` with OKX's HTTP status."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from daemon.sim.engine import SimAccount
from daemon.sim.okx.auth import OkxError
from daemon.sim.okx.payloads import envelope

Handler = Callable[[web.Request], Awaitable[web.Response]]
# A private endpoint: the request, the authenticated account, and query + JSON body parameters merged.
PrivateHandler = Callable[[web.Request, SimAccount, dict[str, Any]], Awaitable[web.Response]]


def ok(data: list[Any], **extra: Any) -> web.Response:
    return web.json_response({**envelope(data), **extra})


def refuse(error: OkxError, data: list[Any] | None = None) -> web.Response:
    body = envelope(data or [], code=error.code, msg=error.msg)
    return web.json_response(body, status=error.http_status)

"""Bybit v5 refusals: retCode and retMsg per situation, and the HTTP answers that carry them.

Codes and messages come from Bybit's v5 error table (tests/data/bybit_rest_doc_samples.json); ccxt maps
them to its exception classes by code (10003/10004 AuthenticationError, 10005 PermissionDenied, 10006
RateLimitExceeded, 110026 MarginModeAlreadySet, ...), so they must be exact.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from daemon.sim.bybit.wire import envelope


@dataclass(eq=False)
class BybitError(Exception):
    """A refusal; raised by handlers and answered by the dispatcher (a fresh traceback each raise is fine)."""

    ret_code: int
    ret_msg: str
    http_status: int = 200
    result: Any = None

    def response(self, now_ms: int, headers: dict[str, str] | None = None) -> web.Response:
        body = envelope({} if self.result is None else self.result, now_ms, self.ret_code, self.ret_msg)
        return json_response(body, self.http_status, headers)


def json_response(payload: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        text=json.dumps(payload, separators=(",", ":")),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def params_error(message: str) -> BybitError:
    return BybitError(10001, message)


NOT_MODIFIED_LEVERAGE = BybitError(110043, "leverage not modified")
LEVERAGE_RISK_LIMIT = BybitError(110013, "Cannot set leverage due to risk limit level.")
MARGIN_MODE_NOT_MODIFIED = BybitError(110026, "Cross/isolated margin mode is not modified")
POSITION_MODE_NOT_MODIFIED = BybitError(110025, "Position mode is not modified")
POSITION_MODE_HAS_POSITION = BybitError(
    110024, "You have an existing position, so position mode cannot be switched"
)
CROSS_MARGIN_POSITION = BybitError(110015, "The position is in cross margin mode.")
NO_POSITION_FOR_MARGIN = BybitError(110033, "You can't set margin without an open position")
ADD_MARGIN_INSUFFICIENT = BybitError(110014, "Insufficient available balance to add additional margin.")
REDUCE_MARGIN_TOO_MUCH = BybitError(110078, "Added margin more than max can reduce margin")
ORDER_INSUFFICIENT = BybitError(110007, "ab not enough for new order")
TRANSFER_INSUFFICIENT = BybitError(131212, "Insufficient balance")
ROUTE_NOT_FOUND = BybitError(10017, "Route not found.", http_status=404)


def set_margin_mode_failed(reason_code: str, reason_msg: str) -> BybitError:
    """The account-wide switch refuses with 3400045 and lists why, as Bybit documents it."""
    return BybitError(
        3400045,
        "Set margin mode failed",
        result={"reasons": [{"reasonCode": reason_code, "reasonMsg": reason_msg}]},
    )


def invalid_symbol() -> BybitError:
    return BybitError(10001, "Not supported symbols")


RATE_LIMIT_MSG = "Too many visits!"
SERVER_ERROR_MSG = "Server error."


def number_param(params: dict[str, Any], name: str) -> float:
    try:
        return float(params[name])
    except (KeyError, TypeError, ValueError):
        raise params_error(f"params error: {name} invalid") from None

"""Binance USD-M wire conventions: how numbers are written and how errors look.

Binance writes prices, quantities and money as JSON strings (`"67445.9"`, `"0.00000000"`), counters and
times as numbers, and answers every refusal with `{"code": <negative int>, "msg": <text>}` plus an HTTP
status. The codes and messages below are the exchange's own (futures error-code page, spot errors.md);
ccxt maps them to its exception classes by code, so they must be exact.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from aiohttp import web


def money(value: float) -> str:
    """Balances, PnL, margins and mark prices: always eight decimals, as Binance prints them."""
    return f"{value + 0.0:.8f}"  # + 0.0 turns -0.0 into 0.0


def decimals_of(step: float) -> int:
    """Number of decimals a tick or step size carries (0.001 -> 3, 0.1 -> 1, 1 -> 0)."""
    return len(f"{step:.10f}".rstrip("0").split(".")[1])


def fixed(value: float, places: int) -> str:
    return f"{value + 0.0:.{places}f}"


def trimmed(value: float, places: int = 8) -> str:
    """Entry and break-even prices: Binance prints them without trailing zeros ("67445.9", "0.385")."""
    text = f"{value + 0.0:.{places}f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def plain(value: float) -> str:
    """A tick or step size as Binance's filters show it ("0.10", "0.001", "1")."""
    return trimmed(value, 10).removesuffix(".0")


@dataclass(frozen=True, slots=True)
class BinanceError:
    status: int
    code: int
    msg: str

    def response(self, headers: dict[str, str] | None = None) -> web.Response:
        return json_response({"code": self.code, "msg": self.msg}, status=self.status, headers=headers)


class RefusedError(Exception):
    """Raised by a handler to answer with `error` instead of a result."""

    def __init__(self, error: BinanceError) -> None:
        super().__init__(f"{error.code} {error.msg}")
        self.error = error


def json_response(payload: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # Compact separators: Binance's bodies carry no spaces.
    return web.Response(
        text=json.dumps(payload, separators=(",", ":")),
        status=status,
        content_type="application/json",
        headers=headers,
    )


# Authentication and request-shape refusals.
API_KEY_FORMAT = BinanceError(401, -2014, "API-key format invalid.")
REJECTED_KEY = BinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")
BAD_SIGNATURE = BinanceError(400, -1022, "Signature for this request is not valid.")
OUTSIDE_RECV_WINDOW = BinanceError(400, -1021, "Timestamp for this request is outside of the recvWindow.")
AHEAD_OF_SERVER = BinanceError(
    400, -1021, "Timestamp for this request was 1000ms ahead of the server's time."
)
UNKNOWN_ERROR = BinanceError(400, -1000, "An unknown error occured while processing the request.")
INVALID_SYMBOL = BinanceError(400, -1121, "Invalid symbol.")
NO_LISTEN_KEY = BinanceError(400, -1125, "This listenKey does not exist.")


def mandatory(name: str) -> BinanceError:
    return BinanceError(
        400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


def positive_param(params: dict[str, str], name: str, not_positive: BinanceError) -> float:
    text = params.get(name)
    if not text:
        raise RefusedError(mandatory(name))
    try:
        value = float(text)
    except ValueError:
        raise RefusedError(invalid_value(name)) from None
    if not value > 0:
        raise RefusedError(not_positive)
    return value


def invalid_value(name: str) -> BinanceError:
    return BinanceError(400, -1130, f"Data sent for parameter '{name}' is not valid.")


# Account-state refusals (futures error codes).
NO_NEED_TO_CHANGE_MARGIN_TYPE = BinanceError(400, -4046, "No need to change margin type.")
MARGIN_TYPE_WITH_POSITION = BinanceError(
    400, -4048, "Margin type cannot be changed if there exists position."
)
MARGIN_INSUFFICIENT = BinanceError(400, -2019, "Margin is insufficient.")
ISOLATED_BALANCE_INSUFFICIENT = BinanceError(400, -4051, "Isolated balance insufficient.")
ADD_MARGIN_NOT_ISOLATED = BinanceError(400, -4049, "Add margin only support for isolated position.")
NO_POSITION_FOR_MARGIN = BinanceError(400, -4054, "Cannot add position margin: position is 0.")
AMOUNT_NOT_POSITIVE = BinanceError(400, -4055, "Amount must be positive.")
QUANTITY_BELOW_MINIMUM = BinanceError(400, -4004, "Quantity less than min quantity.")
QUANTITY_NOT_POSITIVE = BinanceError(400, -4003, "Quantity less than or equal to zero.")
NO_NEED_TO_CHANGE_POSITION_SIDE = BinanceError(400, -4059, "No need to change position side.")
POSITION_SIDE_WITH_POSITION = BinanceError(
    400, -4068, "Position side cannot be changed if there exists position."
)
POSITION_SIDE_MISMATCH = BinanceError(400, -4061, "Order's position side does not match user's setting.")
TRANSFER_INSUFFICIENT = BinanceError(400, -5013, "Asset transfer failed: insufficient balance")
POSITION_TOO_LARGE_FOR_LEVERAGE = BinanceError(
    400, -2027, "Exceeded the maximum allowable position at current leverage."
)
REDUCE_ONLY_REJECTED = BinanceError(400, -2022, "ReduceOnly Order is rejected.")


def invalid_leverage(leverage: object) -> BinanceError:
    return BinanceError(400, -4028, f"Leverage {leverage} is not valid")


# Rate limiting and server trouble: `Retry-After` is in seconds.
def rate_limited(weight_limit: int) -> BinanceError:
    return BinanceError(
        429,
        -1003,
        f"Too many requests; current limit of IP(127.0.0.1) is {weight_limit} requests per minute. "
        "Please use the websocket for live updates to avoid polling the API.",
    )


def banned(until_ms: int) -> BinanceError:
    return BinanceError(
        418,
        -1003,
        f"Way too much request weight used; IP banned until {until_ms}. "
        "Please use the websocket for live updates to avoid bans.",
    )


INTERNAL_ERROR = BinanceError(500, -1001, "Internal error; unable to process your request. Please try again.")
SERVICE_UNAVAILABLE = BinanceError(
    503, -1008, "Server is currently overloaded with other requests. Please try again in a few minutes."
)

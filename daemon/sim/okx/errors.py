"""OKX v5 error codes and messages the simulator answers with, and the mapping from engine refusals.

Codes and wording follow OKX's published error table (as mirrored in ccxt's `exceptions` map for okx), so a
client's error handling sees what the exchange would send.
"""

from __future__ import annotations

from daemon.sim.engine import EngineError
from daemon.sim.okx.auth import OkxError

WRONG_ENVIRONMENT = OkxError("50101", "APIKey does not match current environment.", 401)
BAD_JSON = OkxError("50002", "Json data format error.", 400)
UNKNOWN_INSTRUMENT = OkxError("51001", "Instrument ID does not exist.", 400)
RATE_LIMITED = OkxError("50011", "Too Many Requests", 429)
SYSTEM_BUSY = OkxError("50013", "Systems are busy. Please try again later.", 503)
SYSTEM_ERROR = OkxError("50026", "System error. Try again later.", 500)
SETTINGS_BLOCKED = OkxError("59000", "Your settings failed as you have positions or open orders.")
ALREADY_HAS_POSITION = OkxError(
    "51000", "Parameter tdMode error: the instrument holds a position in the other margin mode.", 400
)
NO_POSITION_TO_CLOSE = OkxError("51023", "Position does not exist.")
POSITION_MISSING = OkxError("59300", "Margin call failed. Position does not exist.")
MARGIN_OVER_LIMIT = OkxError("59301", "Margin adjustment failed for exceeding the max limit.")
INSUFFICIENT_BALANCE = OkxError("59200", "Insufficient account balance.")
INSUFFICIENT_MARGIN = OkxError("51008", "Order failed. Insufficient USDT margin in account")
LEVERAGE_TOO_HIGH = OkxError("59102", "Leverage exceeds the maximum leverage. Please adjust the leverage.")
BELOW_MINIMUM = OkxError("51020", "Your order should meet or exceed the minimum order amount.")

_ORDER_ERRORS = {
    "reduce_only": OkxError(
        "51169",
        "Order failed because you don't have any positions in this direction for this contract to reduce or close.",
    ),
    "partial_close": OkxError(
        "51000", "Parameter sz error: the simulator closes long/short legs whole.", 400
    ),
}


def missing(name: str) -> OkxError:
    return OkxError("50014", f"Parameter {name} can not be empty.", 400)


def parameter_error(name: str) -> OkxError:
    return OkxError("51000", f"Parameter {name} error", 400)


def unknown_instrument() -> OkxError:
    return UNKNOWN_INSTRUMENT


def order_error(kind: str) -> OkxError:
    return _ORDER_ERRORS[kind]


def engine_error(error: EngineError, context: str) -> OkxError:
    """The OKX answer for an engine refusal; `context` picks the wording.

    `context` is "order", "leverage", "margin_add" or "margin_reduce".
    """
    kind = error.kind
    if kind == "not_found":
        return UNKNOWN_INSTRUMENT
    if kind == "leverage_too_high":
        return LEVERAGE_TOO_HIGH
    if kind == "position_open":
        return SETTINGS_BLOCKED
    if context.startswith("margin"):
        if kind in ("no_position", "not_isolated"):
            return POSITION_MISSING
        if kind == "insufficient_balance":
            return INSUFFICIENT_BALANCE if context == "margin_add" else MARGIN_OVER_LIMIT
    if kind == "insufficient_balance":
        return INSUFFICIENT_MARGIN
    if kind == "invalid" and context == "order" and "minimum" in error.message:
        return BELOW_MINIMUM
    if kind == "invalid" and context == "leverage":
        return parameter_error("lever")
    return parameter_error("amt" if context.startswith("margin") else context)

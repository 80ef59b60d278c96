"""ccxt's exception zoo translated, in one place, into the few cases a caller must tell apart.

    ExchangeError
    ├── TransientError          retry with backoff (timeouts, dropped connections, bad nonces)
    │   ├── RateLimited         wait `retry_after` seconds (or the backoff), then retry
    │   └── ExchangeUnavailable retry with a longer backoff (maintenance, 5xx, exchange down)
    ├── AuthenticationFailed    stop this account and alert: its keys are wrong or expired
    ├── PermissionDenied        stop this action and alert: the key may not do it
    └── InvalidRequest          do not retry; alert: the exchange refused what was asked

`translate` never raises; anything it does not recognise becomes a plain `ExchangeError` (alert, no retry).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

import ccxt


class ExchangeError(Exception):
    """Something went wrong talking to the exchange and marginguard cannot tell what: alert, do not retry.

    `cause` is the original exception (also chained as `__cause__`).
    """

    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.cause = cause


class TransientError(ExchangeError):
    """A passing failure (timeout, dropped connection, clock drift): retry with the usual capped backoff."""


class RateLimited(TransientError):
    """The exchange asked us to slow down: wait `retry_after` seconds (None: use the backoff), then retry.

    Keep waiting on repeated answers: an exchange that bans an IP (Binance 418) sends a longer retry_after.
    """

    def __init__(
        self, message: str, cause: BaseException | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, cause)
        self.retry_after = retry_after


class ExchangeUnavailable(TransientError):
    """The exchange is down or in maintenance: retry with a longer backoff and report the account as stale."""


class AuthenticationFailed(ExchangeError):
    """The keys were refused (wrong, expired, wrong environment): stop this account and alert its owner."""


class PermissionDenied(ExchangeError):
    """The key is valid but may not do this (no trading or transfer permission, region, account type):
    stop this action, alert, and keep watching the account."""


class InvalidRequest(ExchangeError):
    """The exchange refused the request as asked (insufficient funds, wrong margin mode, bad symbol or
    amount): do not retry it unchanged; alert."""


# Most specific first: ccxt's classes inherit from each other (PermissionDenied < AuthenticationError,
# RateLimitExceeded < NetworkError, OnMaintenance < ExchangeNotAvailable < NetworkError).
_TABLE: tuple[tuple[type[BaseException], type[ExchangeError]], ...] = (
    (ccxt.RateLimitExceeded, RateLimited),
    (ccxt.DDoSProtection, RateLimited),
    (ccxt.ExchangeNotAvailable, ExchangeUnavailable),  # includes OnMaintenance
    (ccxt.InvalidNonce, TransientError),  # clock drift or a reused nonce: resync and retry
    (ccxt.RequestTimeout, TransientError),
    (ccxt.NetworkError, TransientError),
    (ccxt.BadResponse, TransientError),  # garbled or empty answer: the next one is usually fine
    (ccxt.CancelPending, TransientError),
    (ccxt.AccountNotEnabled, PermissionDenied),
    (ccxt.PermissionDenied, PermissionDenied),
    (ccxt.RestrictedLocation, PermissionDenied),
    (ccxt.AccountSuspended, AuthenticationFailed),
    (ccxt.AuthenticationError, AuthenticationFailed),
    (ccxt.InsufficientFunds, InvalidRequest),
    (ccxt.BadRequest, InvalidRequest),  # includes BadSymbol
    (ccxt.ArgumentsRequired, InvalidRequest),
    (ccxt.OperationRejected, InvalidRequest),  # includes NoChange, MarginModeAlreadySet, MarketClosed
    (ccxt.InvalidOrder, InvalidRequest),
    (ccxt.InvalidAddress, InvalidRequest),
    (ccxt.NotSupported, InvalidRequest),
    (ccxt.ExchangeClosedByUser, TransientError),
    # Last: the exchange failed to process the request (Binance -1001 "internal error" on HTTP 500). Not a
    # refusal of the request itself, so retry with backoff; an action's outcome is then unknown until reconciled.
    (ccxt.OperationFailed, TransientError),
)

_SERVER_TROUBLE_TEXT = re.compile(
    r"system error|server error|internal error|overloaded|system is busy|temporarily unavailable",
    re.IGNORECASE,
)
_RETRY_AFTER_TEXT = re.compile(r"retry[-_ ]?after\D{0,4}(\d+(?:\.\d+)?)", re.IGNORECASE)
_BANNED_UNTIL_TEXT = re.compile(r"banned until (\d{13})", re.IGNORECASE)


def translate(
    exc: BaseException, headers: Mapping[str, str] | None = None, now_ms: int | None = None
) -> ExchangeError:
    """The typed error for a ccxt exception (anything else becomes a plain `ExchangeError`).

    For rate limits, `retry_after` comes from the response's `Retry-After` header when `headers` are given
    (pass `client.last_response_headers`), else from the message (a `retry_after` JSON field, a "retry after
    N" phrase, or Binance's "banned until <ms>" given `now_ms`).
    """
    if isinstance(exc, ExchangeError):
        return exc
    # Said without the request's query string: a stream's "down" detail and a refusal reach alerts and receivers,
    # where timestamps and signatures are noise (the original error stays attached for the logs).
    message = f"{type(exc).__name__}: {said(exc)}" if str(exc) else type(exc).__name__
    for ccxt_class, ours in _TABLE:
        if isinstance(exc, ccxt_class):
            if ours is RateLimited:
                return RateLimited(message, exc, retry_after_seconds(exc, headers, now_ms))
            return ours(message, exc)
    if isinstance(exc, TimeoutError | ConnectionError):
        return TransientError(message, exc)
    if type(exc) is ccxt.ExchangeError and _exchange_answer(str(exc)) is not None:
        if _SERVER_TROUBLE_TEXT.search(str(exc)):
            # The exchange's own code for its own failure, which ccxt leaves unclassified (Bybit 10016 "System
            # error", Binance -1008 "Server is currently overloaded" where ccxt maps futures codes by host
            # name only, i.e. behind a URL override): not a refusal. A read retries; an action's outcome is
            # unknown (it may have been executed) until the exchange's records say.
            return ExchangeUnavailable(message, exc)
        # The exchange answered with an error code ccxt does not classify (e.g. OKX 59300 "position does not
        # exist" for margin on a cross position): a refusal of this request.
        return InvalidRequest(message, exc)
    return ExchangeError(message, exc)


def said(exc: BaseException) -> str:
    """The error in words, for logs and alerts: a request's query string (timestamps, signatures) left out."""
    return _QUERY.sub("", str(exc)) or type(exc).__name__


_QUERY = re.compile(r"\?[^\s\"']*")


def retry_after_seconds(
    exc: BaseException, headers: Mapping[str, str] | None = None, now_ms: int | None = None
) -> float | None:
    """How long the exchange asked us to wait, in seconds, or None when it did not say."""
    from_header = _header_retry_after(headers, now_ms)
    if from_header is not None:
        return from_header
    text = str(exc)
    from_json = _json_retry_after(text)
    if from_json is not None:
        return from_json
    match = _RETRY_AFTER_TEXT.search(text)
    if match:
        return float(match.group(1))
    banned = _BANNED_UNTIL_TEXT.search(text)
    if banned and now_ms is not None:
        return max(0.0, (int(banned.group(1)) - now_ms) / 1000.0)
    return None


def _header_retry_after(headers: Mapping[str, str] | None, now_ms: int | None) -> float | None:
    if not headers:
        return None
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    # The HTTP-date form: needs the current time to turn into a delay.
    if now_ms is None:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now_ms / 1000.0)


def _exchange_answer(text: str) -> dict[str, object] | None:
    """The JSON body ccxt appends to an error message (`"<id> {...}"`), when there is one."""
    start = text.find("{")
    if start < 0:
        return None
    try:
        body = json.loads(text[start:])
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _json_retry_after(text: str) -> float | None:
    body = _exchange_answer(text)
    if body is None:
        return None
    for key in ("retry_after", "retryAfter"):
        value = body.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None

"""OKX v5 request authentication, as the exchange checks it.

REST: every private request carries OK-ACCESS-KEY, OK-ACCESS-PASSPHRASE, OK-ACCESS-TIMESTAMP (ISO 8601 with
milliseconds, UTC) and OK-ACCESS-SIGN = base64(HMAC-SHA256(secret, timestamp + METHOD + requestPath + body)),
where requestPath includes the query string exactly as sent. A timestamp more than 30 seconds away from the
server clock is refused.

Websocket: `{"op": "login", "args": [{"apiKey", "passphrase", "timestamp", "sign"}]}` with the timestamp in
Unix seconds and sign = base64(HMAC-SHA256(secret, timestamp + "GET" + "/users/self/verify")).

The checks return the exchange's own error code and message so the dialect can answer exactly as OKX does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

TIMESTAMP_WINDOW_S = 30.0
WS_LOGIN_PATH = "/users/self/verify"

AccountT = TypeVar("AccountT")


@dataclass(frozen=True, slots=True)
class OkxError:
    """An OKX error answer: `code` and `msg` as the exchange spells them, and the HTTP status it uses."""

    code: str
    msg: str
    http_status: int = 200


# REST authentication failures: OKX answers them with HTTP 401.
MISSING_KEY = OkxError("50103", "Request header OK-ACCESS-KEY can not be empty.", 401)
MISSING_PASSPHRASE = OkxError("50104", "Request header OK-ACCESS-PASSPHRASE can not be empty.", 401)
MISSING_SIGN = OkxError("50106", "Request header OK-ACCESS-SIGN can not be empty.", 401)
MISSING_TIMESTAMP = OkxError("50107", "Request header OK-ACCESS-TIMESTAMP can not be empty.", 401)
WRONG_PASSPHRASE = OkxError("50105", "Request header OK-ACCESS-PASSPHRASE incorrect.", 401)
INVALID_KEY = OkxError("50111", "Invalid OK-ACCESS-KEY.", 401)
INVALID_TIMESTAMP = OkxError("50112", "Invalid OK-ACCESS-TIMESTAMP.", 401)
INVALID_SIGN = OkxError("50113", "Invalid Sign.", 401)
TIMESTAMP_EXPIRED = OkxError("50102", "Timestamp request expired.", 401)

# Websocket login failures (sent as {"event": "error", "code", "msg", "connId"}).
WS_INVALID_KEY = OkxError("60005", "Invalid OK-ACCESS-KEY")
WS_TIMESTAMP_EXPIRED = OkxError("60006", "Timestamp request expired")
WS_INVALID_SIGN = OkxError("60007", "Invalid sign")
WS_LOGIN_FAILED = OkxError("60009", "Login failed.")
WS_WRONG_PASSPHRASE = OkxError("60024", "Wrong passphrase")


def sign(secret: str, prehash: str) -> str:
    """base64(HMAC-SHA256(secret, prehash)): OKX's signature for REST and websocket login alike."""
    digest = hmac.new(secret.encode(), prehash.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def rest_prehash(timestamp: str, method: str, request_path: str, body: str) -> str:
    """What a REST signature covers: timestamp + METHOD + path with query + body (empty for GET)."""
    return f"{timestamp}{method.upper()}{request_path}{body}"


def ws_login_prehash(timestamp: str) -> str:
    return f"{timestamp}GET{WS_LOGIN_PATH}"


def parse_iso_timestamp(text: str) -> float | None:
    """Seconds since the epoch for an ISO 8601 UTC timestamp like 2020-12-08T09:08:57.715Z; None if malformed."""
    if not text.endswith("Z"):
        return None
    try:
        return datetime.fromisoformat(text[:-1] + "+00:00").timestamp()
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class AuthResult(Generic[AccountT]):
    account: AccountT | None
    error: OkxError | None


def _secret_and_passphrase(account: Any) -> tuple[str, str]:
    return str(account.secret), str(account.passphrase or "")


def check_rest_request(
    headers: Mapping[str, str],
    method: str,
    request_path: str,
    body: str,
    find_account: Callable[[str], AccountT | None],
    now_s: float,
) -> AuthResult[AccountT]:
    """Authenticate one private REST request the way OKX does, in OKX's order of checks."""
    api_key = headers.get("OK-ACCESS-KEY", "")
    passphrase = headers.get("OK-ACCESS-PASSPHRASE", "")
    timestamp = headers.get("OK-ACCESS-TIMESTAMP", "")
    signature = headers.get("OK-ACCESS-SIGN", "")
    if not api_key:
        return AuthResult(None, MISSING_KEY)
    if not timestamp:
        return AuthResult(None, MISSING_TIMESTAMP)
    if not passphrase:
        return AuthResult(None, MISSING_PASSPHRASE)
    if not signature:
        return AuthResult(None, MISSING_SIGN)
    sent_at = parse_iso_timestamp(timestamp)
    if sent_at is None:
        return AuthResult(None, INVALID_TIMESTAMP)
    if abs(now_s - sent_at) > TIMESTAMP_WINDOW_S:
        return AuthResult(None, TIMESTAMP_EXPIRED)
    account = find_account(api_key)
    if account is None:
        return AuthResult(None, INVALID_KEY)
    secret, expected_passphrase = _secret_and_passphrase(account)
    if not hmac.compare_digest(passphrase, expected_passphrase):
        return AuthResult(None, WRONG_PASSPHRASE)
    expected = sign(secret, rest_prehash(timestamp, method, request_path, body))
    if not hmac.compare_digest(signature, expected):
        return AuthResult(None, INVALID_SIGN)
    return AuthResult(account, None)


def check_ws_login(
    args: Mapping[str, Any], find_account: Callable[[str], AccountT | None], now_s: float
) -> AuthResult[AccountT]:
    """Authenticate one websocket login argument ({"apiKey", "passphrase", "timestamp", "sign"})."""
    api_key = str(args.get("apiKey") or "")
    passphrase = str(args.get("passphrase") or "")
    timestamp = str(args.get("timestamp") or "")
    signature = str(args.get("sign") or "")
    if not (api_key and passphrase and timestamp and signature):
        return AuthResult(None, WS_LOGIN_FAILED)
    try:
        sent_at = float(timestamp)
    except ValueError:
        return AuthResult(None, WS_LOGIN_FAILED)
    if abs(now_s - sent_at) > TIMESTAMP_WINDOW_S:
        return AuthResult(None, WS_TIMESTAMP_EXPIRED)
    account = find_account(api_key)
    if account is None:
        return AuthResult(None, WS_INVALID_KEY)
    secret, expected_passphrase = _secret_and_passphrase(account)
    if not hmac.compare_digest(passphrase, expected_passphrase):
        return AuthResult(None, WS_WRONG_PASSPHRASE)
    if not hmac.compare_digest(signature, sign(secret, ws_login_prehash(timestamp))):
        return AuthResult(None, WS_INVALID_SIGN)
    return AuthResult(account, None)

"""Bybit v5 request authentication, checked the way the exchange checks it.

REST: headers X-BAPI-API-KEY, X-BAPI-TIMESTAMP, X-BAPI-RECV-WINDOW and X-BAPI-SIGN, where the signature is
hex HMAC-SHA256(secret, timestamp + api key + recv window + payload) and the payload is the raw query string
(GET) or the raw JSON body (POST). The timestamp must satisfy
server_time - recv_window <= timestamp < server_time + 1000.

Private websocket: `{"op": "auth", "args": [api_key, expires, signature]}` with signature =
hex HMAC-SHA256(secret, "GET/realtime" + expires); `expires` (ms) must lie in the future.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass

DEFAULT_RECV_WINDOW_MS = 5000
FUTURE_TOLERANCE_MS = 1000


@dataclass(frozen=True, slots=True)
class AuthRefusal:
    """Why a request was refused, as Bybit words it."""

    ret_code: int
    ret_msg: str


def sign(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def check_rest(
    headers: Mapping[str, str],
    payloads: tuple[str, ...],
    secret_for: Callable[[str], str | None],
    server_ms: int,
) -> str | AuthRefusal:
    """The api key when the request is genuine, else the refusal Bybit would answer.

    `payloads` are the acceptable renderings of the signed part (raw and decoded query string, or the body):
    a client signing either form of the same parameters is accepted.
    """
    api_key = headers.get("X-BAPI-API-KEY", "")
    timestamp_text = headers.get("X-BAPI-TIMESTAMP", "")
    signature = headers.get("X-BAPI-SIGN", "")
    recv_window_text = headers.get("X-BAPI-RECV-WINDOW", str(DEFAULT_RECV_WINDOW_MS))
    if not api_key:
        return AuthRefusal(10003, "API key is invalid.")
    if not timestamp_text or not signature:
        return AuthRefusal(10001, "empty value: X-BAPI-TIMESTAMP or X-BAPI-SIGN")
    try:
        timestamp = int(timestamp_text)
        recv_window = int(recv_window_text)
    except ValueError:
        return AuthRefusal(10001, "invalid X-BAPI-TIMESTAMP or X-BAPI-RECV-WINDOW")
    if not server_ms - recv_window <= timestamp < server_ms + FUTURE_TOLERANCE_MS:
        return AuthRefusal(
            10002,
            "invalid request, please check your server timestamp or recv_window param. "
            f"req_timestamp[{timestamp}],server_timestamp[{server_ms}],recv_window[{recv_window}]",
        )
    secret = secret_for(api_key)
    if secret is None:
        return AuthRefusal(10003, "API key is invalid.")
    prefix = f"{timestamp_text}{api_key}{recv_window_text}"
    for payload in payloads:
        if hmac.compare_digest(sign(secret, prefix + payload), signature.lower()):
            return api_key
    return AuthRefusal(
        10004,
        f"error sign! origin_string[{prefix}{payloads[0] if payloads else ''}]",
    )


def check_ws_auth(args: object, secret_for: Callable[[str], str | None], server_ms: int) -> str | AuthRefusal:
    """The api key of a valid private-stream login, else the refusal (its `ret_msg` is what Bybit sends)."""
    if not isinstance(args, list) or len(args) != 3:
        return AuthRefusal(10001, "Params Error")
    api_key, expires_raw, signature = args
    try:
        expires = int(expires_raw)
    except (TypeError, ValueError):
        return AuthRefusal(10001, "Params Error")
    if expires <= server_ms:
        return AuthRefusal(10002, "Params Error")
    secret = secret_for(str(api_key))
    if secret is None:
        return AuthRefusal(10003, "Invalid apikey")
    expected = sign(secret, f"GET/realtime{expires_raw}")
    if not isinstance(signature, str) or not hmac.compare_digest(expected, signature.lower()):
        return AuthRefusal(10004, "Invalid sign")
    return str(api_key)

"""Binance request authentication, checked the way the exchange checks it.

A SIGNED endpoint needs the `X-MBX-APIKEY` header, a `timestamp` within `recvWindow` (default 5000 ms,
at most 60000) of the server's clock and not more than 1000 ms ahead of it, and `signature` =
hex HMAC-SHA256(secret, totalParams), where totalParams is the raw query string followed directly by the
raw request body, the `signature` parameter itself left out. A USER_STREAM endpoint (listenKey) needs the
key header only.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import parse_qsl

from daemon.sim.binance import wire

DEFAULT_RECV_WINDOW_MS = 5000
MAX_RECV_WINDOW_MS = 60000
MAX_AHEAD_MS = 1000


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """What a request carries for authentication, taken from the raw wire text (never re-encoded)."""

    api_key: str | None
    raw_query: str
    raw_body: str

    def params(self) -> dict[str, str]:
        """Query and body parameters, decoded; a body value wins over a query value of the same name."""
        merged = dict(parse_qsl(self.raw_query, keep_blank_values=True))
        merged.update(parse_qsl(self.raw_body, keep_blank_values=True))
        return merged


def sign(secret: str, total_params: str) -> str:
    return hmac.new(secret.encode(), total_params.encode(), hashlib.sha256).hexdigest()


def _without_signature(raw: str) -> tuple[str, str | None]:
    """`raw` with its `signature=...` pair removed, and that signature (None when absent)."""
    kept: list[str] = []
    signature: str | None = None
    for pair in raw.split("&") if raw else []:
        if pair.startswith("signature="):
            signature = pair.removeprefix("signature=")
        else:
            kept.append(pair)
    return "&".join(kept), signature


def check_signed(request: SignedRequest, secret: str, server_time_ms: int) -> wire.BinanceError | None:
    """None when the request is properly signed and fresh, else the error Binance answers with."""
    query, query_signature = _without_signature(request.raw_query)
    body, body_signature = _without_signature(request.raw_body)
    params = request.params()
    timestamp_text = params.get("timestamp")
    if not timestamp_text:
        return wire.mandatory("timestamp")
    signature = body_signature if body_signature is not None else query_signature
    if not signature:
        return wire.mandatory("signature")
    try:
        timestamp = int(timestamp_text)
        recv_window = int(params.get("recvWindow", DEFAULT_RECV_WINDOW_MS))
    except ValueError:
        return wire.invalid_value("timestamp")
    if not 0 < recv_window <= MAX_RECV_WINDOW_MS:
        return wire.BinanceError(400, -1131, "recvWindow must be less than 60000")
    if timestamp >= server_time_ms + MAX_AHEAD_MS:
        return wire.AHEAD_OF_SERVER
    if server_time_ms - timestamp > recv_window:
        return wire.OUTSIDE_RECV_WINDOW
    expected = sign(secret, query + body)
    if not hmac.compare_digest(expected, signature.lower()):
        return wire.BAD_SIGNATURE
    return None

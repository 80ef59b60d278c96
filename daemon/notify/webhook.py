"""The generic JSON webhook: POST the documented alert document (docs/webhook.md) to any URL.

Headers: `Idempotency-Key` (identity key + sequence; the same message keeps it across retries, so a receiver
can drop repeats), and with an `hmac_secret`: `X-Marginguard-Timestamp` (unix seconds of this attempt) and
`X-Marginguard-Signature: sha256=<hex HMAC-SHA256 of the raw body>`. The body is byte-identical on every retry
of the same message, so its signature is too.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable

import aiohttp

from daemon.core.alerts import Alert
from daemon.notify.render import encode, idempotency_key, render_webhook
from daemon.notify.sink import DEFAULT_TIMEOUT, HttpSink, Picture

SIGNATURE_HEADER = "X-Marginguard-Signature"
TIMESTAMP_HEADER = "X-Marginguard-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"


def sign(secret: str, body: bytes) -> str:
    """The signature header value for a body: "sha256=" + hex HMAC-SHA256 keyed with the shared secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """What a receiver does: recompute over the raw bytes received and compare in constant time."""
    return header is not None and hmac.compare_digest(sign(secret, body), header)


class WebhookSink(HttpSink):
    kind = "webhook"

    def __init__(
        self,
        name: str,
        *,
        url: str,
        hmac_secret: str | None = None,
        page_url: str | None = None,
        session: aiohttp.ClientSession | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(name, session=session, timeout=timeout)
        # The status page's address as people reach it (`daemon.status_page_url`): with it, a message that has an
        # incident chart links to it; without it, the message is text only (a loopback address helps nobody).
        self._page_url = page_url.rstrip("/") if page_url else None
        self._webhook_url = url
        self._secret = hmac_secret
        self._clock = clock

    @property
    def shows_charts(self) -> bool:
        return self._page_url is not None

    def _url(self, attached: bool = False) -> str:
        return self._webhook_url

    def _body(self, alert: Alert, picture: Picture | None = None) -> bytes:
        link = None if picture is None or self._page_url is None else self._page_url + picture.path
        return encode(render_webhook(alert, link))

    def _headers(self, alert: Alert, body: bytes) -> dict[str, str]:
        headers = {IDEMPOTENCY_HEADER: idempotency_key(alert)}
        if self._secret:
            headers[TIMESTAMP_HEADER] = str(int(self._clock()))
            headers[SIGNATURE_HEADER] = sign(self._secret, body)
        return headers

    def _secrets(self) -> tuple[str, ...]:
        return (self._webhook_url, self._secret or "")

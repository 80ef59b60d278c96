"""What a sink is, what a delivery attempt can come to, and the HTTP plumbing the chat transports share.

A sink sends ONE alert and says how it went; it never retries or sleeps itself — the outbox decides when to try
again, durably, so a rate limit or an outage delays alerts without losing or reordering them.

Webhook URLs and bot tokens are credentials: a sink is named by its configured name in logs and outcomes, and
any text that could carry its URL or token (a response body, an exception message) is scrubbed first.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import aiohttp
import structlog

from daemon.core.alerts import Alert

USER_AGENT = "marginguard (+https://github.com/marginguard/marginguard)"
DEFAULT_TIMEOUT = 10.0  # seconds per request: a chat API slower than this is treated as down for now
ERROR_SNIPPET = 200  # characters of a response body kept in an error message

log = structlog.get_logger("marginguard.notify")


@dataclass(frozen=True, slots=True)
class Sent:
    """The receiver accepted the alert: mark the delivery sent."""


@dataclass(frozen=True, slots=True)
class RetryAfter:
    """The receiver is rate limiting: try this delivery again no sooner than `seconds` from now."""

    seconds: float
    reason: str


@dataclass(frozen=True, slots=True)
class Transient:
    """A 5xx, a timeout or a network error: retry later with backoff."""

    reason: str


@dataclass(frozen=True, slots=True)
class Failed:
    """The receiver refused the alert for good (a 4xx other than 429): retrying would not help; give up on it."""

    reason: str


Outcome = Sent | RetryAfter | Transient | Failed


@dataclass(frozen=True, slots=True)
class Picture:
    """A message's incident chart: the PNG, and the message's number, which names it on the status page."""

    png: bytes
    number: int

    @property
    def filename(self) -> str:
        return f"incident-{self.number}.png"

    @property
    def path(self) -> str:
        """Its address on the daemon's HTTP server (`daemon.status_page_url` + this)."""
        return f"/incident/{self.number}.png"


class Sink(Protocol):
    """One configured destination. `send` must not raise for receiver or network trouble: it returns an outcome."""

    name: str

    @property
    def shows_charts(self) -> bool:
        """Whether the sink shows a message's incident chart (its deliveries wait a few seconds for one)."""
        ...

    async def send(self, alert: Alert, picture: Picture | None = None) -> Outcome: ...

    async def close(self) -> None: ...


async def close_all(sinks: Iterable[Sink]) -> None:
    for sink in sinks:
        await sink.close()


def parse_retry_after_header(value: str | None, now: float) -> float | None:
    """Retry-After as seconds (RFC 9110: delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - now
    return max(0.0, seconds) if math.isfinite(seconds) else None


class HttpSink:
    """A sink that POSTs one JSON document per alert (or one multipart form, when it attaches the message's
    incident chart). Subclasses say where, what, and how to read a 429."""

    kind: ClassVar[str] = "http"

    def __init__(
        self,
        name: str,
        *,
        session: aiohttp.ClientSession | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.name = name
        self._session = session
        self._owns_session = session is None
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    def __repr__(self) -> str:
        # Never the URL or token: they are credentials.
        return f"<{type(self).__name__} {self.name!r}>"

    # -- what subclasses provide --------------------------------------------------------------------------------

    def _url(self, attached: bool = False) -> str:
        """Where to post; `attached`: the request carries the chart as a file (a form, not JSON)."""
        raise NotImplementedError

    def _body(self, alert: Alert, picture: Picture | None = None) -> bytes:
        raise NotImplementedError

    def _form(self, alert: Alert, picture: Picture) -> aiohttp.FormData | None:
        """The message with its chart attached as a file (multipart/form-data); None: this sink sends JSON."""
        return None

    @property
    def shows_charts(self) -> bool:
        """Whether this sink shows a message's incident chart (attached or linked): such a message's delivery
        waits a few seconds for it."""
        return False

    def _headers(self, alert: Alert, body: bytes) -> dict[str, str]:
        return {}

    def _secrets(self) -> tuple[str, ...]:
        """Strings that must never appear in an outcome or a log line (URL, token)."""
        return ()

    def _retry_hint(self, headers: Mapping[str, str], body: bytes) -> float | None:
        """Seconds to wait, read from a 429 (or 503) answer; None if the answer gives no hint."""
        return parse_retry_after_header(headers.get("Retry-After"), time.time())

    # -- the attempt ---------------------------------------------------------------------------------------------

    async def send(self, alert: Alert, picture: Picture | None = None) -> Outcome:
        form = None if picture is None else self._form(alert, picture)
        outcome = await self._post(alert, picture, form)
        if form is not None and isinstance(outcome, Failed):
            # The platform refused the attachment and created no message: the text alone must still get through
            # (one message either way: a refusal is no half success that a retry would repeat).
            log.warning("chart refused: message sent as text", sink=self.name, reason=outcome.reason)
            outcome = await self._post(alert, None, None)
        return outcome

    async def _post(self, alert: Alert, picture: Picture | None, form: aiohttp.FormData | None) -> Outcome:
        data: bytes | aiohttp.FormData
        headers = {"User-Agent": USER_AGENT}
        if form is None:
            data = self._body(alert, picture)
            headers |= {"Content-Type": "application/json", **self._headers(alert, data)}
        else:
            data = form  # aiohttp writes the multipart body and its Content-Type (with the boundary)
        try:
            session = self._session_for_use()
            async with session.post(
                self._url(form is not None),
                data=data,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                payload = await response.read()
                return self._classify(response.status, response.headers, payload)
        except TimeoutError:
            return Transient(f"no answer within {self._timeout.total:g} s")
        except aiohttp.ClientConnectorError as exc:
            return Transient(
                self._scrub(f"cannot connect: {exc.os_error.strerror or type(exc.os_error).__name__}")
            )
        except aiohttp.ClientError as exc:
            # The exception text may quote the URL; its class says enough.
            return Transient(f"network error: {type(exc).__name__}")

    def _classify(self, status: int, headers: Mapping[str, str], payload: bytes) -> Outcome:
        if 200 <= status < 300:
            return Sent()
        detail = self._scrub(f"HTTP {status}: {payload[:ERROR_SNIPPET].decode(errors='replace')}".strip())
        if status == 429 or status == 503:
            hint = self._retry_hint(headers, payload)
            if hint is not None:
                return RetryAfter(hint, detail)
            return Transient(detail)
        if status >= 500 or status in (408, 425):
            return Transient(detail)
        return Failed(detail)

    def _scrub(self, text: str) -> str:
        for secret in self._secrets():
            if secret:
                text = text.replace(secret, "***")
        return text

    def _session_for_use(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
            self._owns_session = True
        return self._session

    async def close(self) -> None:
        if self._owns_session and self._session is not None and not self._session.closed:
            await self._session.close()
            # Let the connector's transports finish closing so the loop ends without warnings.
            await asyncio.sleep(0)


def json_field(payload: bytes, *path: str) -> Any:
    """A nested field of a JSON body, or None when the body is not JSON or the field is missing."""
    try:
        value: Any = json.loads(payload)
    except ValueError:
        return None
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def seconds_or_none(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None

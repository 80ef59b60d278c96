"""Telegram Bot API: POST `sendMessage` to `{base_url}/bot{token}/sendMessage` with HTML formatting.

A flood-limited bot gets 429 with JSON `{"ok": false, "error_code": 429, "parameters": {"retry_after": N}}`.
A 400 (chat not found, can't parse entities, group migrated to a supergroup) or 403 (bot blocked or kicked) is
permanent for this message; its description is kept so the journal says why.
"""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp

from daemon.core.alerts import Alert
from daemon.notify.render import encode, render_telegram
from daemon.notify.sink import DEFAULT_TIMEOUT, HttpSink, json_field, seconds_or_none

TELEGRAM_API = "https://api.telegram.org"


class TelegramSink(HttpSink):
    kind = "telegram"

    def __init__(
        self,
        name: str,
        *,
        bot_token: str,
        chat_id: str,
        base_url: str = TELEGRAM_API,
        session: aiohttp.ClientSession | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__(name, session=session, timeout=timeout)
        self._token = bot_token
        self.chat_id = chat_id
        self._send_url = f"{base_url.rstrip('/')}/bot{bot_token}/sendMessage"

    def _url(self) -> str:
        return self._send_url

    def _body(self, alert: Alert) -> bytes:
        return encode(render_telegram(alert, self.chat_id))

    def _secrets(self) -> tuple[str, ...]:
        return (self._send_url, self._token)

    def _retry_hint(self, headers: Mapping[str, str], body: bytes) -> float | None:
        seconds = seconds_or_none(json_field(body, "parameters", "retry_after"))
        return seconds if seconds is not None else super()._retry_hint(headers, body)

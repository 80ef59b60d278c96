"""Telegram Bot API: POST `sendMessage` to `{base_url}/bot{token}/sendMessage` with HTML formatting, or, for a
message with an incident chart, `sendPhoto` (multipart/form-data: chat_id, photo, caption, parse_mode) — one
request per message either way. A caption holds 1,024 characters against a message's 4,096: a longer text is
sent in its short form (`render_telegram_caption`), never split over two messages, since a retry after the
first of two went out would send it twice.

A flood-limited bot gets 429 with JSON `{"ok": false, "error_code": 429, "parameters": {"retry_after": N}}`.
A 400 (chat not found, can't parse entities, group migrated to a supergroup) or 403 (bot blocked or kicked) is
permanent for this message; its description is kept so the journal says why.
"""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp

from daemon.core.alerts import Alert
from daemon.notify.render import encode, render_telegram, render_telegram_caption
from daemon.notify.sink import DEFAULT_TIMEOUT, HttpSink, Picture, json_field, seconds_or_none

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
        bot = f"{base_url.rstrip('/')}/bot{bot_token}"
        self._send_url, self._photo_url = f"{bot}/sendMessage", f"{bot}/sendPhoto"

    @property
    def shows_charts(self) -> bool:
        return True

    def _url(self, attached: bool = False) -> str:
        return self._photo_url if attached else self._send_url

    def _body(self, alert: Alert, picture: Picture | None = None) -> bytes:
        return encode(render_telegram(alert, self.chat_id))

    def _form(self, alert: Alert, picture: Picture) -> aiohttp.FormData:
        form = aiohttp.FormData()
        form.add_field("chat_id", self.chat_id)
        form.add_field("caption", render_telegram_caption(alert))
        form.add_field("parse_mode", "HTML")
        form.add_field("photo", picture.png, filename=picture.filename, content_type="image/png")
        return form

    def _secrets(self) -> tuple[str, ...]:
        return (self._send_url, self._photo_url, self._token)

    def _retry_hint(self, headers: Mapping[str, str], body: bytes) -> float | None:
        seconds = seconds_or_none(json_field(body, "parameters", "retry_after"))
        return seconds if seconds is not None else super()._retry_hint(headers, body)

"""Discord webhooks: POST the embed to the webhook URL with `?wait=true`, so Discord answers 200 only once the
message exists (and an error otherwise) instead of an optimistic 204.

A rate-limited webhook answers 429 with JSON `{"retry_after": <seconds, float>, "global": bool}`; that float is
more precise than the Retry-After header (whole seconds), so it wins.

A message with an incident chart is one multipart/form-data request: `payload_json` (the embed, whose image is
`attachment://<file name>`) and the PNG as `files[0]`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import aiohttp
from yarl import URL

from daemon.core.alerts import Alert
from daemon.notify.render import encode, render_discord
from daemon.notify.sink import DEFAULT_TIMEOUT, HttpSink, Picture, json_field, seconds_or_none


class DiscordSink(HttpSink):
    kind = "discord"

    def __init__(
        self,
        name: str,
        *,
        url: str,
        session: aiohttp.ClientSession | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__(name, session=session, timeout=timeout)
        self._webhook_url = url
        # Keep any query the user gave (thread_id=...) and ask Discord to confirm the message.
        self._post_url = str(URL(url, encoded=True).update_query(wait="true"))

    @property
    def shows_charts(self) -> bool:
        return True

    def _url(self, attached: bool = False) -> str:
        return self._post_url

    def _body(self, alert: Alert, picture: Picture | None = None) -> bytes:
        return encode(render_discord(alert))

    def _form(self, alert: Alert, picture: Picture) -> aiohttp.FormData:
        form = aiohttp.FormData()
        payload = json.dumps(render_discord(alert, picture.filename), ensure_ascii=False)
        form.add_field("payload_json", payload, content_type="application/json")
        form.add_field("files[0]", picture.png, filename=picture.filename, content_type="image/png")
        return form

    def _secrets(self) -> tuple[str, ...]:
        return (self._webhook_url, self._post_url)

    def _retry_hint(self, headers: Mapping[str, str], body: bytes) -> float | None:
        seconds = seconds_or_none(json_field(body, "retry_after"))
        return seconds if seconds is not None else super()._retry_hint(headers, body)

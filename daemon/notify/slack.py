"""Slack incoming webhooks: POST the Block Kit payload to the webhook URL; Slack answers 200 "ok".

A rate-limited webhook answers 429 with a Retry-After header (seconds). Other 4xx answers (invalid_payload,
no_service, channel_is_archived, action_prohibited) will not get better by retrying.
"""

from __future__ import annotations

import aiohttp

from daemon.core.alerts import Alert
from daemon.notify.render import encode, render_slack
from daemon.notify.sink import DEFAULT_TIMEOUT, HttpSink, Picture


class SlackSink(HttpSink):
    kind = "slack"

    def __init__(
        self,
        name: str,
        *,
        url: str,
        page_url: str | None = None,
        session: aiohttp.ClientSession | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__(name, session=session, timeout=timeout)
        # The status page's address as people reach it (`daemon.status_page_url`): with it, a message that has an
        # incident chart links to it; without it, the message is text only (a loopback address helps nobody).
        self._page_url = page_url.rstrip("/") if page_url else None
        self._webhook_url = url

    @property
    def shows_charts(self) -> bool:
        return self._page_url is not None

    def _url(self, attached: bool = False) -> str:
        return self._webhook_url

    def _body(self, alert: Alert, picture: Picture | None = None) -> bytes:
        link = None if picture is None or self._page_url is None else self._page_url + picture.path
        return encode(render_slack(alert, link))

    def _secrets(self) -> tuple[str, ...]:
        return (self._webhook_url,)

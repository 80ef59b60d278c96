"""Slack incoming webhooks: POST the Block Kit payload to the webhook URL; Slack answers 200 "ok".

A rate-limited webhook answers 429 with a Retry-After header (seconds). Other 4xx answers (invalid_payload,
no_service, channel_is_archived, action_prohibited) will not get better by retrying.
"""

from __future__ import annotations

import aiohttp

from daemon.core.alerts import Alert
from daemon.notify.render import encode, render_slack
from daemon.notify.sink import DEFAULT_TIMEOUT, HttpSink


class SlackSink(HttpSink):
    kind = "slack"

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

    def _url(self) -> str:
        return self._webhook_url

    def _body(self, alert: Alert) -> bytes:
        return encode(render_slack(alert))

    def _secrets(self) -> tuple[str, ...]:
        return (self._webhook_url,)

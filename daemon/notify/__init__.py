"""Alert sinks (Slack, Discord, Telegram, a generic JSON webhook), routing, and the durable delivery outbox."""

from __future__ import annotations

import inspect
from typing import Any

from daemon.notify.discord import DiscordSink
from daemon.notify.sink import (
    Failed,
    HttpSink,
    Outcome,
    Picture,
    RetryAfter,
    Sent,
    Sink,
    Transient,
    close_all,
)
from daemon.notify.slack import SlackSink
from daemon.notify.telegram import TelegramSink
from daemon.notify.webhook import WebhookSink

SINK_TYPES: dict[str, type[HttpSink]] = {
    "slack": SlackSink,
    "discord": DiscordSink,
    "telegram": TelegramSink,
    "webhook": WebhookSink,
}


# Every keyword some sink type takes.
_SINK_FIELDS = {
    name for sink_type in SINK_TYPES.values() for name in inspect.signature(sink_type.__init__).parameters
}


def _plain(value: Any) -> Any:
    # Accept pydantic's SecretStr (or anything like it) without depending on pydantic here.
    reveal = getattr(value, "get_secret_value", None)
    return reveal() if callable(reveal) else value


def build_sink(kind: str, **kwargs: Any) -> Sink:
    """A sink of type `kind` ("slack" | "discord" | "telegram" | "webhook").

    Takes the transport's keyword arguments (`name`, and `url`; or `bot_token`, `chat_id`, `base_url`; and
    `hmac_secret`, `page_url` (Slack and the webhook link charts there), `session`, `timeout`). A settings object's sink fields can be passed as they are: None means
    "default", and another sink type's field (a Slack sink's `base_url`) is ignored. A name no sink type knows
    raises TypeError.
    """
    try:
        sink_type = SINK_TYPES[kind]
    except KeyError:
        raise ValueError(f"unknown sink type {kind!r} (known: {', '.join(SINK_TYPES)})") from None
    accepted = set(inspect.signature(sink_type.__init__).parameters)
    given = {
        key: _plain(value)
        for key, value in kwargs.items()
        if value is not None and (key in accepted or key not in _SINK_FIELDS)
    }
    sink: Sink = sink_type(**given)
    return sink


__all__ = [
    "SINK_TYPES",
    "DiscordSink",
    "Failed",
    "Outcome",
    "Picture",
    "RetryAfter",
    "Sent",
    "Sink",
    "SlackSink",
    "TelegramSink",
    "Transient",
    "WebhookSink",
    "build_sink",
    "close_all",
]

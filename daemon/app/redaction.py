"""Secrets redacted by value: every configured secret, and the pieces of it that travel alone, masked wherever
text leaves marginguard (log lines, `check-config`, delivery errors in the journal, `history`).

    redactor = Redactor(secret_values(settings))
    redactor.text("HTTP 404: no route for /hooks/webhookPathToken-c29d41")  # -> "HTTP 404: no route for ***"

A secret rarely comes back whole: a receiver's error page echoes the URL path, not the URL; a proxy quotes it
percent-encoded; a Telegram error names the token without its bot id. So each secret is registered with the
forms it travels in (`variants`): a URL's path, its token-like path segments and query values, the password in
its user-info; a bot token's secret half; percent-encoded and JSON-escaped spellings. Beside the values, a few
patterns mask what no configuration names (request signatures, listen keys, any Slack or Discord webhook path).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

MASK = "***"
# Shorter "secrets" would mask ordinary words everywhere; no real credential is this short.
MIN_SECRET_LENGTH = 6

TEXT_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Slack and Discord incoming webhooks carry their credential in the path.
    (re.compile(r"(https://hooks\.slack\.com/)[^\s\"'<>]+"), r"\1" + MASK),
    (re.compile(r"(https://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/)[^\s\"'<>]+"), r"\1" + MASK),
    # Telegram bot tokens: in Bot API paths, and bare ("123456789:AA...").
    (re.compile(r"(/bot)\d+:[A-Za-z0-9_-]+"), r"\1" + MASK),
    (re.compile(r"\b\d{6,12}:[A-Za-z0-9_-]{30,}"), MASK),
    # Signed query strings and form bodies: signature=..., apiKey=..., listenKey=..., passphrase=...
    (
        re.compile(
            r"(?i)\b(signature|sign|api_?key|secret|password|passphrase|token|listen_?key|access_?token)=[^&\s\"']+"
        ),
        r"\1=" + MASK,
    ),
    # Header or JSON forms: "X-MBX-APIKEY": "abc", OK-ACCESS-SIGN: abc, "secret": "abc".
    (
        re.compile(
            r"(?i)(\"?(?:x-mbx-apikey|ok-access-key|ok-access-sign|ok-access-passphrase|x-bapi-api-key|x-bapi-sign"
            r"|authorization|apikey|api_key|secret|password|passphrase|private_?key)\"?\s*[:=]\s*[\"']?)"
            r"(?!\*\*\*)[^\"'\s,}]+"
        ),
        r"\1" + MASK,
    ),
)

_BOT_TOKEN = re.compile(r"^\d+:(?P<secret>[A-Za-z0-9_-]+)$")


def _token_like(segment: str) -> bool:
    """A URL path segment that could be a credential: not a plain word such as "services" or "webhooks"."""
    if len(segment) < MIN_SECRET_LENGTH:
        return False
    if segment.isdigit():
        return len(segment) >= 8  # webhook ids are long; short numbers are ports, counts, prices
    return len(segment) >= 16 or not (segment.isalpha() and segment.islower())


def _url_parts(value: str) -> Iterator[str]:
    try:
        parts = urlsplit(value)
    except ValueError:
        return
    if parts.scheme not in ("http", "https", "ws", "wss", "socks5", "socks4") or not parts.netloc:
        return
    if parts.password:
        yield parts.password
    if parts.path.strip("/"):
        yield parts.path
        yield parts.path.lstrip("/")
        yield from (segment for segment in parts.path.split("/") if _token_like(segment))
    if parts.query:
        yield parts.query
        yield from (v for _, v in parse_qsl(parts.query) if len(v) >= MIN_SECRET_LENGTH)
    if parts.fragment:
        yield parts.fragment


def variants(secret: str) -> set[str]:
    """`secret` and the forms it travels in, each long enough to be masked safely."""
    found = {secret, *_url_parts(secret)}
    bot = _BOT_TOKEN.match(secret)
    if bot is not None:
        found.add(bot.group("secret"))
    spelled = set()
    for value in found:
        spelled.update({quote(value, safe=""), quote(value), json.dumps(value)[1:-1]})
    return {value for value in found | spelled if len(value) >= MIN_SECRET_LENGTH}


class Redactor:
    """Masks the given secrets (with their `variants`) and the `TEXT_PATTERNS` in any text."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self.values: frozenset[str] = frozenset()
        self._pattern: re.Pattern[str] | None = None
        self.add(secrets)

    def add(self, secrets: Iterable[str | None]) -> None:
        found = set(self.values)
        for secret in secrets:
            if secret:
                found.update(variants(secret))
        self.values = frozenset(found)
        # Longest first, so a whole URL is masked before one of its segments could be.
        ordered = sorted(self.values, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(v) for v in ordered)) if ordered else None

    def text(self, text: str) -> str:
        if self._pattern is not None:
            text = self._pattern.sub(MASK, text)
        for pattern, replacement in TEXT_PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    __call__ = text

    def value(self, value: Any) -> Any:
        """A copy of JSON-like data (dicts, lists, strings...) with every string redacted."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(item) for item in value]
        return value

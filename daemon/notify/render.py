"""Alert -> the payload each chat platform expects. Pure: no I/O, no clock (times come from the alert).

Every platform shows the same facts, in the same order, so a person reading any channel sees at a glance who,
what, how close and what marginguard did: account, symbol, side, size, mark, liquidation price, distance in %,
margin ratio and the action. A firing alert leads with its severity's colour dot; an all-clear leads with a
green tick and the word RESOLVED, so the two can't be confused in a notification preview. A figure the
exchange did not give reads "unknown", never 0.
"""

from __future__ import annotations

import html
import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from daemon.core.alerts import Alert, AlertKind, Severity

WEBHOOK_SCHEMA_VERSION = 1
UNKNOWN = "unknown"

SEVERITY_EMOJI = {Severity.CRITICAL: "🔴", Severity.WARNING: "🟠", Severity.INFO: "🔵"}
RESOLVED_EMOJI = "✅"
# Discord embed colours (0xRRGGBB): red, amber, blue; green for an all-clear.
SEVERITY_COLOUR = {Severity.CRITICAL: 0xD7263D, Severity.WARNING: 0xF5A623, Severity.INFO: 0x3B82F6}
RESOLVED_COLOUR = 0x2EB67D

KIND_LABEL = {
    AlertKind.LIQUIDATION_RISK: "Liquidation risk",
    AlertKind.ACCOUNT_MARGIN: "Account margin",
    AlertKind.STALE_DATA: "Stale data",
    AlertKind.DIVERGENCE: "Model divergence",
    AlertKind.LIQUIDATED: "Liquidated",
    AlertKind.TOPUP_DONE: "Top-up done",
    AlertKind.TOPUP_DRY_RUN: "Top-up rehearsal (dry run, nothing sent)",
    AlertKind.TOPUP_FAILED: "Top-up failed",
    AlertKind.TOPUP_REFUSED: "Top-up refused",
    AlertKind.TOPUP_UNKNOWN: "Top-up outcome unknown",
    AlertKind.AUTH_FAILURE: "Authentication failure",
    AlertKind.JOURNAL_FAILURE: "Journal failure",
    AlertKind.SINK_CHECK: "Test message",
}

# Platform limits (characters): Slack header text and section field, Discord embed parts, Telegram message.
SLACK_HEADER_MAX = 150
SLACK_FIELD_MAX = 2000
DISCORD_TITLE_MAX = 256
DISCORD_DESCRIPTION_MAX = 4096
DISCORD_FIELD_MAX = 1024
DISCORD_CONTENT_MAX = 2000
TELEGRAM_TEXT_MAX = 4096
TELEGRAM_CAPTION_MAX = 1024  # a photo's caption, counted as shown (markup aside)
CHART_LINK_TEXT = "📈 Incident chart: mark vs liquidation price, last 15 minutes"


def number(value: float | None) -> str:
    """A price or size with up to 8 significant digits and thousands separators; "unknown" when not given."""
    if value is None or not math.isfinite(value):
        return UNKNOWN
    return f"{value:,.8g}"


def percent(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return UNKNOWN
    return f"{value * 100:.2f}%"


def iso_time(ts: float) -> str:
    """ISO 8601 in UTC with milliseconds, e.g. 2026-11-25T12:00:00.000Z."""
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def idempotency_key(alert: Alert) -> str:
    """The identity key, the sequence and the journal instance that numbered it (`key#sequence@origin`): the
    same message always carries the same key, retries and restarts included, and no other message ever does.

    Characters outside printable ASCII are percent-encoded (UTF-8) so the key also fits an HTTP header.
    """
    origin = f"@{alert.origin}" if alert.origin else ""
    return quote(f"{alert.identity.key}#{alert.sequence}{origin}", safe="|#:/-_.@ +=,;~!*'()$")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True, slots=True)
class Card:
    """What every platform shows, already formatted as plain text (each renderer escapes for its markup)."""

    emoji: str
    status: str  # "CRITICAL" | "WARNING" | "INFO" | "RESOLVED"
    kind: str
    subject: str
    summary: str
    fields: tuple[tuple[str, str], ...]
    footer: str
    time: str

    @property
    def title(self) -> str:
        return f"{self.emoji} {self.status} · {self.kind} · {self.subject}"

    @property
    def headline(self) -> str:
        """One line for notification previews and plain-text fallbacks."""
        return f"{self.emoji} {self.status} {self.kind}: {self.summary}"


def _figures(alert: Alert) -> list[tuple[str, str]]:
    return [
        ("Mark", number(alert.mark_price)),
        ("Liquidation", number(alert.liquidation_price)),
        ("Distance", percent(alert.distance)),
        ("Margin ratio", percent(alert.margin_ratio)),
        ("Action", alert.action or "alert only"),
    ]


def card(alert: Alert) -> Card:
    status = "RESOLVED" if alert.resolved else alert.severity.value.upper()
    emoji = RESOLVED_EMOJI if alert.resolved else SEVERITY_EMOJI[alert.severity]
    subject = " ".join(part for part in (alert.account, alert.symbol, alert.side) if part)
    fields: list[tuple[str, str]] = [("Account", f"{alert.account} ({alert.exchange})")]
    if alert.kind is AlertKind.SINK_CHECK:  # no account, no figures: only what the message is
        subject, fields = "marginguard", [("Concerns", "this destination only: no position")]
    elif alert.symbol is None:
        fields.append(("Symbol", "account-wide"))
    else:
        size = UNKNOWN if number(alert.contracts) == UNKNOWN else f"{number(alert.contracts)} contracts"
        fields += [("Symbol", alert.symbol), ("Side", alert.side or UNKNOWN), ("Size", size)]
    if alert.kind is not AlertKind.SINK_CHECK:
        fields += _figures(alert)
    when = iso_time(alert.ts)
    return Card(
        emoji=emoji,
        status=status,
        kind=KIND_LABEL[alert.kind],
        subject=subject,
        summary=alert.summary,
        fields=tuple(fields),
        footer=f"marginguard · {alert.identity.rule} · message #{alert.sequence} · {when}",
        time=when,
    )


# -- Slack: incoming webhook with Block Kit, and a text fallback for notifications -------------------------------


def _slack_escape(text: str) -> str:
    # Slack's mrkdwn treats <, > and & as control characters (links, mentions); these three are all it needs.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render_slack(alert: Alert, chart_url: str | None = None) -> dict[str, Any]:
    """`chart_url`: where the message's incident chart can be opened (the status page's address), or None."""
    c = card(alert)
    fields = [
        {"type": "mrkdwn", "text": _clip(f"*{label}*\n{_slack_escape(value)}", SLACK_FIELD_MAX)}
        for label, value in c.fields
    ]
    return {
        "text": _slack_escape(c.headline),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": _clip(c.title, SLACK_HEADER_MAX)}},
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": _clip(_slack_escape(c.summary), SLACK_FIELD_MAX)},
                "fields": fields[:10],  # Slack allows at most ten fields per section
            },
            *_slack_chart_link(chart_url),
            {"type": "context", "elements": [{"type": "mrkdwn", "text": _slack_escape(c.footer)}]},
        ],
    }


def _slack_chart_link(chart_url: str | None) -> list[dict[str, Any]]:
    # A link, not an image block: Slack fetches an image block's URL itself and refuses the whole message when it
    # cannot, and the status page is often reachable only from the user's own network.
    if chart_url is None:
        return []
    link = f"<{_slack_escape(chart_url)}|{CHART_LINK_TEXT}>"
    return [{"type": "section", "text": {"type": "mrkdwn", "text": link}}]


# -- Discord: webhook with one embed ------------------------------------------------------------------------------

_DISCORD_MARKDOWN = re.compile(r"([\\*_~`|])")


def _discord_escape(text: str) -> str:
    return _DISCORD_MARKDOWN.sub(r"\\\1", text)


def render_discord(alert: Alert, image: str | None = None) -> dict[str, Any]:
    """`image`: the file name of the incident chart sent with the message (`files[0]`), shown in the embed."""
    c = card(alert)
    colour = RESOLVED_COLOUR if alert.resolved else SEVERITY_COLOUR[alert.severity]
    payload: dict[str, Any] = {
        "content": _clip(_discord_escape(c.headline), DISCORD_CONTENT_MAX),
        "embeds": [
            {
                "title": _clip(_discord_escape(c.title), DISCORD_TITLE_MAX),
                "description": _clip(_discord_escape(c.summary), DISCORD_DESCRIPTION_MAX),
                "color": colour,
                "fields": [
                    {"name": label, "value": _clip(_discord_escape(value), DISCORD_FIELD_MAX), "inline": True}
                    for label, value in c.fields
                ],
                "timestamp": c.time,
                "footer": {"text": c.footer},
            }
        ],
        # An account or symbol name must never ping @everyone or a role.
        "allowed_mentions": {"parse": []},
    }
    if image is not None:
        payload["embeds"][0]["image"] = {"url": f"attachment://{image}"}
        payload["attachments"] = [{"id": 0, "filename": image, "description": CHART_LINK_TEXT[2:]}]
    return payload


# -- Telegram: Bot API sendMessage with HTML ---------------------------------------------------------------------


def _html(text: str) -> str:
    return html.escape(text, quote=False)


def _telegram_text(c: Card) -> str:
    lines = [
        f"<b>{_html(c.emoji)} {_html(c.status)} · {_html(c.kind)}</b>",
        f"<b>{_html(c.subject)}</b>",
        _html(c.summary),
        "",
        *(f"{_html(label)}: <b>{_html(value)}</b>" for label, value in c.fields),
        "",
        f"<i>{_html(c.footer)}</i>",
    ]
    return "\n".join(lines)


def telegram_shown_length(text: str) -> int:
    """How long Telegram counts an HTML text (a caption's limit applies to what is shown, tags aside)."""
    return len(html.unescape(re.sub(r"<[^>]+>", "", text)))


def render_telegram(alert: Alert, chat_id: str) -> dict[str, Any]:
    c = card(alert)
    text = _telegram_text(c)
    if len(text) > TELEGRAM_TEXT_MAX:
        # Clipping HTML could cut a tag in half; fall back to a short form that always fits.
        text = f"<b>{_html(c.title)}</b>\n{_html(_clip(c.summary, TELEGRAM_TEXT_MAX // 2))}"
    return {"chat_id": chat_id, "text": text, "parse_mode": "HTML", "disable_web_page_preview": True}


_CAPTION_FIGURES = ("Mark", "Liquidation", "Distance", "Action")


def render_telegram_caption(alert: Alert) -> str:
    """The caption of a message sent as a photo (its incident chart): the whole message when it fits Telegram's
    1,024 characters; else a short form that keeps what matters at a glance — the title, the position's figures
    and what was done — and shortens the summary to fit. One request either way (a second message for the rest
    could be half-delivered and then repeated by a retry)."""
    c = card(alert)
    text = _telegram_text(c)
    if telegram_shown_length(text) <= TELEGRAM_CAPTION_MAX:
        return text
    head = f"<b>{_html(_clip(c.title, 200))}</b>"
    figures = "\n".join(
        f"{_html(label)}: <b>{_html(_clip(value, 120))}</b>"
        for label, value in c.fields
        if label in _CAPTION_FIGURES
    )
    room = TELEGRAM_CAPTION_MAX - telegram_shown_length(head) - telegram_shown_length(figures) - 2
    return f"{head}\n{_html(_clip(c.summary, max(room, 1)))}\n{figures}"


# -- Generic JSON webhook (schema documented in docs/webhook.md) -------------------------------------------------


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def render_webhook(alert: Alert, chart_url: str | None = None) -> dict[str, Any]:
    """`chart_url`: where the message's incident chart can be fetched; the field is absent when there is none."""
    identity = alert.identity
    document = {
        "schema_version": WEBHOOK_SCHEMA_VERSION,
        "idempotency_key": idempotency_key(alert),
        "key": identity.key,
        "sequence": alert.sequence,
        "origin": alert.origin,
        "identity": {
            "account": identity.account,
            "symbol": identity.symbol,
            "side": identity.side,
            "rule": identity.rule,
        },
        "status": "resolved" if alert.resolved else "firing",
        "resolved": alert.resolved,
        "kind": alert.kind.value,
        "severity": alert.severity.value,
        "ts": alert.ts,
        "time": iso_time(alert.ts),
        "account": alert.account,
        "exchange": alert.exchange,
        "symbol": alert.symbol,
        "side": alert.side,
        "contracts": _finite(alert.contracts),
        "mark_price": _finite(alert.mark_price),
        "liquidation_price": _finite(alert.liquidation_price),
        "distance": _finite(alert.distance),
        "margin_ratio": _finite(alert.margin_ratio),
        "action": alert.action,
        "summary": alert.summary,
    }
    if chart_url is not None:
        document["chart_url"] = chart_url
    return document


def encode(payload: dict[str, Any]) -> bytes:
    """The exact bytes sent (and, for the webhook, signed): compact UTF-8 JSON, keys sorted."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

"""Alerts to and from JSON, for the journal and the outbox (one format, so a journaled alert is what is sent)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from daemon.core.alerts import Alert, AlertIdentity, AlertKind, Severity


def alert_to_dict(alert: Alert) -> dict[str, Any]:
    data = asdict(alert)
    data["kind"] = alert.kind.value
    data["severity"] = alert.severity.value
    data["key"] = alert.identity.key
    return data


def alert_from_dict(data: dict[str, Any]) -> Alert:
    fields = {k: v for k, v in data.items() if k not in ("identity", "kind", "severity", "key")}
    return Alert(
        identity=AlertIdentity(**data["identity"]),
        kind=AlertKind(data["kind"]),
        severity=Severity(data["severity"]),
        **fields,
    )


def alert_to_json(alert: Alert) -> str:
    return json.dumps(alert_to_dict(alert), sort_keys=True, allow_nan=False)


def alert_from_json(text: str) -> Alert:
    return alert_from_dict(json.loads(text))


def alert_row(alert: Alert) -> tuple[Any, ...]:
    """The journal's `alerts` columns (key, sequence, ts, account, kind, severity, resolved, payload)."""
    return (
        alert.identity.key,
        alert.sequence,
        alert.ts,
        alert.account,
        alert.kind.value,
        alert.severity.value,
        int(alert.resolved),
        alert_to_json(alert),
    )


def same_message(payload: str, alert: Alert) -> bool:
    """Whether a journaled payload is this alert (whichever journal instance numbered it)."""
    stored = json.loads(payload)
    stored.pop("origin", None)
    mine = alert_to_dict(alert)
    mine.pop("origin", None)
    return bool(stored == json.loads(json.dumps(mine)))

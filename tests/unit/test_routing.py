"""Which chats get which alert: by severity and account, and an all-clear reaches whoever heard the alarm."""

from __future__ import annotations

import dataclasses

import pytest

from daemon.core.alerts import Alert, AlertIdentity, AlertKind, Severity
from daemon.notify.routing import Route, Router, route_alert

SINKS = ("ops-slack", "pager-telegram", "audit-webhook")

ROUTES = (
    Route(sinks=("pager-telegram",), severities=("critical",)),
    Route(sinks=("ops-slack",), severities=("warning", "critical"), accounts=("main",)),
    Route(sinks=("audit-webhook",)),  # everything, every account
)


def alert(account: str = "main", severity: Severity = Severity.WARNING, resolved: bool = False) -> Alert:
    return Alert(
        identity=AlertIdentity(account, "ETH/USDT:USDT", "short", "liquidation_risk"),
        kind=AlertKind.LIQUIDATION_RISK,
        severity=severity,
        resolved=resolved,
        ts=1.0,
        account=account,
        exchange="bybit",
        symbol="ETH/USDT:USDT",
        side="short",
        contracts=2.0,
        mark_price=3000.0,
        liquidation_price=3100.0,
        distance=0.033,
        margin_ratio=None,
        action=None,
        summary="ETH short warning",
        sequence=1,
    )


@pytest.mark.parametrize(
    ("account", "severity", "expected"),
    [
        ("main", Severity.CRITICAL, ["ops-slack", "pager-telegram", "audit-webhook"]),
        ("main", Severity.WARNING, ["ops-slack", "audit-webhook"]),
        ("main", Severity.INFO, ["audit-webhook"]),
        ("hedge", Severity.CRITICAL, ["pager-telegram", "audit-webhook"]),
        ("hedge", Severity.WARNING, ["audit-webhook"]),
    ],
)
def test_firing_alerts_go_to_the_routes_matching_severity_and_account(
    account: str, severity: Severity, expected: list[str]
) -> None:
    assert route_alert(alert(account, severity), ROUTES, SINKS) == expected


def test_without_routes_every_sink_gets_everything() -> None:
    assert route_alert(alert(severity=Severity.INFO), (), SINKS) == list(SINKS)


def test_a_route_matching_nothing_sends_nowhere() -> None:
    only_critical = (Route(sinks=("pager-telegram",), severities=("critical",)),)
    assert route_alert(alert(severity=Severity.WARNING), only_critical, SINKS) == []


@pytest.mark.parametrize(
    ("heard", "expected"),
    [
        # Known: the all-clear goes where the alarm went, plus routes that take info.
        ({"pager-telegram"}, ["pager-telegram", "audit-webhook"]),
        (set(), ["audit-webhook"]),
        # Unknown (after a restart): every sink routed for the account, whatever its severities.
        (None, ["ops-slack", "pager-telegram", "audit-webhook"]),
    ],
)
def test_a_resolved_message_reaches_whoever_heard_the_alarm(
    heard: set[str] | None, expected: list[str]
) -> None:
    resolved = alert(severity=Severity.INFO, resolved=True)
    assert route_alert(resolved, ROUTES, SINKS, heard) == expected


def test_router_remembers_who_heard_each_conversation_until_it_resolves() -> None:
    router = Router(ROUTES, SINKS)
    assert router.sinks_for(alert("hedge", Severity.WARNING)) == ["audit-webhook"]
    escalated = dataclasses.replace(alert("hedge", Severity.CRITICAL), sequence=2)
    assert router.sinks_for(escalated) == ["pager-telegram", "audit-webhook"]
    resolved = dataclasses.replace(alert("hedge", Severity.INFO, resolved=True), sequence=3)
    assert router.sinks_for(resolved) == ["pager-telegram", "audit-webhook"]
    # The conversation is over: a new one starts from its own severity.
    assert router.sinks_for(dataclasses.replace(alert("hedge"), sequence=4)) == ["audit-webhook"]

"""Which sinks get an alert, by severity and account. Pure.

Without routes every sink gets everything. With routes, an alert goes to the union of the sinks of every route
that matches its severity and account ("*" matches any account), in the order the sinks were configured.

An all-clear must reach everyone who heard the alarm, although a resolved message carries severity "info": a
route for critical alerts only would otherwise never tell its channel that the danger is over. So a resolved
message also goes to the sinks that heard the conversation (`heard`), and when that is not known (after a
restart), to every sink routed for the account at any severity. `Router` keeps `heard` per identity in memory.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from daemon.core.alerts import Alert, Severity

ALL_SEVERITIES: tuple[str, ...] = tuple(s.value for s in Severity)
ANY_ACCOUNT = "*"


class RouteLike(Protocol):
    """Anything with these three lists (the settings' route section is one)."""

    @property
    def severities(self) -> Sequence[str]: ...

    @property
    def accounts(self) -> Sequence[str]: ...

    @property
    def sinks(self) -> Sequence[str]: ...


@dataclass(frozen=True, slots=True)
class Route:
    sinks: tuple[str, ...]
    severities: tuple[str, ...] = ALL_SEVERITIES
    accounts: tuple[str, ...] = (ANY_ACCOUNT,)


def _for_account(route: RouteLike, account: str) -> bool:
    return ANY_ACCOUNT in route.accounts or account in route.accounts


def route_alert(
    alert: Alert,
    routes: Sequence[RouteLike],
    sink_names: Sequence[str],
    heard: Collection[str] | None = None,
) -> list[str]:
    """The names of the sinks that get `alert`, in `sink_names` order.

    `heard`: the sinks that got earlier messages of this alert's identity; None when unknown.
    """
    if not routes:
        return list(sink_names)
    wanted: set[str] = set()
    for route in routes:
        if not _for_account(route, alert.account):
            continue
        if alert.severity.value in route.severities or (alert.resolved and heard is None):
            wanted.update(route.sinks)
    if alert.resolved and heard:
        wanted.update(heard)
    return [name for name in sink_names if name in wanted]


@dataclass
class Router:
    """`route_alert` with the memory of who heard each conversation (by identity key), so all-clears follow.

    Pure state, no I/O: the caller asks it for the sinks of each alert in the order alerts are made.
    """

    routes: Sequence[RouteLike]
    sink_names: Sequence[str]
    heard: dict[str, frozenset[str]] = field(default_factory=dict)

    def sinks_for(self, alert: Alert) -> list[str]:
        key = alert.identity.key
        names = route_alert(alert, self.routes, self.sink_names, self.heard.get(key))
        if alert.resolved:
            self.heard.pop(key, None)
        else:
            self.heard[key] = self.heard.get(key, frozenset()) | frozenset(names)
        return names

"""An account driven by feed events through the real `state.apply` and `view.view`, then the alert policy.

The reference leg: Binance isolated long, 1 BTC at 100 USDT with 10 USDT isolated margin, one maintenance tier
of 1 % and no fee. Its liquidation price solves 10 + (P - 100) = 0.01 P, so P = 90 / 0.99 = 90.909...; its
distance to liquidation at mark M is (M - 90.909) / M, so `mark_at(d)` = 90.909 / (1 - d).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from daemon.core.alerts import Alert
from daemon.core.events import (
    BalanceUpdate,
    Event,
    Freshness,
    MarketRules,
    MarkPrice,
    PositionFacts,
    PositionSnapshot,
    PositionUpdate,
    StreamHealth,
)
from daemon.core.policy import decide
from daemon.core.policy_memory import PolicyMemory
from daemon.core.policy_rules import RuleSet, Silence, Thresholds
from daemon.core.state import AccountState, Change, apply
from daemon.core.types import ContractType, MarginMode, Side, Tier
from daemon.core.view import AccountView, view

BTC = "BTC/USDT:USDT"
ETH = "ETH/USDT:USDT"
ACCOUNT = "acct"
LIQUIDATION = 90.0 / 0.99  # the reference leg's liquidation price


def mark_at(distance: float) -> float:
    """The mark at which the reference leg is `distance` (fraction of mark) away from liquidation."""
    return LIQUIDATION / (1.0 - distance)


def rules_for(symbol: str) -> MarketRules:
    return MarketRules(symbol, 1.0, ContractType.LINEAR, (Tier(0.0, 0.01, 0.0),))


def isolated_long(symbol: str = BTC, contracts: float = 1.0, **extra: object) -> PositionFacts:
    base: dict[str, object] = dict(entry_price=100.0, margin_mode=MarginMode.ISOLATED, isolated_margin=10.0)
    base.update(extra)
    return PositionFacts(symbol, Side.LONG, contracts, **base)  # type: ignore[arg-type]


def cross_long(symbol: str = BTC, contracts: float = 1.0, **extra: object) -> PositionFacts:
    base: dict[str, object] = dict(entry_price=100.0, margin_mode=MarginMode.CROSS, leverage=20.0)
    base.update(extra)
    return PositionFacts(symbol, Side.LONG, contracts, **base)  # type: ignore[arg-type]


def ms(now: float) -> int:
    return int(now * 1000)


def snapshot(now: float, *legs: PositionFacts) -> PositionSnapshot:
    return PositionSnapshot(tuple(legs), ms(now))


def mark(now: float, price: float, symbol: str = BTC) -> MarkPrice:
    return MarkPrice(symbol, price, ms(now))


def stream(now: float, name: str, freshness: Freshness, detail: str = "") -> StreamHealth:
    return StreamHealth(name, freshness, ms(now), detail)


def balance(now: float, wallet: float) -> BalanceUpdate:
    return BalanceUpdate(wallet, ms(now))


def closed(now: float, symbol: str = BTC) -> PositionUpdate:
    return PositionUpdate((PositionFacts(symbol, Side.LONG, 0.0),), ms(now))


def prompt(**values: float | None) -> Thresholds:
    """The default thresholds, except that a level is reported as soon as it is crossed (no minimum duration)."""
    return Thresholds(**{"min_duration_s": 0.0, **values})  # type: ignore[arg-type]


@dataclass
class Feed:
    """One account: events in, alerts out, the policy memory carried between steps like the runner does."""

    thresholds: Thresholds = field(default_factory=prompt)
    rule_set: RuleSet | None = None
    silences: list[Silence] = field(default_factory=list)
    state: AccountState = field(default_factory=lambda: AccountState(ACCOUNT, "binance"))
    memory: PolicyMemory = field(default_factory=PolicyMemory)

    def __post_init__(self) -> None:
        self.state, _ = apply(self.state, rules_for(BTC))
        self.state, _ = apply(self.state, rules_for(ETH))

    @property
    def rules(self) -> RuleSet:
        return self.rule_set if self.rule_set is not None else RuleSet(self.thresholds)

    def view(self) -> AccountView:
        return view(self.state)

    def step(self, now: float, *events: Event) -> list[Alert]:
        changes: list[Change] = []
        for event in events:
            self.state, found = apply(self.state, event)
            changes.extend(found)
        return self.decide(now, changes)

    def decide(self, now: float, changes: Sequence[Change] = ()) -> list[Alert]:
        self.memory, alerts = decide(
            self.view(),
            self.state.health,
            changes,
            self.rules,
            self.memory,
            self.silences,
            now,
            exchange=self.state.family,
            positions_known=self.state.last_snapshot_ms is not None,
        )
        return list(alerts)

    def at_distance(self, now: float, distance: float) -> list[Alert]:
        """Move the reference leg's mark so that it is `distance` from liquidation, and decide."""
        return self.step(now, mark(now, mark_at(distance)))


def brief(alerts: Sequence[Alert]) -> list[tuple[str, str, bool]]:
    """(rule, severity, resolved) per message: what a receiver would see at a glance."""
    return [(a.identity.rule, a.severity.value, a.resolved) for a in alerts]

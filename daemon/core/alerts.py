"""The alert vocabulary: what marginguard tells a person, and the identity that deduplicates it.

An alert is a value. The policy decides it, the journal records it, the outbox delivers it, and a receiver can
order and dedupe it by `(identity.key, sequence)`. Figures the exchange did not give are None ("unknown"),
never 0.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Severity(enum.Enum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class AlertKind(enum.Enum):
    LIQUIDATION_RISK = "liquidation_risk"  # a position's distance to liquidation / margin ratio
    ACCOUNT_MARGIN = "account_margin"  # a cross account's margin ratio
    STALE_DATA = "stale_data"  # a stream silent past its threshold: marginguard may be blind
    DIVERGENCE = "divergence"  # model vs exchange liquidation price beyond tolerance
    LIQUIDATED = "liquidated"  # a position vanished while near liquidation / was liquidated
    TOPUP_DONE = "topup_done"
    TOPUP_FAILED = "topup_failed"
    TOPUP_REFUSED = "topup_refused"
    AUTH_FAILURE = "auth_failure"


@dataclass(frozen=True, slots=True)
class AlertIdentity:
    """Who an alert is about and which rule raised it; one identity is one conversation (fire ... resolve).

    `rule` names the rule and, where a rule has several subjects (a stream), the subject too, e.g.
    "liquidation_risk" or "stale_data:positions".
    """

    account: str
    symbol: str | None
    side: str | None
    rule: str

    @property
    def key(self) -> str:
        """A stable string for deduplication, the journal and outbox idempotency.

        Parts are joined with "|" and a missing symbol or side is "-", so keys never collide between an
        account-wide alert and a position's.
        """
        return "|".join((self.account, self.symbol or "-", self.side or "-", self.rule))


@dataclass(frozen=True, slots=True)
class Alert:
    """One message: a firing alert (`resolved=False`) or the all-clear for its identity (`resolved=True`).

    `distance` is the fraction of the mark price the market must move against the position to reach its
    liquidation price. `action` says what marginguard did ("added 120.5 USDT margin", "dry run: would add ...",
    "alert only"), None when nothing was attempted. `sequence` grows by one per message of the same identity.
    """

    identity: AlertIdentity
    kind: AlertKind
    severity: Severity
    resolved: bool
    ts: float
    account: str
    exchange: str
    symbol: str | None
    side: str | None
    contracts: float | None
    mark_price: float | None
    liquidation_price: float | None
    distance: float | None
    margin_ratio: float | None
    action: str | None
    summary: str
    sequence: int

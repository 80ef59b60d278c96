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
    TOPUP_DRY_RUN = "topup_dry_run"  # a rehearsal: what a top-up would have done; nothing was sent
    TOPUP_FAILED = "topup_failed"
    TOPUP_REFUSED = "topup_refused"
    TOPUP_UNKNOWN = (
        "topup_unknown"  # a top-up's outcome cannot be told yet: nothing more is done for that position
    )
    AUTH_FAILURE = "auth_failure"
    JOURNAL_FAILURE = (
        "journal_failure"  # the journal cannot be written: alerts go out from memory, no top-ups
    )
    SINK_CHECK = "test"  # `marginguard test-alert`: proves a sink delivers; no account or position concerned


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
    `origin` names the journal instance that numbered the message (set when it is journaled): a message is
    `(identity.key, sequence, origin)`, so a journal that was lost, or a memory that did not survive a crash,
    can never make a new message look like one a receiver has already seen.
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
    origin: str = ""


JOURNAL_IDENTITY = AlertIdentity("*", None, None, "journal_failure")


def journal_failure_alert(reason: str | None, sequence: int, now: float) -> Alert:
    """The daemon-wide alert that its journal cannot be written (`reason`), or its all-clear (`reason` None)."""
    if reason is None:
        summary = "marginguard's journal can be written again: alerts are durable and top-ups may start again"
        severity, action = Severity.INFO, None
    else:
        summary = (
            f"marginguard's journal cannot be written ({reason}): alerts go out from memory and are lost if the "
            "daemon stops; no top-up is started until it can be written"
        )
        severity, action = Severity.CRITICAL, "top-ups paused"
    return Alert(
        identity=JOURNAL_IDENTITY,
        kind=AlertKind.JOURNAL_FAILURE,
        severity=severity,
        resolved=reason is None,
        ts=now,
        account="*",
        exchange="-",
        symbol=None,
        side=None,
        contracts=None,
        mark_price=None,
        liquidation_price=None,
        distance=None,
        margin_ratio=None,
        action=action,
        summary=summary,
        sequence=sequence,
    )


def sink_check_alert(sink: str, now: float) -> Alert:
    """The clearly labelled message `marginguard test-alert` sends through `sink`. Its sequence is the moment it
    was sent (ms), so each test is a message of its own to a receiver that drops repeats."""
    return Alert(
        identity=AlertIdentity("*", None, None, f"test:{sink}"),
        kind=AlertKind.SINK_CHECK,
        severity=Severity.INFO,
        resolved=False,
        ts=now,
        account="*",
        exchange="",
        symbol=None,
        side=None,
        contracts=None,
        mark_price=None,
        liquidation_price=None,
        distance=None,
        margin_ratio=None,
        action=None,
        summary=(
            f"TEST MESSAGE from marginguard through the sink {sink!r}: alerts reach this destination. "
            "No position is concerned and nothing needs doing."
        ),
        sequence=int(now * 1000),
    )

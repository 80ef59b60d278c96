"""Top-up outcomes as alerts: done, failed, unknown or refused, numbered in the same memory as every other alert.

A refusal that has not changed is not re-sent until the repeat interval has passed (a leg under its trigger
would otherwise be refused on every tick); a done or failed top-up is always told. An unknown outcome is told
once per intent: marginguard is asking the exchange's records, and a top-up that landed is never told failed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from daemon.core.alerts import Alert, AlertIdentity, AlertKind, Severity
from daemon.core.policy import leg_figures, risk_identity
from daemon.core.policy_memory import Level, Notice, PolicyMemory
from daemon.core.policy_rules import RuleSet, Silence
from daemon.core.policy_text import compose_alert, number
from daemon.core.topup import Refused, TopUp, TopUpMethod
from daemon.core.view import LegView


@dataclass(frozen=True, slots=True)
class TopUpExecuted:
    """The exchange accepted the top-up (or, in a dry run, it would have been sent)."""

    topup: TopUp
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class TopUpFailed:
    """The exchange refused the top-up, or its records show it never landed and no longer can."""

    topup: TopUp
    error: str


@dataclass(frozen=True, slots=True)
class TopUpUnknown:
    """Whether the top-up landed cannot be told yet (its answer was lost and the exchange's records cannot be
    read), or ever (its position closed first). Nothing more is decided for the position until it is known."""

    topup: TopUp
    reason: str


TopUpOutcome = TopUpExecuted | TopUpFailed | TopUpUnknown | Refused


def describe(topup: TopUp, currency: str) -> str:
    """The move in words: "add 5.625 USDT margin" or "transfer 6.9 USDT from spot"."""
    amount = f"{number(topup.amount)} {currency}"
    if topup.method is TopUpMethod.TRANSFER:
        return f"transfer {amount} from {topup.source} to the futures wallet"
    return f"add {amount} margin"


def _past(move: str) -> str:
    verb, _, rest = move.partition(" ")
    return {"add": "added", "transfer": "transferred"}.get(verb, verb) + " " + rest


def announce_topup(
    memory: PolicyMemory,
    leg: LegView,
    outcome: TopUpOutcome,
    rules: RuleSet,
    silences: Sequence[Silence],
    now: float,
    *,
    account: str,
    exchange: str,
    currency: str,
) -> tuple[PolicyMemory, Alert | None]:
    """The alert telling a top-up's outcome for `leg` (None when muted or an unchanged refusal), and the memory."""
    symbol, side = leg.key[0], leg.key[1].value
    subject = f"{account} {symbol} {side}"
    if isinstance(outcome, Refused):
        kind, severity = AlertKind.TOPUP_REFUSED, Severity.WARNING
        action = "alert only" if outcome.reason.startswith("alert only") else f"refused: {outcome.reason}"
        summary = f"{subject}: top-up refused: {outcome.reason}"
    elif isinstance(outcome, TopUpFailed):
        kind, severity = AlertKind.TOPUP_FAILED, Severity.CRITICAL
        move = describe(outcome.topup, currency)
        action = f"failed to {move}: {outcome.error}"
        summary = f"{subject}: top-up failed ({move}): {outcome.error}"
    elif isinstance(outcome, TopUpUnknown):
        kind, severity = AlertKind.TOPUP_UNKNOWN, Severity.CRITICAL
        move = describe(outcome.topup, currency)
        action = f"outcome unknown: {move}"
        summary = f"{subject}: top-up outcome unknown ({move}): {outcome.reason}"
    elif outcome.dry_run:  # its own kind: a rehearsal must never read as money moved
        kind, severity = AlertKind.TOPUP_DRY_RUN, Severity.INFO
        move = describe(outcome.topup, currency)
        action = f"dry run: would {move}"
        capped = f"; {outcome.topup.capped_by}" if outcome.topup.capped_by else ""
        summary = f"{subject}: DRY RUN, nothing sent: would {move}{capped}"
    else:
        kind, severity = AlertKind.TOPUP_DONE, Severity.INFO
        move = describe(outcome.topup, currency)
        action = _past(move)
        capped = f"; {outcome.topup.capped_by}" if outcome.topup.capped_by else ""
        summary = f"{subject}: {action}{capped}"

    identity = AlertIdentity(account, symbol, side, kind.value)
    key = identity.key
    # Refusals are told again only when their rule changes or the repeat interval has passed; the text alone
    # would differ on every tick as the figures in it move.
    topic = outcome.code if isinstance(outcome, Refused) else summary
    if isinstance(outcome, TopUpUnknown):
        topic = f"unknown:{outcome.topup.intent_key}"
        last = memory.notices.get(key)
        if last is not None and last.topic == topic:
            return memory, None
    if isinstance(outcome, Refused):
        # A refusal speaks of an alarm: never before the position's own risk alert has been sent (a trigger
        # above the warning distance, or a warning still proving its minimum duration); it is told once it has.
        risk = memory.tracks.get(risk_identity(account, symbol, leg.key[1]).key)
        if risk is None or risk.notified is Level.OK:
            return memory, None
        repeat = rules.for_symbol(account, symbol).repeat_interval_s
        last = memory.notices.get(key)
        if last is not None and last.topic == topic and (repeat is None or now - last.sent_at < repeat):
            return memory, None
    if any(s.mutes(account, symbol, now) for s in silences):
        return memory, None
    sequence = memory.sequences.get(key, 0) + 1
    alert = compose_alert(identity, kind, severity, False, leg_figures(leg), summary, now, exchange, action)
    remembered = replace(
        memory,
        sequences={**memory.sequences, key: sequence},
        notices={**memory.notices, key: Notice(topic, now)},
    )
    return remembered, replace(alert, sequence=sequence)

"""One plain line per alert message: what is wrong (or fine again), with the figures that say so."""

from __future__ import annotations

from collections.abc import Sequence

from daemon.core.alerts import Alert, AlertIdentity, AlertKind, Severity
from daemon.core.policy_memory import Figures, Level
from daemon.core.policy_rules import Thresholds
from daemon.core.policy_stale import MARKS, Outage


def number(value: float | None) -> str:
    """Prices and amounts with up to 8 significant digits; "unknown" for a figure nobody gave."""
    return "unknown" if value is None else f"{value:.8g}"


def percent(value: float | None) -> str:
    return "unknown" if value is None else f"{value * 100:.2f}%"


def _where(figures: Figures) -> str:
    return (
        f"{percent(figures.distance)} from liquidation at {number(figures.liquidation_price)} "
        f"(mark {number(figures.mark_price)}), margin ratio {percent(figures.margin_ratio)}{_size(figures)}"
    )


def _size(figures: Figures) -> str:
    """The leg's size as a trader reads it: base units and notional (contracts where that is all we know)."""
    if figures.quantity is not None:
        return f"; size {number(figures.quantity)} ({number(figures.notional)} notional)"
    if figures.contracts is not None:
        return f"; size {number(figures.contracts)} contracts"
    return ""


def crossed(level: Level, distance: float | None, ratio: float | None, th: Thresholds) -> str:
    """Which of the level's thresholds the figures are past, with both values ("distance 0.80% <= critical
    2.00%"); for a level held by hysteresis, the threshold it is held at."""
    name = "critical" if level is Level.CRITICAL else "warning"
    limit_d = th.critical_distance if level is Level.CRITICAL else th.warning_distance
    limit_r = th.critical_margin_ratio if level is Level.CRITICAL else th.warning_margin_ratio
    past = []
    if distance is not None and limit_d is not None and distance <= limit_d:
        past.append(f"distance {percent(distance)} <= {name} {percent(limit_d)}")
    if ratio is not None and limit_r is not None and ratio >= limit_r:
        past.append(f"margin ratio {percent(ratio)} >= {name} {percent(limit_r)}")
    if past:
        return " and ".join(past)
    held = [
        f"distance {percent(limit_d)}" if limit_d is not None else "",
        f"margin ratio {percent(limit_r)}" if limit_r is not None else "",
    ]
    return f"held within {percent(th.hysteresis)} of the {name} " + " / ".join(h for h in held if h)


def position_risk(
    subject: str, level: Level, figures: Figures, th: Thresholds, own_ratio: float | None
) -> str:
    if level is Level.OK:
        return f"{subject} is clear of its thresholds again: {_where(figures)}"
    word = "critical" if level is Level.CRITICAL else "warning"
    return f"{subject} {word} ({crossed(level, figures.distance, own_ratio, th)}): {_where(figures)}"


def position_gone(subject: str, how: str) -> str:
    return f"{subject} {how}; its alerts are over"


def liquidated(subject: str, how: str, figures: Figures) -> str:
    return f"{subject} {how} while near liquidation, probably liquidated; last seen {_where(figures)}"


def liquidated_by_exchange(
    subject: str, price: float | None, contracts: float | None, source: str, last: Figures
) -> str:
    size = f"{number(contracts)} contracts " if contracts is not None else ""
    said = f" ({source})" if source else ""
    return (
        f"{subject} LIQUIDATED: {size}liquidated by the exchange at {number(price)}{said}; "
        f"last seen {_where(last)}"
    )


def gone_unexplained(subject: str, detail: str, last: Figures) -> str:
    why = f" ({detail})" if detail else ""
    return (
        f"{subject} vanished from the exchange's positions and the cause is unknown: its records could not be "
        f"read{why}, so it may have been liquidated; last seen {_where(last)}"
    )


def account_margin(account: str, level: Level, figures: Figures, has_cross: bool, th: Thresholds) -> str:
    if level is Level.OK:
        if not has_cross:
            return f"{account} has no cross positions left; cross margin alert over"
        return f"{account} cross margin ratio back to {percent(figures.margin_ratio)}"
    if figures.margin_ratio is None:
        return f"{account} cross margin balance is not positive: liquidation is due"
    word = "critical" if level is Level.CRITICAL else "warning"
    return (
        f"{account} cross margin ratio {word} ({crossed(level, None, figures.margin_ratio, th)}): "
        f"{percent(figures.margin_ratio)} (nearest cross position {percent(figures.distance)} from liquidation)"
    )


def _silence(outage: Outage, now: float) -> str:
    state = outage.health.freshness.value
    since = f" for {now - outage.silent_since:.0f} s" if outage.silent_since is not None else ""
    detail = f" ({outage.health.detail})" if outage.health.detail else ""
    return f"{state}{since}{detail}"


def stale(account: str, kind: str, level: Level, outages: Sequence[Outage], now: float) -> str:
    """A kind of stream silent past its threshold (or fresh again); marks list their symbols."""
    if kind == MARKS:
        if level is Level.OK:
            return f"{account} mark prices are fresh again"
        listed = "; ".join(f"{o.symbol} {_silence(o, now)}" for o in outages)
        return f"{account} mark prices stale: {listed}; marginguard may be blind to these positions"
    if level is Level.OK:
        return f"{account} {kind} stream is fresh again"
    said = "; ".join(_silence(o, now) for o in outages)
    return f"{account} {kind} stream is {said}; marginguard may be blind to this account"


def refused(account: str, stream: str, detail: str, cleared: bool = False) -> str:
    if cleared:
        return f"{account}: the exchange accepts marginguard's API key again; watching resumed"
    reason = f" ({detail})" if detail else ""
    return (
        f"{account}: the exchange refused marginguard's API key or its permissions{reason}; this account is NOT "
        "being watched until the key is fixed and marginguard restarted"
    )


def divergence(subject: str, level: Level, model: float | None, exchange: float, tolerance: float) -> str:
    if level is Level.OK:
        return f"{subject} model and exchange liquidation prices agree again"
    if model is None:
        return f"{subject} exchange reports liquidation at {number(exchange)}, the model finds no liquidation price"
    gap = abs(model - exchange) / exchange
    return (
        f"{subject} model liquidation price {number(model)} differs from the exchange's {number(exchange)} "
        f"by {percent(gap)} (tolerance {percent(tolerance)})"
    )


def figures_unknown(subject: str, level: Level, reason: str | None) -> str:
    if level is Level.OK:
        return f"{subject} figures known again"
    return f"{subject} cannot be judged although its streams are fresh: {reason or 'figures unknown'}"


def compose_alert(
    identity: AlertIdentity,
    kind: AlertKind,
    severity: Severity,
    resolved: bool,
    figures: Figures,
    summary: str,
    now: float,
    exchange: str,
    action: str | None = None,
) -> Alert:
    """An alert about `identity` with its figures; sequence 0 until the sender numbers it."""
    return Alert(
        identity=identity,
        kind=kind,
        severity=severity,
        resolved=resolved,
        ts=now,
        account=identity.account,
        exchange=exchange,
        symbol=identity.symbol,
        side=identity.side,
        contracts=figures.contracts,
        mark_price=figures.mark_price,
        liquidation_price=figures.liquidation_price,
        distance=figures.distance,
        margin_ratio=figures.margin_ratio,
        action=action,
        summary=summary,
        sequence=0,
    )

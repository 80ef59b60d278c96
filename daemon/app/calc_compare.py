"""Isolated versus cross margin for the same positions: the question a trader choosing a margin mode asks.

Isolated: each position stands alone on its own margin (its isolated margin, or the initial margin at its
leverage). Cross: every position shares one wallet, the account's cross collateral plus the isolated margins
moved into it, so a position can draw on the others' spare margin and their losses.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from daemon.app.calc_answer import (
    CROSS_RATE_UNKNOWN,
    OVERFLOW,
    RATE_UNKNOWN,
    non_finite,
    overflows,
    unknown_legs,
)
from daemon.app.calc_input import CalcDocument
from daemon.core.margin import evaluate_account
from daemon.core.types import Account, MarginMode, Position, PositionRisk, Side

UNKNOWN_OWN_MARGIN = "isolated margin unknown: give leverage or isolated_margin"


@dataclass(frozen=True, slots=True)
class ModeOutcome:
    liquidation_price: float | None
    distance_to_liquidation: float | None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class PositionComparison:
    symbol: str
    side: Side
    mark_price: float
    isolated_margin: float | None
    isolated: ModeOutcome
    cross: ModeOutcome


@dataclass(frozen=True, slots=True)
class ModeComparison:
    """`cross_wallet_balance` is also what is at risk under cross margin: every position can lose all of it.
    Under isolated margin each position risks its own margin only. `isolated_unfunded` says why the account
    cannot have the isolated version (its wallet is smaller than the margins its cross positions would need)."""

    exchange: str
    cross_wallet_balance: float
    positions: tuple[PositionComparison, ...]
    isolated_unfunded: str | None = None


def compare_modes(document: CalcDocument) -> ModeComparison:
    account = document.account
    moved_in = sum(
        own_margin or 0.0
        for position, own_margin in zip(account.positions, document.own_margins, strict=True)
        if position.margin_mode is MarginMode.ISOLATED
    )
    cross_wallet = (account.wallet_balance or 0.0) + moved_in
    all_cross = replace(
        account,
        positions=tuple(
            replace(p, margin_mode=MarginMode.CROSS, isolated_margin=None) for p in account.positions
        ),
        wallet_balance=cross_wallet,
    )
    cross_risks = evaluate_account(all_cross).positions
    all_cross_document = replace(document, account=all_cross)
    overflowed, shared = unknown_legs(all_cross_document, cross_risks, cross_wallet)
    # Under cross margin every position shares the wallet: one unknown makes every liquidation unknown.
    cross_note = OVERFLOW if overflowed else (CROSS_RATE_UNKNOWN if shared else None)
    comparisons = tuple(
        PositionComparison(
            symbol=position.symbol,
            side=position.side,
            mark_price=position.mark_price,
            isolated_margin=own_margin,
            isolated=isolated_outcome(account, position, own_margin, index in document.rate_unknown),
            cross=ModeOutcome(None, None, cross_note) if cross_note else outcome(cross_risk),
        )
        for index, (position, own_margin, cross_risk) in enumerate(
            zip(account.positions, document.own_margins, cross_risks, strict=True)
        )
    )
    return ModeComparison(account.exchange, cross_wallet, comparisons, _isolated_unfunded(document))


def _isolated_unfunded(document: CalcDocument) -> str | None:
    """The cross positions, made isolated, each take their initial margin out of the wallet: say so when it is
    not there (None when it is, or when nothing is cross)."""
    account = document.account
    needed = [
        own_margin
        for position, own_margin in zip(account.positions, document.own_margins, strict=True)
        if position.margin_mode is MarginMode.CROSS
    ]
    if not needed or any(margin is None for margin in needed):
        return None
    total = sum(margin for margin in needed if margin is not None)
    wallet = account.wallet_balance or 0.0
    if total <= wallet:
        return None
    return (
        f"the wallet ({wallet:,.2f}) cannot fund the isolated version: its cross positions would need "
        f"{total:,.2f} of isolated margin at their leverage"
    )


def isolated_outcome(
    account: Account, position: Position, own_margin: float | None, rate_unknown: bool = False
) -> ModeOutcome:
    if own_margin is None:
        return ModeOutcome(None, None, UNKNOWN_OWN_MARGIN)
    if rate_unknown:
        return ModeOutcome(None, None, RATE_UNKNOWN)
    alone = replace(position, margin_mode=MarginMode.ISOLATED, isolated_margin=own_margin)
    risk = evaluate_account(Account(account.exchange, (alone,), None, account.settle_currency)).positions[0]
    if overflows(alone, own_margin) or non_finite(risk):
        return ModeOutcome(None, None, OVERFLOW)
    return outcome(risk)


def outcome(risk: PositionRisk) -> ModeOutcome:
    return ModeOutcome(risk.liquidation_price, risk.distance_to_liquidation, risk.note)

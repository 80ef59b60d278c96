"""Quiet bands: how far an account's marks may move before the alert policy could decide anything but new figures.

Most marks move nothing a trader is told: every leg stays clear of its thresholds and the policy only carries the
new figures in its memory (`Track.rested`). Judging such a mark costs the model's figures for every moved leg and
the policy's walk over them, and that is most of the daemon's work per mark. A band, built right after a decision
that left every track of the account at rest, proves from the model's gaps (`margin/leeway.py`) how far the marks
can move before any threshold could be reached; a mark inside it is decided without the model or the policy
(the memory's figures are carried by the next decision that runs them, exactly as they would have been).

Every rule the policy runs on marks alone is covered, each as a gap that must stay positive:
- a distance threshold d: g at the price d away from the mark (towards the liquidation side) is above 0;
- a leg's own margin ratio threshold r (isolated): r·balance − requirement is above 0;
- a divergence tolerance: g at the two prices that bound the exchange's stated liquidation price has the signs
  that put the model's root between them;
- the account's cross margin ratio threshold r: r·(cross balance) − (cross requirement) is above 0.

How far a gap can move: a cross gap by at most Φ·Σ weight_j·|Δu_j| over the cross symbols (plus any bracket
jumps), an isolated leg's by Φ·weight·|Δu| of its own mark alone, where Φ ≥ 1 bounds how the thresholds scale
with the mark (1 + d, 1/(1 − d), r). Each gap's own allowance for rounding is 1e-7 of the magnitude of what was
summed into it, against a few 1e-16 of it in the model's figures. `tests/unit/test_quiet_band.py` checks, on
generated accounts and mark paths, that every mark a band lets through is one the full policy decides with no
alert and every track still at rest.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from daemon.core.alerts import AlertIdentity
from daemon.core.margin.incremental import EXACT_ONE, exact_units
from daemon.core.margin.leeway import LegLeeway
from daemon.core.policy import ACCOUNT_RULE, DIVERGENCE_RULE, RISK_RULE, UNKNOWN_RULE
from daemon.core.policy_memory import PolicyMemory
from daemon.core.policy_rules import RuleSet
from daemon.core.state import LegKey
from daemon.core.types import Side
from daemon.core.view import AccountView

ROUNDING = 1e-7  # of a gap's magnitude: what a gap must clear beyond zero


class QuietBand:
    """The marks, around those the band was built at, within which nothing but figures can change.

    `move(symbol, price)` says whether the account, with `symbol`'s mark at `price` and every other symbol's
    where earlier calls left it, is still inside; a False leaves the band spent (build a new one after the next
    decision)."""

    __slots__ = ("_cross_allowance", "_drift", "_inverse", "_own", "_reference", "_term_units", "_weights")

    def __init__(
        self,
        reference: dict[str, float],
        inverse: frozenset[str],
        weights: dict[str, float],
        own: dict[str, float],
        cross_allowance: float,
    ) -> None:
        self._reference = reference  # symbol -> u at the build
        self._inverse = inverse
        self._weights = weights  # cross symbol -> its weight times Φ
        self._own = own  # symbol -> how far its u may move for its isolated legs
        self._cross_allowance = cross_allowance
        # Σ weight·|Δu| over the cross symbols, held exactly as whole numbers of 2**-1074 (as `ExactSum` holds
        # its sum; every term here is finite, so the band keeps the integers itself: one call per mark, not four).
        self._term_units: dict[str, int] = dict.fromkeys(weights, 0)
        self._drift = 0

    def move(self, symbol: str, price: float) -> bool:
        reference = self._reference.get(symbol)
        if reference is None:
            return True  # no leg of it: nothing the policy judges depends on its mark
        if not (price > 0.0 and math.isfinite(price)):
            return False
        shift = abs((1.0 / price if symbol in self._inverse else price) - reference)
        own = self._own.get(symbol)
        if own is not None and not shift < own:
            return False
        weight = self._weights.get(symbol)
        if weight is not None:
            term = weight * shift
            if not math.isfinite(term):
                return False
            units = exact_units(term)
            self._drift += units - self._term_units[symbol]
            self._term_units[symbol] = units
            if not self._drift / EXACT_ONE < self._cross_allowance:  # int / int: correctly rounded
                return False
        return True


def quiet_band(
    view: AccountView,
    leeways: Mapping[LegKey, LegLeeway] | None,
    cross_balance: tuple[float, float, float] | None,
    rules: RuleSet,
    memory: PolicyMemory,
) -> QuietBand | None:
    """The band around the marks `leeways` were read at, for a memory just decided on them; None when some
    track is not at rest, some leg cannot be described, or some figure is already too close to a threshold."""
    if leeways is None or view.account is None or not view.legs:
        return None
    account = view.account_id
    tracks = memory.tracks

    def rests(symbol: str | None, side: str | None, rule: str) -> bool:
        track = tracks.get(AlertIdentity(account, symbol, side, rule).key)
        return track is not None and track.at_rest

    cross_gaps: list[float] = []  # each cross gap less its rounding: all must stay positive
    own: dict[str, float] = {}
    reference: dict[str, float] = {}
    inverse: set[str] = set()
    weights: dict[str, float] = {}
    scale = 1.0  # Φ
    cross_jumps = 0.0
    for leg in view.legs:
        symbol, side = leg.key
        leeway = leeways.get(leg.key)
        if leg.risk is None or leeway is None or leeway.symbol != symbol:
            return None
        th = rules.for_symbol(account, symbol)
        if not (rests(symbol, side.value, UNKNOWN_RULE) and rests(symbol, side.value, RISK_RULE)):
            return None
        gaps: list[float] = []
        mark = 1.0 / leeway.u_mark if leeway.inverse else leeway.u_mark
        for distance in (th.warning_distance, th.critical_distance):
            if distance is None:
                continue
            if not 0.0 < distance < 1.0:
                return None
            scale = max(scale, 1.0 + distance, 1.0 / (1.0 - distance))
            price = mark * (1.0 - distance) if side is Side.LONG else mark * (1.0 + distance)
            gaps.append(_clear(*leeway.gap(1.0 / price if leeway.inverse else price)))
        if not leeway.cross:
            for ratio in (th.warning_margin_ratio, th.critical_margin_ratio):
                if ratio is None:
                    continue
                if not ratio > 0.0 or not leeway.balance > 0.0:
                    return None
                scale = max(scale, ratio)
                gaps.append(
                    _ratio_gap(ratio, leeway.balance, leeway.requirement, leeway.gap(leeway.u_mark)[1])
                )
        stated = leg.facts.exchange_liquidation_price
        if stated is not None and stated > 0.0:
            if not rests(symbol, side.value, DIVERGENCE_RULE):
                return None
            divergence = _divergence_gap(leeway, stated, th.divergence_tolerance)
            if divergence is None:
                return None
            if leeway.cross:
                gaps.append(divergence)  # moves with the other symbols' marks, not with its own
            elif divergence <= 0.0:
                return None  # an isolated leg's liquidation price does not move with its mark at all
        reference[symbol] = leeway.u_mark
        if leeway.inverse:
            inverse.add(symbol)
        if leeway.cross:
            cross_gaps.extend(gaps)
            weights[symbol] = weights.get(symbol, 0.0) + leeway.weight
            cross_jumps += leeway.jumps
        else:
            room = min(gaps, default=math.inf) - leeway.jumps
            own[symbol] = min(own.get(symbol, math.inf), room / leeway.weight)  # Φ applied below
    if not rests(None, None, ACCOUNT_RULE):
        return None
    if weights:
        if cross_balance is None:
            return None
        balance, requirement, size = cross_balance
        th = rules.for_account(account)
        for ratio in (th.warning_margin_ratio, th.critical_margin_ratio):
            if ratio is None:
                continue
            if not ratio > 0.0 or not balance > 0.0:
                return None
            scale = max(scale, ratio)
            cross_gaps.append(_ratio_gap(ratio, balance, requirement, size))
    cross_allowance = min(cross_gaps, default=math.inf) - cross_jumps
    if cross_allowance <= 0.0 or any(room <= 0.0 for room in own.values()):
        return None
    return QuietBand(
        reference,
        frozenset(inverse),
        {symbol: weight * scale for symbol, weight in weights.items()},
        {symbol: room / scale for symbol, room in own.items()},
        cross_allowance,
    )


def _clear(value: float, size: float) -> float:
    """A gap less its rounding allowance (not positive: too close to say)."""
    return value - ROUNDING * size if math.isfinite(value) and math.isfinite(size) else -math.inf


def _ratio_gap(ratio: float, balance: float, requirement: float, size: float) -> float:
    """r·balance − requirement: positive while the margin ratio stays below r."""
    return _clear(ratio * balance - requirement, ratio * abs(balance) + abs(requirement) + size)


def _divergence_gap(leeway: LegLeeway, stated: float, tolerance: float) -> float | None:
    """How far g is from putting the model's liquidation price outside `tolerance` of the exchange's: the
    smaller of the two bounding gaps, signed so that positive means inside (None: no bounded interval)."""
    if not 0.0 < tolerance < 1.0:
        return None
    low_price, high_price = stated * (1.0 - tolerance), stated * (1.0 + tolerance)
    if leeway.inverse:
        low_u, high_u = 1.0 / high_price, 1.0 / low_price
    else:
        low_u, high_u = low_price, high_price
    (low, low_size), (high, high_size) = leeway.gap(low_u), leeway.gap(high_u)
    if leeway.rising:  # the root lies where g turns from negative to positive
        return min(_clear(-low, low_size), _clear(high, high_size))
    return min(_clear(low, low_size), _clear(-high, high_size))

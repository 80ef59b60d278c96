"""The one shape every venue's margin rules take, and the pieces they share.

A venue (a "family" of exchanges that margin alike) is a subclass of `MarginRules`. It states, from its own
published rules:
- `requirement(leg, fee_u)`: the leg's maintenance requirement as a piecewise-affine function of the price
  variable u (`Pieces`): which bracket applies at which price, and the requirement within it;
- `closing_fee(leg)`: the fee to close at a price that the venue subtracts from equity when it prices a
  bankruptcy (and, through `fee_u`, counts in the requirement), if it does;
- `brackets_in_contracts`: whether its bracket tables count contracts (OKX) rather than notional.
Everything else is the same arithmetic for every venue and lives here and in `daemon.sim.oracle.account`:
PnL, the bankruptcy price, the liquidation price (isolated and cross, hedge legs sharing one price) and the
margin ratio. A new venue copies one family module and adds one line to `daemon.sim.oracle.registry`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext
from functools import lru_cache
from itertools import pairwise
from typing import ClassVar

from daemon.sim.oracle.inputs import Brackets, Leg
from daemon.sim.oracle.numbers import CONTEXT, FLAT, ZERO, Line


@dataclass(frozen=True, slots=True, eq=False)
class Pieces:
    """A piecewise-affine function of u: each line holds from its start (inclusive) to the next one's start;
    the first starts at 0. `convex`: continuous at every start with slopes that never decrease (the shape of
    a requirement with chained deductions), which lets the solver rule a whole side out at one look."""

    rows: tuple[tuple[Decimal, Line], ...]
    starts: tuple[Decimal, ...]
    convex: bool

    @classmethod
    def of(cls, rows: Iterable[tuple[Decimal, Line]]) -> Pieces:
        ordered = tuple(rows)
        convex = all(
            right.slope >= left.slope and left.at(start) == right.at(start)
            for (_, left), (start, right) in pairwise(ordered)
        )
        return cls(ordered, tuple(start for start, _ in ordered), convex)

    def at(self, u: Decimal) -> Line:
        """The line in force at u (the piece whose start is the last at or below u)."""
        return self.rows[max(0, bisect_right(self.starts, u) - 1)][1]


def constant(line: Line) -> Pieces:
    return Pieces(((ZERO, line),), (ZERO,), True)


class MarginRules(ABC):
    """One venue's margin rules. Subclasses set `name` and `rule` and implement `requirement`."""

    name: ClassVar[str]
    rule: ClassVar[str]  # one line: the published rule followed, and where it is published
    brackets_in_contracts: ClassVar[bool] = False
    # True where the cross wallet enters the requirement itself (Bybit prices its fee to close at a bankruptcy
    # price measured against the wallet), so a wallet move can bring liquidation nearer by more than it moves.
    requirement_follows_wallet: ClassVar[bool] = False

    @abstractmethod
    def requirement(self, leg: Leg, fee_u: Decimal) -> Pieces:
        """The leg's maintenance requirement in the settle currency, as a function of u.

        `fee_u` is where the venue prices its fee to close (the price variable of the leg's bankruptcy
        price); families that do not count that fee ignore it.
        """

    def closing_fee(self, leg: Leg) -> Line:
        """Fee to close at u, counted where the venue prices bankruptcy (none unless the venue says so)."""
        return FLAT

    def pnl(self, leg: Leg) -> Line:
        """Unrealised PnL in the settle currency: side·q·(P − EP) linear, side·q·(1/EP − 1/P) inverse."""
        signed = leg.sign * leg.quantity
        if leg.inverse:
            return Line(signed / leg.entry, -signed)
        return Line(-signed * leg.entry, signed)

    def margin_ratio(self, requirement: Decimal, balance: Decimal) -> Decimal | None:
        """Maintenance requirement over margin balance (1 = liquidation); None when the balance is not positive.

        Binance and Bybit publish this ratio; OKX publishes its reciprocal (balance over requirement, liquidation
        at 100 %) — the same condition, which the OKX dialect converts when it writes its wire field.
        """
        return requirement / balance if balance > 0 else None


def brackets_along_price(leg: Leg, extra_rate: Decimal = ZERO, deductions: bool = True) -> Pieces:
    """Requirement pieces when the bracket is that of the notional AT the price (Binance, Gate).

    Notional is q·P for linear contracts and q/P (coin) for inverse ones: q·u either way, so bracket n applies
    from u = floor_n / q; within it the requirement is q·u·(mmr_n + extra_rate) − deduction_n.
    """
    return _along_price(leg.brackets, leg.quantity, extra_rate, deductions)


@lru_cache(maxsize=16_384)  # a leg's pieces change only when its size does; tables are shared by identity
def _along_price(brackets: Brackets, q: Decimal, extra_rate: Decimal, deductions: bool) -> Pieces:
    if q <= 0:
        return constant(FLAT)
    with localcontext(CONTEXT):
        rows: dict[Decimal, Line] = {}
        for bracket in brackets.rows:
            start = max(ZERO, bracket.floor / q)
            deduction = bracket.deduction if deductions else ZERO
            rows[start] = Line(-deduction, q * (bracket.mmr + extra_rate))
        if ZERO not in rows:  # sizes below the first floor fall in the first bracket
            rows[ZERO] = rows[min(rows)]
        return Pieces.of(sorted(rows.items()))


def sum_pieces(parts: Sequence[Pieces]) -> Pieces:
    """The sum of several piecewise-affine functions, with a piece wherever any of them changes."""
    starts = sorted({start for part in parts for start in part.starts})
    return Pieces.of((start, _sum_lines(part.at(start) for part in parts)) for start in starts)


def _sum_lines(lines: Iterable[Line]) -> Line:
    total = FLAT
    for line in lines:
        total = total + line
    return total

"""Exact arithmetic for the oracle: one decimal context, and affine lines in the price variable.

Every venue states its margin rules as sums and products of prices, sizes and rates, so within one maintenance
bracket each side of "margin balance = maintenance requirement" is affine in one variable `u`: the price for
linear contracts, 1/price for inverse ones (whose PnL and notional are in the coin). The oracle therefore
solves linear equations exactly, bracket by bracket, in `decimal.Decimal` with 40 significant digits: no
float bisection, no tolerance. Floats from the simulator enter through `dec`, which takes the shortest
decimal that prints as the float (what the exchange would have written), not its binary expansion.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Context, Decimal, DivisionByZero, InvalidOperation, Overflow

# 40 digits: a 1e9 USDT notional with 1e-12 precision still has 19 digits to spare; traps turn a division by
# zero or an overflow into an exception instead of an Infinity that would read as "safe".
CONTEXT = Context(prec=40, traps=[InvalidOperation, DivisionByZero, Overflow])

ZERO = Decimal(0)
ONE = Decimal(1)


def dec(value: float | int | str | Decimal) -> Decimal:
    """The decimal a float was written as (`repr`), or an int/str/Decimal as given."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(value)


@dataclass(frozen=True, slots=True)
class Line:
    """const + slope·u: one affine piece of a margin quantity as a function of the price variable u."""

    const: Decimal = ZERO
    slope: Decimal = ZERO

    def at(self, u: Decimal) -> Decimal:
        return self.const + self.slope * u

    def __add__(self, other: Line) -> Line:
        return Line(self.const + other.const, self.slope + other.slope)

    def __sub__(self, other: Line) -> Line:
        return Line(self.const - other.const, self.slope - other.slope)

    def times(self, factor: Decimal) -> Line:
        return Line(self.const * factor, self.slope * factor)

    def root(self) -> Decimal | None:
        """Where the line is zero; None for a flat line (zero nowhere, or everywhere)."""
        if self.slope == 0:
            return None
        return -self.const / self.slope


FLAT = Line()

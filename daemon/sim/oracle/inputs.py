"""What the oracle is asked about: position legs with their bracket tables, and the account holding them.

Units: `contracts` and `contract_size` as the venue counts them. `quantity` = contracts × contract size is base
units for linear contracts and the quote (USD) value for inverse ones. Prices are quote per base. Margins,
wallets and PnL are in the settle currency: the quote for linear contracts, the coin for inverse ones.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, localcontext

from daemon.core.types import MarginMode, Side, Tier
from daemon.sim.oracle.numbers import CONTEXT, ONE, ZERO, dec


@dataclass(frozen=True, slots=True)
class Bracket:
    """One row of a maintenance table: from `floor` upwards (in the unit the venue sizes brackets in).

    `deduction` is what the venue subtracts from size × rate in this bracket (Binance "cum", Bybit "maintenance
    margin deduction"); 0 where the venue publishes none (OKX).
    """

    floor: Decimal
    mmr: Decimal
    deduction: Decimal = ZERO


@dataclass(frozen=True, slots=True, eq=False)
class Brackets:
    """A bracket table, sorted by floor; a size below the first floor falls in the first bracket.

    Compared and hashed by identity: a table is built once per market and shared by its legs."""

    rows: tuple[Bracket, ...]
    floors: tuple[Decimal, ...]

    @classmethod
    def of(cls, rows: Iterable[Bracket]) -> Brackets:
        ordered = tuple(sorted(rows, key=lambda row: row.floor))
        if not ordered:
            raise ValueError("a bracket table needs at least one row")
        return cls(ordered, tuple(row.floor for row in ordered))

    @classmethod
    def from_tiers(cls, tiers: Iterable[Tier]) -> Brackets:
        return cls.of(Bracket(dec(t.min_notional), dec(t.mmr), dec(t.maintenance_amount)) for t in tiers)

    @classmethod
    def chained(cls, rows: Iterable[tuple[Decimal, Decimal]]) -> Brackets:
        """(floor, mmr) rows with the deductions Binance and Bybit chain over their tables.

        Binance ("cum") and Bybit ("maintenance margin deduction") both publish
        deduction_n = deduction_{n−1} + floor_n × (mmr_n − mmr_{n−1}), which keeps the requirement continuous
        at every floor.
        """
        ordered = sorted(rows)
        result: list[Bracket] = []
        deduction = ZERO
        with localcontext(CONTEXT):
            for index, (floor, mmr) in enumerate(ordered):
                if index > 0:
                    deduction += floor * (mmr - ordered[index - 1][1])
                result.append(Bracket(floor, mmr, deduction))
        return cls.of(result)

    @classmethod
    def flat(cls, mmr: Decimal, deduction: Decimal = ZERO) -> Brackets:
        return cls.of([Bracket(ZERO, mmr, deduction)])

    def at(self, size: Decimal) -> Bracket:
        """The bracket of `size`: the last row whose floor is at or below it."""
        return self.rows[max(0, bisect_right(self.floors, size) - 1)]


@dataclass(frozen=True, slots=True)
class Leg:
    """One position leg. `margin` is the isolated margin (None for a cross leg)."""

    symbol: str
    side: Side
    contracts: Decimal
    contract_size: Decimal
    entry: Decimal
    mark: Decimal
    mode: MarginMode
    brackets: Brackets
    inverse: bool = False
    margin: Decimal | None = None
    taker: Decimal = ZERO
    max_leverage: Decimal | None = None

    @property
    def quantity(self) -> Decimal:
        return self.contracts * self.contract_size

    @property
    def sign(self) -> Decimal:
        return ONE if self.side is Side.LONG else -ONE

    def u(self, price: Decimal) -> Decimal:
        """The price variable: the price (linear) or its reciprocal (inverse)."""
        return ONE / price if self.inverse else price

    def price(self, u: Decimal) -> Decimal:
        return ONE / u if self.inverse else u


@dataclass(frozen=True, slots=True)
class Holdings:
    """An account: its legs and the cross wallet (collateral excluding isolated margins) in the settle currency."""

    legs: tuple[Leg, ...]
    wallet: Decimal = ZERO

"""An account's margin model kept up to date mark by mark, giving `evaluate_account`'s figures bit for bit.

`evaluate_account` re-evaluates every leg: O(n) per mark, O(n²) per tick of a big cross account. Here a mark
update touches only what depends on its symbol (O(legs of that symbol)):

- each leg of the symbol gets its PnL and requirement at the new mark;
- a cross symbol's share moves the account's running totals (exact sums: see `ExactSum`);
- the symbol's own group forgets its stops around the old mark; every cross group's figures go stale.

Figures are computed when asked, per leg, from what the full solve would use: a cross symbol's collateral is
the wallet plus the totals less its own share (`cross_collateral`, as `groups_of`), and its liquidation price
comes from the same walk over the same terms (`walk_boundary`, done by `margin/walk.py` on terms kept per
mark). The semantics are the full solve's: a cross symbol's liquidation price holds every OTHER cross symbol
at its mark (not a common move of all prices); hedge legs of one symbol share one price; isolated legs stand
alone on their own margin.

What makes a read cheap: a group's terms per bracket never change (`GroupTerms`: fixed facts only), its stops
change only with its own mark, and `Reach` proves from the collateral alone when no bracket past the first
stop holds a root. So after another symbol's mark moved, a group's read is a few affine evaluations while its
root stays in the bracket next to the mark; the walk goes further only when the root leaves it.

Only marks move here. A position, wallet or rules change is a new snapshot: build a new model from it (O(n)).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields

from daemon.core.margin.account import (
    AccountTotals,
    Group,
    GroupTerms,
    cross_collateral,
    groups_of,
    leg_pnl_at_mark,
    leg_requirement_at_mark,
    margin_ratio,
    position_risk,
)
from daemon.core.margin.families import MarginFamily, family_for
from daemon.core.margin.leeway import LegLeeway, is_inverse, weight_and_jumps
from daemon.core.margin.reach import Reach
from daemon.core.margin.solver import Boundary, stops_around
from daemon.core.margin.terms import from_u, to_u
from daemon.core.margin.walk import SegmentWalk
from daemon.core.types import Account, AccountRisk, MarginMode, Position, PositionRisk

EXACT_ONE = 1 << 1074  # every finite double is a whole number of 2**-1074


class ExactSum:
    """A sum of floats held exactly, as a whole number of 2**-1074, so that terms added and taken away in any
    order leave exactly the sum of the terms present; `value()` is its correctly rounded float, which is what
    `math.fsum` of those terms returns. Non-finite terms are kept aside and, as in `math.fsum`, decide the
    value while present."""

    __slots__ = ("_odd", "_units")

    def __init__(self, terms: Iterable[float] = ()) -> None:
        self._units = 0
        self._odd: list[float] = []
        for term in terms:
            self.add(term)

    def add(self, term: float) -> None:
        if math.isfinite(term):
            self._units += exact_units(term)
        else:
            self._odd.append(term)

    def remove(self, term: float) -> None:
        """Take away a term added before (the same float)."""
        if math.isfinite(term):
            self._units -= exact_units(term)
        else:
            self._odd.remove(term)  # list.remove matches the very object first, so a NaN is found too

    def replace(self, old: float, new: float) -> None:
        if math.isfinite(old) and math.isfinite(new):
            self._units += exact_units(new) - exact_units(old)  # the common case, in one step
        else:
            self.remove(old)
            self.add(new)

    def value(self) -> float:
        if self._odd:
            return math.fsum(self._odd)
        return self._units / EXACT_ONE  # int / int is correctly rounded in CPython

    def plus(self, term: float) -> float:
        """The value with a finite `term` added, leaving the sum as it is."""
        if self._odd:
            return math.fsum(self._odd)
        return (self._units + exact_units(term)) / EXACT_ONE


def exact_units(term: float) -> int:
    """A finite float as a whole number of 2**-1074."""
    numerator, denominator = term.as_integer_ratio()  # denominator: a power of two, at most 2**1074
    return numerator << (1075 - denominator.bit_length())


def _at_mark(leg: Position, price: float) -> Position:
    """`dataclasses.replace(leg, mark_price=price)`, built directly: this runs for every leg on every mark."""
    return Position(
        leg.symbol,
        leg.side,
        leg.contracts,
        leg.contract_size,
        leg.entry_price,
        price,
        leg.margin_mode,
        leg.contract_type,
        leg.leverage,
        leg.isolated_margin,
        leg.tiers,
        leg.taker_fee_rate,
        leg.max_leverage,
    )


# `_at_mark` names every field of `Position`: one added there must be added here too.
assert [f.name for f in fields(Position)] == [
    "symbol",
    "side",
    "contracts",
    "contract_size",
    "entry_price",
    "mark_price",
    "margin_mode",
    "contract_type",
    "leverage",
    "isolated_margin",
    "tiers",
    "taker_fee_rate",
    "max_leverage",
], "Position's fields changed: update _at_mark"


@dataclass(slots=True, eq=False)
class _Kept:
    """One group (a cross symbol, or an isolated leg) and what is remembered about it between reads."""

    indexes: list[int]
    cross: bool
    terms: GroupTerms
    price_of: Callable[[float], float]
    collateral: float  # isolated: its margin (fixed); cross: unused, derived from the totals when read
    bankruptcy_u: float | None  # isolated: fixed; cross: derived when read
    symbol_pnl: float = 0.0  # cross: this symbol's share of the totals, at its mark
    symbol_requirement: float = 0.0
    walk: SegmentWalk | None = None  # from the current mark (its stops and terms); None after the mark moved
    reach: Reach | None = None  # built on first read, kept for the model's life
    solved: tuple[int, Boundary, float | None] | None = field(
        default=None
    )  # (version, liquidation, bankruptcy)


class IncrementalAccount:
    """`evaluate_account(self.account)`'s figures, kept across `update_mark` calls."""

    def __init__(self, account: Account) -> None:
        self.family: MarginFamily = family_for(account.exchange)
        self._exchange, self._settle = account.exchange, account.settle_currency
        self._wallet_given = account.wallet_balance
        self._wallet = account.wallet_balance or 0.0
        self._positions = list(account.positions)
        count = len(self._positions)
        self._pnl = [0.0] * count
        self._requirement = [0.0] * count
        self._group_of: list[_Kept] = []
        self._by_symbol: dict[str, list[_Kept]] = {}
        self._version = 0  # bumped whenever a cross mark moves: every cross figure depends on it
        groups = groups_of(
            self.family, account
        )  # the partition and each group's fixed facts, as the full solve
        kept_of: dict[int, _Kept] = {}
        for ids, group in groups:
            kept = self._keep(ids, group)
            for index in ids:
                kept_of[index] = kept
            self._by_symbol.setdefault(group.legs[0].symbol, []).append(kept)
        self._group_of = [kept_of[i] for i in range(count)]
        cross = [k for k in self._group_of if k.cross]
        self._has_cross = bool(cross)
        for index, kept in enumerate(self._group_of):
            self._pnl[index] = leg_pnl_at_mark(self._positions[index])
            self._requirement[index] = leg_requirement_at_mark(
                self.family, self._positions[index], kept.terms.fee_u
            )
        cross_ids = [i for i, k in enumerate(self._group_of) if k.cross]
        isolated_ids = [i for i, k in enumerate(self._group_of) if not k.cross]
        self._total_pnl = ExactSum(self._pnl[i] for i in cross_ids)  # the cross balance is the wallet plus it
        self._cross_requirement = ExactSum(self._requirement[i] for i in cross_ids)
        self._isolated_balance = ExactSum(self._group_of[i].collateral + self._pnl[i] for i in isolated_ids)
        self._isolated_requirement = ExactSum(self._requirement[i] for i in isolated_ids)
        symbols = {id(k): k for k in cross}.values()
        for kept in symbols:
            self._share(kept)
        self._total_requirement = ExactSum(k.symbol_requirement for k in symbols)
        self._totals: tuple[int, float, float, float | None] | None = None
        self._bounds: dict[int, tuple[float, float] | None] = {}  # leg -> its leeway's (weight, jumps)

    def _keep(self, ids: list[int], group: Group) -> _Kept:
        first = group.legs[0]
        cross = first.margin_mode is MarginMode.CROSS
        return _Kept(
            indexes=ids,
            cross=cross,
            terms=GroupTerms(self.family, group.legs, group.fee_u),
            price_of=lambda u: from_u(first, u),
            collateral=group.collateral,
            bankruptcy_u=group.bankruptcy.u,
        )

    def _share(self, kept: _Kept) -> None:
        """A cross symbol's share of the totals: its legs' PnL and requirement, summed as `groups_of` does."""
        kept.symbol_pnl = math.fsum(self._pnl[i] for i in kept.indexes)
        kept.symbol_requirement = math.fsum(self._requirement[i] for i in kept.indexes)

    @property
    def account(self) -> Account:
        """The account as it stands now (O(n)): what `evaluate_account` would be given."""
        return Account(self._exchange, tuple(self._positions), self._wallet_given, self._settle)

    def indexes_of(self, symbol: str) -> list[int]:
        """The positions (input order) that a mark of `symbol` moves."""
        return [i for kept in self._by_symbol.get(symbol, ()) for i in kept.indexes]

    def update_mark(self, symbol: str, price: float) -> None:
        """The symbol's mark moved: O(legs of this symbol); every figure is computed later, when asked."""
        family = self.family
        for kept in self._by_symbol.get(symbol, ()):
            for index in kept.indexes:
                leg = _at_mark(self._positions[index], price)
                self._positions[index] = leg
                pnl, requirement = (
                    leg_pnl_at_mark(leg),
                    leg_requirement_at_mark(family, leg, kept.terms.fee_u),
                )
                if kept.cross:
                    self._total_pnl.replace(self._pnl[index], pnl)
                    self._cross_requirement.replace(self._requirement[index], requirement)
                else:
                    self._isolated_balance.replace(kept.collateral + self._pnl[index], kept.collateral + pnl)
                    self._isolated_requirement.replace(self._requirement[index], requirement)
                self._pnl[index], self._requirement[index] = pnl, requirement
            kept.walk = kept.solved = None
            if kept.cross:
                before = kept.symbol_requirement
                self._share(kept)
                self._total_requirement.replace(before, kept.symbol_requirement)
                self._version += 1

    def _cross_totals(self) -> tuple[int, float, float, float | None]:
        """(version, total PnL, total requirement, cross ratio): read once per version, not once per leg."""
        totals = self._totals
        if totals is None or totals[0] != self._version:
            cross_ratio = (
                margin_ratio(self._cross_requirement.value(), self._total_pnl.plus(self._wallet))
                if self._has_cross
                else None
            )
            totals = (self._version, self._total_pnl.value(), self._total_requirement.value(), cross_ratio)
            self._totals = totals
        return totals

    def _boundaries(self, kept: _Kept) -> tuple[Boundary, float | None]:
        """The group's liquidation boundary and bankruptcy u, as `evaluate_account` finds them."""
        version = self._version if kept.cross else 0
        solved = kept.solved
        if solved is not None and solved[0] == version:
            return solved[1], solved[2]
        first = self._positions[kept.indexes[0]]
        u_mark = to_u(first, first.mark_price)
        if kept.walk is None:
            kept.walk = SegmentWalk(kept.terms, stops_around(kept.terms.breakpoints, u_mark))
        walk = kept.walk
        if kept.cross:
            _v, total_pnl, total_requirement, _r = self._cross_totals()
            equity, collateral = cross_collateral(
                self._wallet, total_pnl, kept.symbol_pnl, total_requirement, kept.symbol_requirement
            )
            bankruptcy_u = kept.terms.bankruptcy(equity, u_mark).u
        else:
            collateral, bankruptcy_u = kept.collateral, kept.bankruptcy_u
        if kept.reach is None:
            kept.reach = Reach(kept.terms)
        liquidation = walk.boundary(
            collateral, kept.price_of, kept.reach.rootless_past_first(collateral, walk.stops)
        )
        kept.solved = (version, liquidation, bankruptcy_u)
        return liquidation, bankruptcy_u

    def position_risk(self, index: int) -> PositionRisk:
        """Leg `index`'s figures now: O(1) in the account's size."""
        kept = self._group_of[index]
        liquidation, bankruptcy_u = self._boundaries(kept)
        requirement = self._requirement[index]
        if kept.cross:
            ratio = self._cross_totals()[3]
        else:
            ratio = margin_ratio(requirement, kept.collateral + self._pnl[index])
        return position_risk(self._positions[index], liquidation, bankruptcy_u, requirement, ratio)

    def risks_of(self, symbol: str) -> list[tuple[int, PositionRisk]]:
        """The figures of the legs a mark of `symbol` moves, with their indexes."""
        return [(index, self.position_risk(index)) for index in self.indexes_of(symbol)]

    def totals(self) -> AccountTotals:
        return AccountTotals(
            self._total_pnl.plus(self._wallet),
            self._cross_requirement.value(),
            self._isolated_balance.value(),
            self._isolated_requirement.value(),
            has_cross=self._has_cross,
        )

    def leeway(self, index: int) -> LegLeeway | None:
        """How leg `index`'s gap moves with the marks, read at the marks held now (None: a hedged symbol or a
        table whose rates reach 1; see `leeway.py`)."""
        kept = self._group_of[index]
        if len(kept.indexes) != 1:
            return None
        leg = self._positions[index]
        if index not in self._bounds:  # fixed facts only: found once per model
            self._bounds[index] = weight_and_jumps(self.family, leg, kept.terms.fee_u)
        bounds = self._bounds[index]
        if bounds is None:
            return None
        weight, jumps = bounds
        terms = kept.terms
        if kept.cross:
            _v, total_pnl, total_requirement, _r = self._cross_totals()
            _equity, collateral = cross_collateral(
                self._wallet, total_pnl, kept.symbol_pnl, total_requirement, kept.symbol_requirement
            )
            # Rounding in the collateral is relative to what was summed into it, not to the collateral itself.
            behind = abs(self._wallet) + abs(total_pnl) + abs(total_requirement) + abs(collateral)
        else:
            collateral = kept.collateral
            behind = abs(collateral)

        def gap(u: float) -> tuple[float, float]:
            pnl, requirement = terms.pnl, terms.requirement(u)
            size = (
                behind
                + abs(pnl.const)
                + abs(pnl.slope * u)
                + abs(requirement.const)
                + abs(requirement.slope * u)
            )
            return collateral + pnl.at(u) - requirement.at(u), size

        return LegLeeway(
            symbol=leg.symbol,
            cross=kept.cross,
            inverse=is_inverse(leg),
            rising=terms.pnl.slope > 0.0,
            weight=weight,
            jumps=jumps,
            u_mark=to_u(leg, leg.mark_price),
            gap=gap,
            balance=collateral + self._pnl[index],
            requirement=self._requirement[index],
        )

    def cross_balance(self) -> tuple[float, float, float] | None:
        """The cross part's (margin balance, requirement, magnitude of what was summed), as its ratio is taken;
        None without cross legs."""
        if not self._has_cross:
            return None
        balance, requirement = self._total_pnl.plus(self._wallet), self._cross_requirement.value()
        size = abs(self._wallet) + abs(self._total_pnl.value()) + abs(requirement)
        return balance, requirement, size

    def account_risk(self) -> AccountRisk:
        """Every leg's figures and the totals: `evaluate_account(self.account)`, in O(n)."""
        return self.totals().risk(tuple(self.position_risk(i) for i in range(len(self._positions))))

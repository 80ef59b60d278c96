"""The incremental margin model gives `evaluate_account`'s figures exactly, after every mark update.

Equality is exact (dataclass ==, so bit for bit up to 0.0 == -0.0), never a tolerance: both sides sum the
account's totals correctly rounded (`math.fsum` in the full solve, `ExactSum` in the model), so the order in
which marks arrived cannot change a single bit, and both walk the same terms with the same solver.
"""

from __future__ import annotations

import math

from hypothesis import event, given, settings
from hypothesis import strategies as st

from daemon.core.margin import FAMILIES, evaluate_account, family_for
from daemon.core.margin.account import GroupTerms
from daemon.core.margin.families import TierBasis
from daemon.core.margin.incremental import ExactSum, IncrementalAccount
from daemon.core.margin.reach import Reach
from daemon.core.margin.solver import stops_from, walk_boundary
from daemon.core.margin.terms import bracket_size, from_u, leg_tiers, to_u
from daemon.core.tiers import derive_maintenance_amounts, tier_index
from daemon.core.types import Account, ContractType, MarginMode, Position, Side, Tier

CHECKED = settings(max_examples=300, deadline=None)


@st.composite
def tables(draw: st.DrawFn, family: str, size: float) -> tuple[Tier, ...]:
    """1–5 brackets with floors spread around `size` (the leg's own bracket measure), so marks cross them."""
    count = draw(st.integers(1, 5))
    rates = sorted(draw(st.lists(st.floats(0.002, 0.15), min_size=count, max_size=count)))
    floors = sorted(draw(st.lists(st.floats(0.2, 4.0), min_size=count - 1, max_size=count - 1)))
    tiers = [Tier(0.0, rates[0])] + [Tier(f * size, r) for f, r in zip(floors, rates[1:], strict=True)]
    return tuple(tiers) if not FAMILIES[family].bracket_deductions else derive_maintenance_amounts(tiers)


@st.composite
def accounts(draw: st.DrawFn) -> Account:
    """1–6 symbols, each cross or isolated, one-way (one leg) or hedge (a long and a short), linear or inverse
    (Binance, Bybit), with tiers, fees and collateral drawn; notionals 100 to 1,000,000 of the settle unit."""
    family = draw(st.sampled_from(sorted(FAMILIES)))
    rules = FAMILIES[family]
    legs: list[Position] = []
    for index in range(draw(st.integers(1, 6))):
        inverse = family in ("binance", "bybit") and draw(st.booleans())
        entry = draw(st.floats(1.0, 100_000.0))
        mark = entry * draw(st.floats(0.9, 1.1))
        mode = draw(st.sampled_from([MarginMode.CROSS, MarginMode.CROSS, MarginMode.ISOLATED]))
        fee = draw(st.sampled_from([0.0, 0.0002, 0.0005, 0.00075]))
        contract_size = draw(st.sampled_from([1.0, 0.01, 10.0, 100.0]))
        sides = draw(st.sampled_from([[Side.LONG], [Side.SHORT], [Side.LONG, Side.SHORT]]))
        for side in sides:
            notional = draw(st.floats(100.0, 1_000_000.0))
            u_entry = entry if not inverse else 1.0 / entry
            quantity = notional / entry if not inverse else notional
            contracts = quantity / contract_size
            size = contracts if rules.tier_basis is TierBasis.CONTRACTS else quantity * u_entry
            no_table = rules.mmr_from_max_leverage and draw(st.booleans())
            legs.append(
                Position(
                    symbol=f"S{index}",
                    side=side,
                    contracts=contracts,
                    contract_size=contract_size,
                    entry_price=entry,
                    mark_price=mark,
                    margin_mode=mode,
                    contract_type=ContractType.INVERSE if inverse else ContractType.LINEAR,
                    leverage=draw(st.floats(1.5, 100.0)),
                    isolated_margin=draw(st.none() | st.floats(0.005, 0.8).map(lambda f, n=notional: f * n)),
                    tiers=() if no_table else draw(tables(family, size)),
                    taker_fee_rate=fee,
                    max_leverage=draw(st.floats(2.0, 100.0)),
                )
            )
    scale = sum(leg.quantity * to_u(leg, leg.mark_price) for leg in legs)
    wallet = scale * draw(st.floats(0.01, 0.6))
    return Account(family, tuple(draw(st.permutations(legs))), wallet_balance=wallet)


def _boundary_prices(leg: Position, family: str) -> list[float]:
    """Marks at which the leg's bracket changes (brackets that follow the price only)."""
    rules = family_for(family)
    if rules.tier_basis is not TierBasis.NOTIONAL_AT_PRICE:
        return []
    return [from_u(leg, tier.min_notional / leg.quantity) for tier in leg_tiers(rules, leg)[1:]]


@st.composite
def moves(draw: st.DrawFn, account: Account) -> list[tuple[str, float]]:
    """Marks for the account's symbols: wide moves, and moves onto (or an ulp or a hair beside) a bracket
    boundary of the symbol's first leg."""
    steps = []
    for _ in range(draw(st.integers(1, 15))):
        leg = draw(st.sampled_from(account.positions))
        boundaries = _boundary_prices(leg, account.exchange)
        if boundaries and draw(st.booleans()):
            price = draw(st.sampled_from(boundaries))
            nudge = draw(st.sampled_from(["on", "ulp up", "ulp down", "hair up", "hair down"]))
            price = {
                "on": price,
                "ulp up": math.nextafter(price, math.inf),
                "ulp down": math.nextafter(price, 0.0),
                "hair up": price * (1 + 1e-9),
                "hair down": price * (1 - 1e-9),
            }[nudge]
        else:
            price = leg.entry_price * draw(st.floats(0.3, 3.0))
        steps.append((leg.symbol, price))
    return steps


@CHECKED
@given(st.data())
def test_figures_equal_the_full_solve_after_every_mark(data: st.DataObject) -> None:
    account = data.draw(accounts())
    model = IncrementalAccount(account)
    assert model.account_risk() == evaluate_account(account)
    for symbol, price in data.draw(moves(account)):
        model.update_mark(symbol, price)
        full = evaluate_account(model.account)
        # The changed legs first, as a policy asks, before anything else has warmed the model's caches.
        for index, risk in model.risks_of(symbol):
            assert risk == full.positions[index], (symbol, index)
            event(f"changed leg: {risk.note or 'liquidation price ahead'}")
        if data.draw(st.booleans()):
            assert model.account_risk() == full


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_marks_walked_across_every_bracket(data: st.DataObject) -> None:
    """A ladder of marks through every bracket boundary of a leg, each step checked, and the brackets the
    leg's own requirement used at its marks shown to have changed (so crossings were exercised)."""
    account = data.draw(
        accounts().filter(lambda a: any(_boundary_prices(p, a.exchange) for p in a.positions))
    )
    leg = next(p for p in account.positions if _boundary_prices(p, account.exchange))
    family = family_for(account.exchange)
    prices = sorted(_boundary_prices(leg, account.exchange))
    ladder = [prices[0] * 0.5, *(p * f for p in prices for f in (0.999, 1.0, 1.001)), prices[-1] * 2.0]
    if data.draw(st.booleans()):
        ladder.reverse()
    model = IncrementalAccount(account)
    seen = set()
    for price in ladder:
        model.update_mark(leg.symbol, price)
        assert model.account_risk() == evaluate_account(model.account)
        moved = model.account.positions[account.positions.index(leg)]
        seen.add(tier_index(leg_tiers(family, moved), bracket_size(family, moved, to_u(moved, price))))
    assert len(seen) > 1


@CHECKED
@given(st.data())
def test_skipping_by_reach_gives_the_full_walk(data: st.DataObject) -> None:
    """`Reach` may end a walk early only where the full walk finds no root either; collaterals are drawn at
    and around the values that put a root exactly on a breakpoint, where rounding decides."""
    account = data.draw(accounts())
    family = family_for(account.exchange)
    symbol = data.draw(st.sampled_from(sorted({p.symbol for p in account.positions})))
    legs = tuple(p for p in account.positions if p.symbol == symbol)
    terms = GroupTerms(family, legs, data.draw(st.none() | st.floats(1e-6, 1.0)))
    reach = Reach(terms)
    mark = data.draw(st.sampled_from([legs[0].mark_price, *_boundary_prices(legs[0], account.exchange)]))
    u_mark = to_u(legs[0], mark)
    stops = stops_from(terms.breakpoints, u_mark)
    for _ in range(12):
        at = data.draw(st.sampled_from([*terms.breakpoints, u_mark]))
        shape = terms.gap(0.0)(at * data.draw(st.sampled_from([0.999, 1.0, 1.001])))
        critical = -shape.const - shape.slope * at  # the collateral that puts this piece's root at `at`
        collateral = data.draw(
            st.sampled_from(
                [
                    critical,
                    math.nextafter(critical, math.inf),
                    math.nextafter(critical, -math.inf),
                    critical * (1 + 1e-12),
                    critical * (1 - 1e-12),
                ]
            )
            | st.floats(-1e7, 1e7)
        )
        full = walk_boundary(terms.gap(collateral), stops, lambda u: u)
        skipped = walk_boundary(
            terms.gap(collateral), stops, lambda u: u, reach.rootless_past_first(collateral, stops)
        )
        assert skipped == full


@given(st.lists(st.floats(-1e12, 1e12) | st.floats(-1e-300, 1e-300), max_size=30), st.data())
def test_exact_sum_is_fsum_whatever_the_order(terms: list[float], data: st.DataObject) -> None:
    """Terms added in any order, with others added and taken away between, sum as `math.fsum` of them."""
    extra = [1e16, -3.0, 1e-20, math.inf]
    total = ExactSum()
    for term in data.draw(st.permutations([*terms, *extra])):
        total.add(term)
    for term in extra:
        total.remove(term)
    assert total.value() == math.fsum(terms)

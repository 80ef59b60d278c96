"""A leg's bracket read by bisection (`LegBrackets`) is the bracket `tier_index` scans to, on any table and size:
ascending tables (as exchanges publish them), tables out of order, repeated minimums, sizes at a boundary,
below the first minimum, infinite or not a number, for every family's tier basis."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from daemon.core.margin.families import FAMILIES
from daemon.core.margin.terms import LegBrackets, bracket_size
from daemon.core.tiers import tier_index
from daemon.core.types import ContractType, MarginMode, Position, Side, Tier

finite = st.floats(min_value=-1e3, max_value=1e9, allow_nan=False, allow_infinity=False)
minimums = st.lists(st.one_of(finite, st.sampled_from([0.0, 50_000.0, 250_000.0])), min_size=1, max_size=12)
ascending_or_not = st.one_of(minimums.map(sorted), minimums)


def _leg(quantity: float, contract_type: ContractType, tiers: tuple[Tier, ...]) -> Position:
    return Position(
        symbol="X",
        side=Side.LONG,
        contracts=quantity,
        contract_size=1.0,
        entry_price=100.0,
        mark_price=100.0,
        margin_mode=MarginMode.CROSS,
        contract_type=contract_type,
        tiers=tiers,
    )


@given(
    family=st.sampled_from(sorted(FAMILIES)),
    mins=ascending_or_not,
    quantity=st.floats(min_value=1e-6, max_value=1e6),
    contract_type=st.sampled_from(list(ContractType)),
    us=st.lists(
        st.one_of(
            st.floats(min_value=0.0, max_value=1e6),
            st.sampled_from([0.0, math.inf, math.nan, 1e-300]),
        ),
        min_size=1,
        max_size=20,
    ),
    at_boundaries=st.booleans(),
)
def test_bisection_finds_the_bracket_the_scan_finds(
    family: str,
    mins: list[float],
    quantity: float,
    contract_type: ContractType,
    us: list[float],
    at_boundaries: bool,
) -> None:
    tiers = tuple(Tier(minimum, 0.01) for minimum in mins)
    leg = _leg(quantity, contract_type, tiers)
    margin_family = FAMILIES[family]
    brackets = LegBrackets(margin_family, leg, tiers)
    probes = list(us)
    if at_boundaries:  # exactly where a bracket starts, and the floats on either side of it
        for minimum in mins:
            u = minimum / leg.quantity
            probes += [u, math.nextafter(u, -math.inf), math.nextafter(u, math.inf)]
    for u in probes:
        assert brackets.index(u) == tier_index(tiers, bracket_size(margin_family, leg, u)), u

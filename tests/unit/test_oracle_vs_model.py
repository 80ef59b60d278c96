"""marginguard's margin model and the simulator's oracle, two implementations written apart, agree.

The model (daemon.core.margin, floats, one solver switched by family data) and the oracle (daemon.sim.oracle,
Decimal, one module per venue) are fed the same randomly drawn accounts: linear and inverse, isolated and
cross, several symbols, hedge legs, brackets by notional at the price (Binance, Gate), at entry (Bybit) and
by contracts (OKX). Every leg's liquidation and bankruptcy price, maintenance requirement and margin ratio
must match. Disagreements this found were settled by the venues' published rules (see the oracle's
modules and tests/unit/test_margin_nearest_liquidation.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.core.margin import evaluate_account
from daemon.core.types import Account, ContractType, MarginMode, Position, Side, Tier
from daemon.sim.markets import load_markets
from daemon.sim.oracle import Brackets, Holdings, Leg, evaluate, rules_for
from daemon.sim.oracle.numbers import dec

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
# Binance COIN-M BTCUSD brackets in coin (floor, mmr, cum): ccxt's recorded leverageBrackets, cum chained.
COIN_BRACKETS = (
    Tier(0.0, 0.004, 0.0),
    Tier(5.0, 0.005, 0.005),
    Tier(10.0, 0.01, 0.055),
    Tier(20.0, 0.025, 0.355),
    Tier(50.0, 0.05, 1.605),
    Tier(100.0, 0.1, 6.605),
)
INVERSE_CONTRACT_USD = 100.0


@dataclass(frozen=True)
class Drawn:
    symbol: str
    side: Side
    mode: MarginMode
    notional: float
    entry_move: float
    leverage: float
    margin_factor: float


LEGS = st.builds(
    Drawn,
    symbol=st.sampled_from(SYMBOLS),
    side=st.sampled_from([Side.LONG, Side.SHORT]),
    mode=st.sampled_from([MarginMode.ISOLATED, MarginMode.CROSS]),
    notional=st.one_of(st.floats(100, 60_000), st.floats(60_000, 5_000_000)),
    entry_move=st.floats(0.8, 1.2),
    leverage=st.sampled_from([2.0, 5.0, 10.0, 20.0, 50.0]),
    margin_factor=st.floats(0.6, 2.0),
)


def tiers_for(family: str, symbol: str, inverse: bool, mark: float) -> tuple[Tier, ...]:
    if inverse:
        if rules_for(family).brackets_in_contracts:  # OKX sizes brackets in contracts, without deductions
            per_contract = INVERSE_CONTRACT_USD / mark
            return tuple(Tier(t.min_notional / per_contract, t.mmr) for t in COIN_BRACKETS)
        return COIN_BRACKETS
    market = load_markets("okx" if family == "okx" else "binance")[symbol]
    return market.core_tiers(rules_for(family).brackets_in_contracts)


def build(
    family: str, drawn: list[Drawn], marks: dict[str, float], wallet: float, inverse: bool, hedge: bool
) -> tuple[list[Position], list[Leg]]:
    markets = load_markets("okx" if family == "okx" else "binance")
    positions: list[Position] = []
    legs: list[Leg] = []
    taken: set[tuple[str, Side | None]] = set()
    for d in drawn:
        slot = (d.symbol, d.side if hedge else None)
        if slot in taken:
            continue
        taken.add(slot)
        market = markets[d.symbol]
        mark = market.mark * marks[d.symbol]
        entry = mark * d.entry_move
        size = INVERSE_CONTRACT_USD if inverse else market.contract_size
        contracts = (
            max(1.0, round(d.notional / size)) if inverse else max(0.001, round(d.notional / entry / size, 3))
        )
        value = contracts * size / entry if inverse else contracts * size * entry
        margin = value / d.leverage * d.margin_factor if d.mode is MarginMode.ISOLATED else None
        tiers = tiers_for(family, d.symbol, inverse, mark)
        kind = ContractType.INVERSE if inverse else ContractType.LINEAR
        positions.append(
            Position(
                d.symbol,
                d.side,
                contracts,
                size,
                entry,
                mark,
                d.mode,
                kind,
                d.leverage,
                margin,
                tiers,
                market.taker_fee,
            )
        )
        legs.append(
            Leg(
                d.symbol,
                d.side,
                dec(contracts),
                dec(size),
                dec(entry),
                dec(mark),
                d.mode,
                Brackets.from_tiers(tiers),
                inverse=inverse,
                margin=None if margin is None else dec(margin),
                taker=dec(market.taker_fee),
            )
        )
    return positions, legs


def close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-7, abs_tol=1e-9)


def same_price(a: float | None, b: float | None, mark: float) -> bool:
    """Equal prices. A price a million times the mark, or a millionth of it, counts as no price: that far
    out the root sits at u ≈ 0 (a position margined at exactly 1x), where float and Decimal rounding alone
    decide whether it exists."""

    def settled(price: float | None) -> float | None:
        return None if price is None or not 1e-6 * mark < price < 1e6 * mark else price

    return close(settled(a), settled(b))


def same_ratio(a: float | None, b: float | None) -> bool:
    """Equal margin ratios; beyond a million (a margin balance of ~0, its sign a matter of rounding) or None
    (a balance at or below zero) both say the same: liquidate."""

    def settled(ratio: float | None) -> float | None:
        return None if ratio is None or ratio > 1e6 else ratio

    return close(settled(a), settled(b))


@settings(max_examples=400, deadline=None)
@given(
    family=st.sampled_from(["binance", "bybit", "okx", "gate"]),
    drawn=st.lists(LEGS, min_size=1, max_size=4),
    marks=st.fixed_dictionaries({s: st.floats(0.85, 1.15) for s in SYMBOLS}),
    wallet=st.floats(50.0, 50_000.0),
    inverse=st.booleans(),
    hedge=st.booleans(),
)
def test_the_model_and_the_oracle_agree_on_every_leg(
    family: str, drawn: list[Drawn], marks: dict[str, float], wallet: float, inverse: bool, hedge: bool
) -> None:
    collateral = wallet / 60_000.0 if inverse else wallet  # a coin wallet for coin-margined legs
    positions, legs = build(family, drawn, marks, collateral, inverse, hedge)
    model = evaluate_account(Account(family, tuple(positions), collateral))
    oracle = evaluate(rules_for(family), Holdings(tuple(legs), dec(collateral))).risk

    for ours, theirs, position in zip(model.positions, oracle.positions, positions, strict=True):
        for field in ("liquidation_price", "bankruptcy_price"):
            assert same_price(getattr(ours, field), getattr(theirs, field), position.mark_price), (
                f"{family} {ours.symbol} {ours.side.value}: {field} model {getattr(ours, field)} "
                f"oracle {getattr(theirs, field)}"
            )
        assert close(ours.maintenance_margin, theirs.maintenance_margin), (
            f"{family} {ours.symbol} {ours.side.value}: maintenance model {ours.maintenance_margin} "
            f"oracle {theirs.maintenance_margin}"
        )
        assert same_ratio(ours.margin_ratio, theirs.margin_ratio), (ours.margin_ratio, theirs.margin_ratio)
    assert same_ratio(model.margin_ratio, oracle.margin_ratio)

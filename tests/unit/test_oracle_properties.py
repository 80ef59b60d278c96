"""Properties of the simulator's oracle on its own: what any venue's liquidation price must satisfy.

- At the reported liquidation price the margin balance equals the maintenance requirement, exactly (the
  bracket used is the one of the notional there).
- An isolated long safe at its entry is liquidated below it, a short above; bankruptcy lies beyond.
- More isolated margin moves the liquidation price away from the mark, never towards it.
- A cross symbol's liquidation price holds the account's other symbols at their marks.
- The watch intervals the engine caches are sound: any marks inside them, with the cross wallet anywhere at
  or above its floor, leave the account short of both liquidation and the margin-call ratio.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from daemon.core.types import MarginMode, Side
from daemon.sim.markets import load_markets
from daemon.sim.oracle import Brackets, Holdings, Leg, evaluate, rules_for, with_wallet
from daemon.sim.oracle.numbers import dec

VENUES = ["binance", "bybit", "okx"]
SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]


def a_leg(
    venue: str,
    symbol: str,
    side: Side,
    notional: float,
    mode: MarginMode,
    leverage: float = 10.0,
    entry_move: float = 1.0,
    mark_move: float = 1.0,
) -> Leg:
    market = load_markets(venue)[symbol]
    entry = market.mark * entry_move
    contracts = max(1.0, round(notional / entry / market.contract_size, 3))
    value = contracts * market.contract_size * entry
    return Leg(
        symbol=symbol,
        side=side,
        contracts=dec(contracts),
        contract_size=dec(market.contract_size),
        entry=dec(entry),
        mark=dec(market.mark * mark_move),
        mode=mode,
        brackets=Brackets.from_tiers(market.core_tiers(rules_for(venue).brackets_in_contracts)),
        margin=dec(value / leverage) if mode is MarginMode.ISOLATED else None,
        taker=dec(market.taker_fee),
    )


def at_mark(holdings: Holdings, symbol: str, mark: Decimal) -> Holdings:
    return replace(
        holdings,
        legs=tuple(replace(leg, mark=mark) if leg.symbol == symbol else leg for leg in holdings.legs),
    )


SIDES = st.sampled_from([Side.LONG, Side.SHORT])
NOTIONALS = st.one_of(st.floats(50, 50_000), st.floats(50_000, 20_000_000))


@settings(max_examples=300, deadline=None)
@given(
    venue=st.sampled_from(VENUES),
    symbol=st.sampled_from(SYMBOLS),
    side=SIDES,
    notional=NOTIONALS,
    leverage=st.floats(1.5, 75),
    mode=st.sampled_from([MarginMode.ISOLATED, MarginMode.CROSS]),
    wallet=st.floats(10, 1_000_000),
)
def test_at_the_liquidation_price_the_margin_balance_is_exactly_the_requirement(
    venue: str, symbol: str, side: Side, notional: float, leverage: float, mode: MarginMode, wallet: float
) -> None:
    holdings = Holdings((a_leg(venue, symbol, side, notional, mode, leverage),), dec(wallet))
    rules = rules_for(venue)
    [group] = evaluate(rules, holdings).groups
    assume(group.liquidation is not None)
    assert group.liquidation is not None
    [there] = evaluate(rules, at_mark(holdings, symbol, group.liquidation)).groups
    assert abs(there.margin_left) <= Decimal("1e-25") * max(Decimal(1), dec(notional))


@settings(max_examples=300, deadline=None)
@given(
    venue=st.sampled_from(VENUES),
    symbol=st.sampled_from(SYMBOLS),
    side=SIDES,
    notional=NOTIONALS,
    leverage=st.floats(1.5, 75),
    extra=st.floats(0.01, 5_000),
)
def test_an_isolated_leg_safe_at_entry_liquidates_on_its_losing_side_and_more_margin_moves_it_away(
    venue: str, symbol: str, side: Side, notional: float, leverage: float, extra: float
) -> None:
    rules = rules_for(venue)
    leg = a_leg(venue, symbol, side, notional, MarginMode.ISOLATED, leverage)
    [group] = evaluate(rules, Holdings((leg,))).groups
    assume(group.margin_left > 0 and group.liquidation is not None)
    assert group.liquidation is not None and group.bankruptcy is not None
    if side is Side.LONG:
        assert group.bankruptcy < group.liquidation < leg.entry
    else:
        assert leg.entry < group.liquidation < group.bankruptcy

    assert leg.margin is not None
    [richer] = evaluate(rules, Holdings((replace(leg, margin=leg.margin + dec(extra)),))).groups
    if richer.liquidation is not None:
        assert (richer.liquidation < group.liquidation) == (side is Side.LONG)


@settings(max_examples=200, deadline=None)
@given(
    venue=st.sampled_from(VENUES),
    sides=st.tuples(SIDES, SIDES),
    notionals=st.tuples(NOTIONALS, NOTIONALS),
    marks=st.tuples(st.floats(0.9, 1.1), st.floats(0.9, 1.1)),
    wallet=st.floats(100, 2_000_000),
)
def test_a_cross_symbols_liquidation_price_holds_the_other_symbols_at_their_marks(
    venue: str,
    sides: tuple[Side, Side],
    notionals: tuple[float, float],
    marks: tuple[float, float],
    wallet: float,
) -> None:
    legs = tuple(
        a_leg(venue, symbol, side, notional, MarginMode.CROSS, mark_move=move)
        for symbol, side, notional, move in zip(("BTCUSDT", "ETHUSDT"), sides, notionals, marks, strict=True)
    )
    holdings = Holdings(legs, dec(wallet))
    rules = rules_for(venue)
    for group in evaluate(rules, holdings).groups:
        if group.liquidation is None:
            continue
        moved = evaluate(rules, at_mark(holdings, group.symbol, group.liquidation))
        assert all(
            abs(g.margin_left) <= Decimal("1e-20") * dec(wallet + sum(notionals)) for g in moved.groups
        )


@settings(max_examples=200, deadline=None)
@given(
    venue=st.sampled_from(VENUES),
    drawn=st.lists(
        st.tuples(st.sampled_from(SYMBOLS), SIDES, NOTIONALS, st.sampled_from(list(MarginMode))),
        min_size=1,
        max_size=4,
        unique_by=lambda row: row[0],
    ),
    wallet=st.floats(100, 500_000),
    where=st.lists(st.floats(0.0, 1.0), min_size=4, max_size=4),
    threshold=st.floats(0.3, 0.95),
    withdrawn=st.floats(0.0, 1.0),
)
def test_marks_anywhere_inside_the_watch_intervals_reach_neither_liquidation_nor_a_margin_call(
    venue: str,
    drawn: list[tuple[str, Side, float, MarginMode]],
    wallet: float,
    where: list[float],
    threshold: float,
    withdrawn: float,
) -> None:
    rules = rules_for(venue)
    legs = tuple(a_leg(venue, s, side, n, mode, leverage=20) for s, side, n, mode in drawn)
    holdings = Holdings(legs, dec(wallet))
    verdict = evaluate(rules, holdings, watch_ratio=threshold)
    assume(all(g.watch is not None for g in verdict.groups))
    moved = holdings
    for group, fraction in zip(verdict.groups, where, strict=False):
        assert group.watch is not None
        low, high = group.watch
        mark = holdings.legs[group.legs[0]].mark
        low = low if low is not None else mark / 2
        high = high if high is not None else mark * 2
        inside = Decimal("1e-9") + dec(fraction) * (1 - Decimal("2e-9"))  # strictly between low and high
        moved = at_mark(moved, group.symbol, low + (high - low) * inside)
    if verdict.wallet_floor is not None:  # any withdrawal or funding down to the floor keeps them sound
        moved = replace(moved, wallet=moved.wallet - (moved.wallet - verdict.wallet_floor) * dec(withdrawn))
    after = evaluate(rules, moved)
    assert all(g.margin_left > 0 for g in after.groups)
    ratios = [p.margin_ratio for p in after.risk.positions]
    assert all(r is not None and r < threshold for r in ratios), ratios


@settings(max_examples=100, deadline=None)
@given(
    venue=st.sampled_from(VENUES),
    drawn=st.lists(st.tuples(st.sampled_from(SYMBOLS), SIDES, NOTIONALS), min_size=1, max_size=3),
    wallets=st.tuples(st.floats(0, 100_000), st.floats(0, 100_000)),
)
def test_a_wallet_move_on_an_all_isolated_account_changes_only_its_totals(
    venue: str, drawn: list[tuple[str, Side, float]], wallets: tuple[float, float]
) -> None:
    rules = rules_for(venue)
    legs = tuple(a_leg(venue, s, side, n, MarginMode.ISOLATED) for s, side, n in drawn)
    before = evaluate(rules, Holdings(legs, dec(wallets[0])), watch_ratio=0.8)
    moved = with_wallet(rules, before, dec(wallets[1]))
    assert moved is not None
    assert moved.risk == evaluate(rules, Holdings(legs, dec(wallets[1])), watch_ratio=0.8).risk


def test_a_wallet_move_on_a_cross_account_asks_for_the_whole_account_again() -> None:
    rules = rules_for("binance")
    legs = (a_leg("binance", "BTCUSDT", Side.LONG, 10_000, MarginMode.CROSS),)
    assert with_wallet(rules, evaluate(rules, Holdings(legs, dec(1_000))), dec(900)) is None

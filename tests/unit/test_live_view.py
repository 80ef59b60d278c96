"""The connector's live view gives `view(state)` exactly, after every mark, whatever the order and grouping.

Accounts are drawn as in `test_margin_incremental.py` (every family, cross and isolated, hedge legs, linear and
inverse), turned into an account state (a snapshot, market rules, marks, a wallet), then fed a drawn sequence of
mark moves, several at once (as the connector folds the marks of one event-loop pass), with now and then a
wallet change, a symbol's first mark, a mark that makes a leg unmodellable, or a position push or reconciliation
(`refresh`) that restates a leg: its exchange-stated prices only (the model is kept), or its size, entry or
isolated margin (rebuilt). After each step the live view must equal the full view (dataclass ==: bit for bit),
and legs that nothing moved keep their very objects.
"""

from __future__ import annotations

import dataclasses

from hypothesis import event, given, settings
from hypothesis import strategies as st

from daemon.core.events import (
    BalanceUpdate,
    MarketRules,
    MarkPrice,
    PositionFacts,
    PositionSnapshot,
    PositionUpdate,
)
from daemon.core.live_view import LiveView
from daemon.core.state import AccountState, apply
from daemon.core.types import Account, MarginMode, Position
from daemon.core.view import view
from tests.unit.test_margin_incremental import accounts

CHECKED = settings(max_examples=200, deadline=None)


@dataclasses.dataclass(frozen=True)
class Restatement:
    facts: PositionFacts
    snapshot: bool  # a reconciliation's full snapshot (else a push about this leg alone)


Step = list[tuple[str, float]] | float | Restatement  # marks moved together, a wallet, or a restated leg


def state_of(account: Account, exchange_prices: bool, first_marks: set[str]) -> AccountState:
    """The account as the connector would hold it after its snapshot, rules, marks (those of `first_marks`
    symbols) and wallet."""
    state = AccountState("acct", account.exchange)
    facts = tuple(
        PositionFacts(
            symbol=p.symbol,
            side=p.side,
            contracts=p.contracts,
            entry_price=p.entry_price,
            mark_price=p.mark_price,
            contract_size=p.contract_size,
            contract_type=p.contract_type,
            margin_mode=p.margin_mode,
            leverage=p.leverage,
            isolated_margin=p.isolated_margin,
            exchange_liquidation_price=(
                p.entry_price * 0.5 if exchange_prices and p.margin_mode is MarginMode.CROSS else None
            ),
        )
        for p in account.positions
    )
    state, _ = apply(state, PositionSnapshot(facts, 1))
    for p in account.positions:
        if p.symbol not in state.rules:
            rules = MarketRules(
                p.symbol, p.contract_size, p.contract_type, p.tiers, p.taker_fee_rate, p.max_leverage
            )
            state, _ = apply(state, rules)
    for p in account.positions:
        if p.symbol in first_marks and p.symbol not in state.marks:
            state, _ = apply(state, MarkPrice(p.symbol, p.mark_price, 2))
    if account.wallet_balance is not None:
        state, _ = apply(state, BalanceUpdate(account.wallet_balance, 3))
    return state


@st.composite
def runs(draw: st.DrawFn) -> tuple[AccountState, list[Step]]:
    account = draw(accounts())
    symbols = sorted({p.symbol for p in account.positions})
    marked = set(draw(st.lists(st.sampled_from(symbols), unique=True)))
    state = state_of(account, draw(st.booleans()), marked if draw(st.booleans()) else set(symbols))
    marks = {p.symbol: p.mark_price for p in account.positions}
    steps: list[Step] = []
    for _ in range(draw(st.integers(1, 12))):
        roll = draw(st.integers(0, 9))
        if roll == 0:
            steps.append((account.wallet_balance or 1000.0) * draw(st.floats(0.5, 1.5)))  # a wallet change
            continue
        if roll == 1:
            steps.append(draw(restatements(account.positions)))
            continue
        moves = []
        for symbol in draw(st.lists(st.sampled_from(symbols), min_size=1, max_size=4)):
            # Mostly small moves (the root stays in its bracket), some large (it leaves it), rarely nonsense.
            factor = draw(st.sampled_from([0.999, 1.001, 0.97, 1.05, 0.7, 1.4, 0.0]))
            if factor:
                marks[symbol] *= factor
            moves.append((symbol, marks[symbol] if factor else 0.0))
        steps.append(moves)
    return state, steps


@st.composite
def restatements(draw: st.DrawFn, positions: tuple[Position, ...]) -> Restatement:
    """A push (or a reconciliation's snapshot) restating a leg: the exchange's mark and liquidation price, and
    now and then a field the model reads."""
    p = draw(st.sampled_from(positions))
    stated = p.mark_price * draw(st.sampled_from([0.99, 1.0, 1.01]))
    facts = PositionFacts(
        p.symbol, p.side, p.contracts, mark_price=stated, exchange_liquidation_price=stated * 0.8
    )
    field = draw(st.sampled_from([None, None, "contracts", "entry_price", "isolated_margin"]))
    if field is not None and getattr(p, field) is not None:
        facts = dataclasses.replace(facts, **{field: getattr(p, field) * 1.01})
    return Restatement(facts, snapshot=draw(st.booleans()))


@CHECKED
@given(runs())
def test_live_view_equals_the_full_view(
    run: tuple[AccountState, list[Step]],
) -> None:
    state, steps = run
    live = LiveView(state)
    assert live.view == view(state)
    ts = 10
    for step in steps:
        ts += 1
        before = {leg.key: leg for leg in live.view.legs}
        if isinstance(step, float):
            state, _ = apply(state, BalanceUpdate(step, ts))
            assert live.marks(state, ()) == view(state)  # not only marks moved: rebuilt
            continue
        if isinstance(step, Restatement):
            if step.snapshot:  # every leg as it stands, this one restated
                legs = [
                    step.facts if (f.symbol, f.side) == (step.facts.symbol, step.facts.side) else f
                    for f in state.legs.values()
                ]
                state, _ = apply(state, PositionSnapshot(tuple(legs), ts))
            else:
                state, _ = apply(state, PositionUpdate((step.facts,), ts))
            rebuilds = live.rebuilds
            got = live.refresh(state)
            assert got == view(state)
            event("restated, model kept" if live.rebuilds == rebuilds else "restated, rebuilt")
            if live.rebuilds == rebuilds:
                for leg in got.legs:
                    if leg.facts is before[leg.key].facts:
                        assert leg is before[leg.key]
            continue
        for symbol, price in step:
            state, _ = apply(state, MarkPrice(symbol, price, ts))
        rebuilds = live.rebuilds
        got = live.marks(state, {symbol for symbol, _ in step})
        assert got == view(state)
        event("incremental" if live.rebuilds == rebuilds else "rebuilt")
        if live.rebuilds == rebuilds:
            moved = {symbol for symbol, _ in step}
            cross_moved = any(
                leg.key[0] in moved and leg.facts.margin_mode is MarginMode.CROSS for leg in got.legs
            )
            for leg in got.legs:
                untouched = leg.key[0] not in moved and not (
                    cross_moved and leg.facts.margin_mode is MarginMode.CROSS
                )
                if untouched:
                    assert leg is before[leg.key]  # nothing moved it: the same object, for readers to skip

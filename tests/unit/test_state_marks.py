"""A leg opened on a symbol the account had stopped holding is never judged on the mark from before.

Found by the market-path harness (bybit seed 100, 24 steps): an isolated ETH short was liquidated by a gap, the
mark stream of ETH stopped with it, and the market moved 3 % meanwhile. A new 25x ETH short then opened 3.5 %
from liquidation was judged on the old mark, 0.6 % from liquidation, and topped up at once (152 USDT) although
the exchange's distance was far above the trigger.
"""

from __future__ import annotations

from daemon.core.events import MarkPrice, PositionFacts, PositionSnapshot, PositionUpdate
from daemon.core.state import AccountState, apply
from daemon.core.types import MarginMode, Side
from daemon.core.view import model_position

ETH = "ETH/USDT:USDT"


def _short(contracts: float, entry: float, mark: float | None = None) -> PositionFacts:
    return PositionFacts(
        ETH,
        Side.SHORT,
        contracts,
        entry_price=entry,
        mark_price=mark,
        margin_mode=MarginMode.ISOLATED,
        leverage=25.0,
        isolated_margin=contracts * entry / 25.0,
    )


def _holding_at(mark: float) -> AccountState:
    state = AccountState("acct", "bybit")
    state, _ = apply(state, PositionSnapshot((_short(0.571, 3500.0),), 1_000))
    state, _ = apply(state, MarkPrice(ETH, mark, 2_000))
    return state


def test_a_closed_symbol_forgets_its_mark() -> None:
    state = _holding_at(3844.04)
    state, _ = apply(state, PositionUpdate((_short(0.0, 3500.0),), 3_000))
    assert ETH not in state.marks


def test_a_leg_reopened_later_waits_for_a_fresh_mark() -> None:
    state = _holding_at(3844.04)
    state, _ = apply(state, PositionSnapshot((), 3_000))  # gone (liquidated) in a snapshot
    state, _ = apply(
        state, MarkPrice(ETH, 3844.04, 3_100)
    )  # a frame already on its way when the stream stopped
    state, _ = apply(state, PositionUpdate((_short(0.535, 3734.89),), 9_000))  # a new leg, 3 % lower
    position, mark, why = model_position(state, state.legs[(ETH, Side.SHORT)])
    assert position is None and mark is None and why == "no mark price yet"
    state, _ = apply(state, MarkPrice(ETH, 3734.89, 9_500))
    _, mark, why = model_position(state, state.legs[(ETH, Side.SHORT)])
    assert mark == 3734.89 and why != "no mark price yet"


def test_a_reopened_leg_with_its_own_mark_uses_it() -> None:
    state = _holding_at(3844.04)
    state, _ = apply(state, PositionUpdate((_short(0.0, 3500.0),), 3_000))
    state, _ = apply(state, PositionUpdate((_short(0.535, 3734.89, mark=3734.89),), 9_000))
    _, mark, _ = model_position(state, state.legs[(ETH, Side.SHORT)])
    assert mark == 3734.89


def test_marks_of_symbols_still_held_stay() -> None:
    state = _holding_at(3844.04)
    state, _ = apply(state, PositionUpdate((_short(0.3, 3500.0),), 3_000))  # reduced, still held
    assert state.marks[ETH].price == 3844.04

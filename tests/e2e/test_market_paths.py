"""Randomized market paths, a fixed seed set per dialect: the real daemon against the simulator's independent
oracle, through mark walks, gaps through liquidation, trading, transfers, funding, faults and SIGKILLs, with the
invariants of issue 8 checked after every quiet period (tests/paths). A failing seed replays with
`python bench/market_paths.py --dialect <dialect> --replay <seed> --print-path`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.core.types import MarginMode, Side
from daemon.sim.engine import Engine
from daemon.sim.markets import load_markets
from tests.paths.executor import Executor, run_path
from tests.paths.generator import DIALECTS, FAULTS, PathOptions, generate
from tests.paths.picture import differences, oracle_legs

# Short paths: 14 steps (10 drawn, quiet checks after the 5th and at the end), about 10-45 s each.
OPTIONS = PathOptions(steps=10, quiet_every=5, sim_restart=True)


# `make test` plays four; the three marked slow (`make test-slow`, about a minute and a half) repeat what others
# here and a dedicated test already hold, so the everyday run stays near ten minutes.
SLOW = pytest.mark.slow

SEEDS = [
    # Clean on main: SIGKILLs, stalls beyond stale_after_s, drops, an exchange restart, hedge legs (binance-35),
    # a 429 burst and an answer after the client's timeout (okx-15); bybit-7 mixes the same on Bybit.
    pytest.param("binance", 35, id="binance-35"),
    pytest.param("bybit", 7, id="bybit-7", marks=SLOW),
    pytest.param("okx", 15, id="okx-15"),
    # Caught defects before their fixes landed (strict xfail until then, plain regression guards now): a
    # malformed frame freezing the marks until stale_after_s (feeds; binance-202, also held by
    # tests/integration/test_feed_recovery.py), Bybit balance pushes counting the PnL twice (gateway; bybit-9).
    pytest.param("binance", 202, id="binance-202", marks=SLOW),
    pytest.param("bybit", 9, id="bybit-9"),
    # A gap through liquidation told as an all-clear on Bybit and OKX (liq): caught by these in about two runs of
    # three before the fix (whether the gap's mark frame or the close push reaches the daemon first is a race),
    # told from the exchange's records every time since.
    pytest.param("bybit", 58, id="bybit-58"),
    pytest.param(
        "okx", 2, id="okx-2", marks=SLOW
    ),  # the OKX case is held by tests/e2e/test_gap_liquidation.py
]


@pytest.mark.parametrize(("dialect", "seed"), SEEDS)
async def test_market_path_keeps_every_invariant(dialect: str, seed: int, tmp_path: Path) -> None:
    path = generate(seed, dialect, OPTIONS)
    result = await run_path(path, tmp_path)
    assert result.ok, f"{result.describe()}\n{path.describe()}\n{result.daemon_output}"
    assert result.steps == len(path.steps) and result.events > 0


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32 - 1), dialect=st.sampled_from(DIALECTS))
def test_a_seed_always_maps_to_the_same_printable_path(seed: int, dialect: str) -> None:
    path = generate(seed, dialect, OPTIONS)
    assert path == generate(seed, dialect, OPTIONS)
    assert path.describe() == generate(seed, dialect, OPTIONS).describe()
    assert path.steps[-1].op == "quiet"  # every path ends with a check
    for step in path.steps:
        assert step.op == "quiet" or hasattr(Executor, f"_do_{step.op}"), step.op


def test_the_generator_mixes_every_kind_of_step_over_a_few_seeds() -> None:
    ops = {
        step.op
        for seed in range(40)
        for step in generate(seed, "binance", PathOptions(sim_restart=True)).steps
    }
    assert ops >= FAULTS
    assert {"walk", "jump", "approach", "gap", "funding", "open", "add", "reduce", "close", "flip"} <= ops
    assert {"transfer", "leverage", "kill", "quiet"} <= ops


def _status_of(engine: Engine, api_key: str) -> dict[str, Any]:
    """The /status the daemon would give if its picture were exactly the oracle's."""
    legs = [
        {
            "symbol": symbol,
            "side": side,
            **{k: v for k, v in figures.items() if k not in ("price_tick", "base_size")},
        }
        for (symbol, side), figures in oracle_legs(engine, api_key).items()
    ]
    wallet = engine.account(api_key).wallet["USDT"]
    return {"accounts": {"a": {"ready": True, "state": "fresh", "legs": legs, "wallet_balance": wallet}}}


def test_the_picture_check_sees_what_differs_and_nothing_else() -> None:
    engine = Engine(load_markets("binance"))
    engine.add_account("k", "s", wallet={"USDT": 5_000.0})
    engine.set_margin_mode("k", "ETHUSDT", MarginMode.ISOLATED)
    engine.set_leverage("k", "ETHUSDT", 10)
    engine.open_position("k", "ETHUSDT", Side.LONG, 0.5)
    engine.open_position("k", "BTCUSDT", Side.SHORT, 0.01)  # cross: the wallet is compared
    status = _status_of(engine, "k")
    assert differences(status, "a", engine, "k") == []

    leg = next(leg for leg in status["accounts"]["a"]["legs"] if leg["symbol"] == "ETH/USDT:USDT")
    leg["liquidation_price"] *= 1.001
    leg["entry_price"] += 1.0
    status["accounts"]["a"]["wallet_balance"] += 5.0
    found = differences(status, "a", engine, "k")
    assert [invariant for invariant, _ in found] == ["picture", "picture", "liquidation_price"]
    assert "wallet" in found[0][1] and "entry_price" in found[1][1]

    leg["liquidation_price"] = None  # unknown is never compared, only a figure the daemon states
    status["accounts"]["a"]["legs"] = []
    assert [d for _, d in differences(status, "a", engine, "k") if "misses the leg" in d]


BYBIT_12001_LEGS = (  # bybit seed 12001 after step 29: a small ETH leg beside two BTC legs, all cross
    ("BTCUSDT", Side.LONG, 0.109, 73_346.8),
    ("ETHUSDT", Side.LONG, 0.1, 3_496.5938),
    ("BTCUSDT", Side.SHORT, 0.488, 71_080.8262295082),  # last: the others' profit carries it
)


def _bybit_12001(entry_at_tick: bool) -> Engine:
    engine = Engine(load_markets("bybit"), family="bybit")
    engine.add_account("k", "s", wallet={"USDT": 11_953.433062103819})
    engine.set_hedge_mode("k", True)
    engine.set_marks({"BTCUSDT": 100_610.6, "ETHUSDT": 3_425.84})
    for symbol, side, contracts, entry in BYBIT_12001_LEGS:
        tick = engine.markets[symbol].price_tick
        stated = round(entry / tick) * tick if entry_at_tick else entry
        engine.set_position("k", symbol, side, contracts, stated, MarginMode.CROSS, leverage=5)
    return engine


def test_a_liquidation_price_may_be_off_by_what_entries_stated_at_the_tick_explain_and_no_more() -> None:
    """Bybit states entries at the price tick: the daemon's PnL is then known to within half a tick per unit,
    and a small leg's cross liquidation price moves by that error over its size (bybit seed 12001: 0.12 USDT
    on ETH's, 3e-4 of it). The exact rules applied to the stated entries are within the check; a figure off
    by more than the rounding explains is not: 1 % on that small leg, 1e-4 on a big one."""
    exact, stated = _bybit_12001(entry_at_tick=False), _bybit_12001(entry_at_tick=True)
    status = _status_of(stated, "k")  # the exact rules applied to what the wire states
    stated_eth = oracle_legs(stated, "k")[("ETH/USDT:USDT", "long")]["liquidation_price"]
    exact_eth = oracle_legs(exact, "k")[("ETH/USDT:USDT", "long")]["liquidation_price"]
    assert abs(stated_eth / exact_eth - 1) > 1e-4  # the rounding alone moves it past the plain tolerance
    assert differences(status, "a", exact, "k") == []

    legs = {(leg["symbol"], leg["side"]): leg for leg in status["accounts"]["a"]["legs"]}
    legs[("ETH/USDT:USDT", "long")]["liquidation_price"] = exact_eth * 1.01
    legs[("BTC/USDT:USDT", "short")]["liquidation_price"] *= 1.0001
    found = differences(status, "a", exact, "k")
    assert [invariant for invariant, _ in found] == ["liquidation_price", "liquidation_price"]

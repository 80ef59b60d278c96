"""Randomized market paths, a fixed seed set per dialect: the real daemon against the simulator's independent
oracle, through mark walks, gaps through liquidation, trading, transfers, funding, faults and SIGKILLs, with the
invariants of issue 8 checked after every quiet period (tests/paths). A failing seed replays with
`python bench/market_paths.py --dialect <dialect> --replay <seed> --print-path`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.paths.executor import Executor, run_path
from tests.paths.generator import DIALECTS, FAULTS, PathOptions, generate

# Short paths: about 30-50 s each with the daemon's start and every quiet check.
OPTIONS = PathOptions(steps=14, quiet_every=5, sim_restart=True)

SEEDS = [
    pytest.param(
        "binance",
        1,
        id="binance-1",
        marks=pytest.mark.xfail(
            reason="a Binance position stream declared deaf after a flip raises a stale-data alert within 5 s "
            "of a reconnect (being fixed)",
            strict=False,
        ),
    ),
    pytest.param("bybit", 1, id="bybit-1"),
    pytest.param("okx", 1, id="okx-1"),
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

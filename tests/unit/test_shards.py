"""Shard planning, played as a cluster would play it: whatever instances join and leave, once membership is
stable for a few rounds every shard has exactly one holder and nobody holds more than its fair share."""

from __future__ import annotations

import os
import subprocess
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.core.shards import accounts_by_shard, fair_share, plan, shard_of


def _round(holders: dict[int, str | None], live: list[str], shards: int) -> None:
    """One renewal round: each live instance in turn plans on what the table shows, then acts."""
    for me in live:
        held = [s for s, owner in holders.items() if owner == me]
        free = [s for s, owner in holders.items() if owner is None]
        step = plan(me, shards, held, free, live)
        for shard in step.release:
            holders[shard] = None
        for shard in step.claim:
            if holders[shard] is None:  # another instance may have been faster in a real round
                holders[shard] = me


@settings(max_examples=150, deadline=None)
@given(
    shards=st.integers(1, 96),
    memberships=st.lists(
        st.sets(st.sampled_from([f"i{n}" for n in range(6)]), min_size=1), min_size=1, max_size=6
    ),
)
def test_every_shard_ends_with_one_holder_within_its_fair_share(
    shards: int, memberships: list[set[str]]
) -> None:
    holders: dict[int, str | None] = dict.fromkeys(range(shards))
    for members in memberships:
        live = sorted(members)
        # The instances that left lose their leases (they expire).
        for shard, owner in holders.items():
            if owner is not None and owner not in members:
                holders[shard] = None
        for _ in range(4):
            _round(holders, live, shards)
        assert all(owner in members for owner in holders.values()), holders
        share = fair_share(shards, len(live))
        for me in live:
            assert sum(owner == me for owner in holders.values()) <= share


def test_an_instance_gives_up_only_what_is_above_its_share() -> None:
    held = list(range(10))
    step = plan("a", 16, held, free=[], live=["a", "b"])
    assert len(step.release) == 2 and set(step.release) <= set(held) and step.claim == ()
    assert plan("a", 16, held[:8], free=[8, 9], live=["a", "b"]).claim == ()


def test_the_shard_of_an_account_is_the_same_in_every_process() -> None:
    accounts = [f"account-{n}" for n in range(50)] + ["binance-main", "okx Ω"]
    here = [shard_of(a, 64) for a in accounts]
    code = "import sys, json; from daemon.core.shards import shard_of; print(json.dumps([shard_of(a, 64) for a in json.loads(sys.argv[1])]))"
    import json

    for seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", code, json.dumps(accounts)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )
        assert json.loads(out.stdout) == here
    grouped = accounts_by_shard(accounts, 64)
    assert sorted(a for ids in grouped.values() for a in ids) == sorted(accounts)
    assert all(shard_of(a, 64) == shard for shard, ids in grouped.items() for a in ids)

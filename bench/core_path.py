"""The pure part of the daemon's work per mark, in one process: what a runner's step does between ccxt and the
journal, without sockets, so that a change to the core can be measured apart from the noise of the whole daemon.

One account of `--legs` legs (one symbol each; isolated, cross with `--cross`, or alternately cross and isolated
with `--mixed`, as `bench/marks.py`'s simulated accounts are), at marks far from every
threshold (most marks a daemon sees). Per mark, as the connector and the runner do it: the mark folded into the
state (`state.apply`), the live view moved (`LiveView.marks`), the policy on the legs whose view changed
(`decide(..., only=...)`), and the next deadline with whether an alert is held back (`clock_plan`, with the
runner's memo of the streams' health). Each figure is the median of `--repeat` batches of `--marks` marks, with
the min–max spread, in µs per mark; the load average is printed before and after.

    .venv/bin/python bench/core_path.py
    .venv/bin/python bench/core_path.py --legs 20 --cross
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from daemon.core.events import (
    BalanceUpdate,
    Event,
    Freshness,
    MarketRules,
    MarkPrice,
    PositionFacts,
    PositionSnapshot,
    StreamHealth,
)
from daemon.core.live_view import LiveView
from daemon.core.policy import decide
from daemon.core.policy_deadline import clock_plan
from daemon.core.policy_memory import PolicyMemory
from daemon.core.policy_rules import RuleSet, Thresholds
from daemon.core.policy_stale import KindsMemo
from daemon.core.state import AccountState, apply
from daemon.core.tiers import derive_maintenance_amounts
from daemon.core.types import ContractType, MarginMode, Side, Tier

ACCOUNT = "bench"
TIERS = derive_maintenance_amounts([Tier(0.0, 0.004), Tier(50_000.0, 0.005), Tier(250_000.0, 0.01)])


def _opened(symbols: list[str], kind: str) -> tuple[AccountState, LiveView, PolicyMemory, RuleSet]:
    def mode(index: int) -> MarginMode:
        cross = kind == "cross" or (kind == "mixed" and index % 2 == 0)
        return MarginMode.CROSS if cross else MarginMode.ISOLATED

    state = AccountState(ACCOUNT, "binance")
    events: list[Event] = [MarketRules(s, 1.0, ContractType.LINEAR, TIERS) for s in symbols]
    legs = [
        PositionFacts(
            s, Side.LONG, 1.0, entry_price=100.0, margin_mode=mode(i), leverage=10.0, isolated_margin=10.0
        )
        for i, s in enumerate(symbols)
    ]
    events += [PositionSnapshot(tuple(legs), 0), BalanceUpdate(10_000.0, 0)]
    events += [MarkPrice(s, 100.0, 0) for s in symbols]
    events += [StreamHealth(f"mark:{s}", Freshness.FRESH, 0) for s in symbols]
    events += [StreamHealth("positions", Freshness.FRESH, 0), StreamHealth("balance", Freshness.FRESH, 0)]
    for event in events:
        state, _ = apply(state, event)
    live = LiveView(state)
    rules = RuleSet(Thresholds())
    memory, _ = decide(
        live.view, state.health, (), rules, PolicyMemory(), [], 0.0, exchange="binance", positions_known=True
    )
    return state, live, memory, rules


def batch(symbols: list[str], kind: str, marks: int, burst: bool = False) -> float:
    """µs per mark over `marks` marks, the symbols in turn, prices wandering within ±0.3 % of entry; with
    `burst`, µs per burst: every symbol's mark moved, then one decision (what a 1 Hz all-symbols tick asks of
    each account)."""
    state, live, memory, rules = _opened(symbols, kind)
    kinds = KindsMemo()
    decided = {leg.key: leg for leg in live.view.legs}
    held = frozenset(symbols)
    started = time.perf_counter()
    for i in range(marks):
        now = 1.0 + i * 0.001
        moved = symbols if burst else (symbols[i % len(symbols)],)
        for symbol in moved:
            state, _ = apply(state, MarkPrice(symbol, 100.0 + (i % 7) * 0.05, int(now * 1000)))
        view = live.marks(state, moved)
        only = {leg.key for leg in view.legs if decided.get(leg.key) is not leg}
        memory, _alerts = decide(
            view,
            state.health,
            (),
            rules,
            memory,
            [],
            now,
            exchange="binance",
            positions_known=True,
            only=only,
        )
        decided = {leg.key: leg for leg in view.legs}
        clock_plan(memory, state.health, rules, [], now, account=ACCOUNT, held_symbols=held, kinds_of=kinds)
    return (time.perf_counter() - started) / marks * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--legs", type=int, default=3, help="legs (one symbol each; default 3)")
    parser.add_argument("--cross", action="store_true", help="cross legs (default: isolated)")
    parser.add_argument("--mixed", action="store_true", help="alternately cross and isolated legs")
    parser.add_argument(
        "--burst", action="store_true", help="every leg's mark moved per decision (figures per burst)"
    )
    parser.add_argument("--marks", type=int, default=20_000, help="marks per batch (default 20,000)")
    parser.add_argument("--repeat", type=int, default=5, help="batches (default 5)")
    args = parser.parse_args()
    symbols = [f"S{i}/USDT:USDT" for i in range(args.legs)]
    print("command: .venv/bin/python bench/core_path.py " + " ".join(sys.argv[1:]))
    print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    kind = "mixed" if args.mixed else "cross" if args.cross else "isolated"
    batch(symbols, kind, 1_000, args.burst)  # warm-up: caches filled, code paths taken once
    figures = [batch(symbols, kind, args.marks, args.burst) for _ in range(args.repeat)]
    unit = "burst (all legs' marks moved)" if args.burst else "mark"
    print(
        f"{args.legs} {kind} legs: {statistics.median(figures):.1f} µs per {unit} "
        f"({min(figures):.1f}–{max(figures):.1f}) over {args.repeat} batches of {args.marks:,} marks"
    )
    print("load average after: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()

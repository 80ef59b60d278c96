"""Per-mark cost of the margin model against account size: a full re-evaluation against the incremental model.

For each kind (every leg isolated, every leg cross) and size (3, 10, 50, 200, 800 legs, one symbol each, on a
10-bracket Binance-style table), one symbol's mark moves per call, the symbols in turn, prices wandering within
±3 % of entry. Timed per mark:

  full         what the daemon does today: the account with the new mark, then `evaluate_account` on it
  update       `IncrementalAccount.update_mark` alone: the model's own work for one mark
  +moved       the update, then the figures of the legs that mark moves (what a policy that judges the changed
               legs reads)
  +all         the update, then every leg's figures (`account_risk()`, O(n)), to set beside `full`

Each figure is the median over --repeat timed batches (each at least 20 ms long) with the min–max spread, in
µs per mark. Before timing, the incremental figures are checked equal to `evaluate_account`'s. The machine's
load average is printed before and after: on a shared machine the spread says how far to trust a figure.

Run: `make bench` or `.venv/bin/python bench/model.py [--repeat N] [--sizes 3,10,...]`.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import replace

from daemon.core.margin import evaluate_account
from daemon.core.margin.incremental import IncrementalAccount
from daemon.core.tiers import derive_maintenance_amounts
from daemon.core.types import Account, MarginMode, Position, Side, Tier

TIERS = derive_maintenance_amounts(
    [
        Tier(0.0, 0.004),
        Tier(50_000.0, 0.005),
        Tier(250_000.0, 0.01),
        Tier(1_000_000.0, 0.025),
        Tier(5_000_000.0, 0.05),
        Tier(20_000_000.0, 0.1),
        Tier(50_000_000.0, 0.125),
        Tier(100_000_000.0, 0.15),
        Tier(200_000_000.0, 0.25),
        Tier(500_000_000.0, 0.5),
    ]
)
STEPS = 64  # distinct prices per symbol, visited in turn


def build(size: int, mode: MarginMode, rng: random.Random) -> Account:
    """`size` legs, one symbol each, 1,000 to 200,000 USDT notional (some above the first bracket)."""
    positions = []
    for index in range(size):
        entry = rng.uniform(1.0, 50_000.0)
        positions.append(
            Position(
                symbol=f"S{index}USDT",
                side=rng.choice([Side.LONG, Side.SHORT]),
                contracts=rng.uniform(1_000.0, 200_000.0) / entry,
                contract_size=1.0,
                entry_price=entry,
                mark_price=entry * rng.uniform(0.97, 1.03),
                margin_mode=mode,
                leverage=20.0,
                tiers=TIERS,
            )
        )
    notional = sum(p.quantity * p.mark_price for p in positions)
    return Account("binance", tuple(positions), wallet_balance=notional * 0.2)


def samples(call: Callable[[], object], repeat: int) -> list[float]:
    """Seconds per call from `repeat` timed batches, each long enough (~20 ms) to dwarf the clock."""
    batch = 1
    while True:
        start = time.perf_counter()
        for _ in range(batch):
            call()
        if time.perf_counter() - start > 0.02:
            break
        batch *= 2
    result = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(batch):
            call()
        result.append((time.perf_counter() - start) / batch)
    return result


def cell(seconds: list[float]) -> str:
    micro = [s * 1e6 for s in seconds]
    return f"{statistics.median(micro):>9.1f} ({min(micro):.1f}–{max(micro):.1f})"


def measure(account: Account, repeat: int, rng: random.Random) -> dict[str, list[float]]:
    legs = account.positions
    moves = [(p.symbol, p.entry_price * rng.uniform(0.97, 1.03)) for _ in range(STEPS) for p in legs]
    rng.shuffle(moves)
    turn = [0]

    def next_move() -> tuple[str, float]:
        turn[0] = (turn[0] + 1) % len(moves)
        return moves[turn[0]]

    index_of = {p.symbol: i for i, p in enumerate(legs)}
    current = list(legs)

    def full() -> object:
        symbol, price = next_move()
        i = index_of[symbol]
        current[i] = replace(current[i], mark_price=price)
        return evaluate_account(replace(account, positions=tuple(current)))

    model = IncrementalAccount(account)

    def update() -> object:
        symbol, price = next_move()
        model.update_mark(symbol, price)
        return None

    def moved() -> object:
        symbol, price = next_move()
        model.update_mark(symbol, price)
        return model.risks_of(symbol)

    def every() -> object:
        symbol, price = next_move()
        model.update_mark(symbol, price)
        return model.account_risk()

    for _ in range(3 * len(legs)):  # the same figures as the full solve, before anything is timed
        every()
    if model.account_risk() != evaluate_account(model.account):
        raise SystemExit("incremental figures differ from evaluate_account")
    return {
        "full": samples(full, repeat),
        "update": samples(update, repeat),
        "+moved": samples(moved, repeat),
        "+all": samples(every, repeat),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="timed batches per figure (median reported)")
    parser.add_argument("--sizes", default="3,10,50,200,800", help="legs per account, comma-separated")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    load_before = os.getloadavg()
    print(
        f"load average before: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f} ({os.cpu_count()} CPUs)"
    )
    print("µs per mark, median (min–max) of", args.repeat, "batches\n")
    header = (
        f"{'kind':<8} {'legs':>5} {'full':>22} {'update':>22} {'+moved':>22} {'+all':>22} {'full/+moved':>12}"
    )
    print(header)
    print("-" * len(header))
    rng = random.Random(7)
    for mode in (MarginMode.ISOLATED, MarginMode.CROSS):
        for size in sizes:
            figures = measure(build(size, mode, rng), args.repeat, rng)
            ratio = statistics.median(figures["full"]) / statistics.median(figures["+moved"])
            print(
                f"{mode.value:<8} {size:>5} {cell(figures['full']):>22} {cell(figures['update']):>22} "
                f"{cell(figures['+moved']):>22} {cell(figures['+all']):>22} {ratio:>11.0f}x"
            )
    load_after = os.getloadavg()
    print(f"\nload average after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")


if __name__ == "__main__":
    main()

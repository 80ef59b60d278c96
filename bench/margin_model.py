"""Margin-model throughput: isolated evaluations per second, and re-evaluating a cross account after one mark change.

Every cross symbol's liquidation price holds the other symbols at their marks, so one mark change moves every
other symbol's liquidation price. marginguard keeps account totals (PnL and requirement at the marks) and lets each
symbol subtract its own share: linear in the account's size. A naive model re-sums the others for each symbol:
quadratic. This prints both, and the growth factor as the account grows 4x (about 4 for linear, 16 for quadratic).

Run: `make bench` or `.venv/bin/python bench/margin_model.py [--repeat N]`.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import replace

from daemon.core.margin import evaluate_account, family_for
from daemon.core.margin.account import Group, bankruptcy_of, leg_requirement_at_mark, solve_group
from daemon.core.margin.terms import pnl_terms, to_u
from daemon.core.tiers import derive_maintenance_amounts
from daemon.core.types import Account, MarginMode, Position, Side, Tier

TIERS = derive_maintenance_amounts(
    [Tier(0.0, 0.004), Tier(50_000.0, 0.005), Tier(600_000.0, 0.0065), Tier(3_000_000.0, 0.01)]
)


def cross_account(size: int, rng: random.Random) -> Account:
    positions = []
    for index in range(size):
        entry = rng.uniform(1.0, 50_000.0)
        positions.append(
            Position(
                symbol=f"S{index}USDT",
                side=rng.choice([Side.LONG, Side.SHORT]),
                contracts=rng.uniform(0.1, 10.0) * 1_000.0 / entry,
                contract_size=1.0,
                entry_price=entry,
                mark_price=entry * rng.uniform(0.97, 1.03),
                margin_mode=MarginMode.CROSS,
                tiers=TIERS,
            )
        )
    return Account("binance", tuple(positions), wallet_balance=size * 500.0)


def naive_liquidation_prices(account: Account) -> list[float | None]:
    """What a model without account totals does: for every symbol, sum every other symbol again."""
    family = family_for(account.exchange)
    wallet = account.wallet_balance or 0.0
    prices: list[float | None] = []
    for leg in account.positions:
        others = 0.0
        for other in account.positions:
            if other.symbol != leg.symbol:
                others += pnl_terms(other).at(to_u(other, other.mark_price))
                others -= leg_requirement_at_mark(family, other, None)
        group = Group((leg,), wallet + others, bankruptcy_of(family, (leg,), wallet + others), None)
        boundary = solve_group(family, group)
        prices.append(boundary.u)
    return prices


def per_call_seconds(call: Callable[[], object], repeat: int) -> float:
    """Median over `repeat` timed batches, each long enough (~20 ms) to dwarf the clock's resolution."""
    batch = 1
    while True:
        start = time.perf_counter()
        for _ in range(batch):
            call()
        if time.perf_counter() - start > 0.02:
            break
        batch *= 2
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(batch):
            call()
        samples.append((time.perf_counter() - start) / batch)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed batches per figure (median reported)")
    args = parser.parse_args()
    rng = random.Random(7)

    isolated = Account(
        "binance",
        (
            Position(
                "BTCUSDT",
                Side.LONG,
                0.5,
                1.0,
                60_000.0,
                59_000.0,
                MarginMode.ISOLATED,
                leverage=20.0,
                tiers=TIERS,
            ),
        ),
    )
    seconds = per_call_seconds(lambda: evaluate_account(isolated), args.repeat)
    print(f"isolated position: {1 / seconds:,.0f} evaluations/s ({seconds * 1e6:.1f} µs each)")

    print(f"\n{'positions':>9} {'incremental (ms)':>17} {'naive (ms)':>11} {'naive/incr':>11}")
    previous: tuple[float, float] | None = None
    growth: list[tuple[int, float, float]] = []
    for size in (50, 200, 800):
        account = cross_account(size, rng)
        moved = account.positions[0]

        def after_one_mark_change(account: Account = account, moved: Position = moved) -> object:
            legs = (replace(moved, mark_price=moved.mark_price * 1.001), *account.positions[1:])
            return evaluate_account(replace(account, positions=legs))

        def naive(account: Account = account) -> object:
            return naive_liquidation_prices(account)

        fast = per_call_seconds(after_one_mark_change, args.repeat)
        slow = per_call_seconds(naive, max(1, args.repeat // 2))
        print(f"{size:>9} {fast * 1e3:>17.3f} {slow * 1e3:>11.2f} {slow / fast:>10.1f}x")
        if previous is not None:
            growth.append((size, fast / previous[0], slow / previous[1]))
        previous = (fast, slow)

    print("\ngrowth as the account grows 4x (linear ~4, quadratic ~16):")
    for size, fast_growth, slow_growth in growth:
        print(f"  to {size:>4} positions: incremental x{fast_growth:.1f}, naive x{slow_growth:.1f}")


if __name__ == "__main__":
    main()

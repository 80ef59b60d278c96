"""Market-path soak: seeded random paths against the simulator's oracle and the real daemon, one after another.

Each path gets a fresh simulator (the dialects in turn), a fresh alert receiver and a fresh journal, and the
real `marginguard run` as a child process (killed with SIGKILL and restarted where the path says so). The
invariants of issue 8 are checked after every quiet period (tests/paths/invariants.py). Printed: one line
per path, then paths run, steps (events generated), exchange events, faults injected, kills, top-ups,
liquidations, and every violation with the command that replays its seed. Exit code 1 on any violation.

    .venv/bin/python bench/market_paths.py --seeds 10 --minutes 30
    .venv/bin/python bench/market_paths.py --dialect okx --replay 7 --print-path
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `python bench/market_paths.py` from the repository, like the other benches
    sys.path.insert(0, str(REPO))

from tests.paths.executor import run_path  # noqa: E402
from tests.paths.generator import DIALECTS, PathOptions, generate  # noqa: E402
from tests.paths.report import Totals, by_invariant  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="paths per dialect (default 5)")
    parser.add_argument("--minutes", type=float, default=None, help="stop starting new paths after this long")
    parser.add_argument("--dialect", action="append", choices=DIALECTS, help="repeatable; default: all three")
    parser.add_argument("--first-seed", type=int, default=1000, help="seeds count up from here")
    parser.add_argument("--steps", type=int, default=40, help="steps per path besides quiet periods")
    parser.add_argument("--replay", type=int, default=None, help="play this one seed (per chosen dialect)")
    parser.add_argument("--print-path", action="store_true", help="print each path's steps before playing it")
    parser.add_argument("--no-kills", action="store_true", help="never SIGKILL the daemon")
    return parser.parse_args(argv)


async def soak(args: argparse.Namespace) -> int:
    dialects = tuple(args.dialect or DIALECTS)
    options = PathOptions(steps=args.steps, kills=not args.no_kills, sim_restart=True)
    seeds = [args.replay] if args.replay is not None else range(args.first_seed, args.first_seed + args.seeds)
    deadline = time.monotonic() + args.minutes * 60 if args.minutes is not None else None
    totals = Totals()
    started = time.monotonic()
    results = []
    for seed, dialect in itertools.product(seeds, dialects):
        if deadline is not None and time.monotonic() > deadline:
            break
        path = generate(seed, dialect, options)
        if args.print_path:
            print(path.describe(), flush=True)
        with tempfile.TemporaryDirectory(prefix="market-paths-") as state_dir:
            result = await run_path(path, Path(state_dir))
        totals.add(result)
        results.append(result)
        print(result.describe(), flush=True)
        if args.print_path and result.refusals:
            print(f"  refused: {result.refusals}", flush=True)
        if result.violations and args.replay is not None:
            print(result.daemon_output, flush=True)
    print(f"\n--- {time.monotonic() - started:.0f} s ---")
    print(totals.summary())
    for invariant, broken in sorted(by_invariant(results).items()):
        print(f"{invariant}: seeds {broken}")
    return 1 if totals.failed else 0


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(soak(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())

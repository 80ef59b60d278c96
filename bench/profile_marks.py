"""Where the daemon's CPU goes per mark: `marginguard run` under cProfile on `bench/marks.py`'s steady feed.

The simulator runs in its own process (as in `bench/marks.py`); the daemon runs in another, with cProfile off
until the feed starts (start-up, tier loads and the warm-up are not counted) and dumped once it has been
drained. The feed is fixed (`--rate` x `--seconds` marks, round-robin over the symbols), so call counts are
the same from run to run and self times compare before and after a change even on a busy machine (the load
average is printed with them). Self time is grouped by where the code lives (policy, model, ccxt, metrics, ...)
and the heaviest functions are listed.

    .venv/bin/python bench/profile_marks.py                          # 100 symbols, 1,000 marks/s for 10 s
    .venv/bin/python bench/profile_marks.py --top 40 --save /tmp/daemon.prof
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pstats
import signal
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import (
    REPO,
    Simulator,
    cpu_seconds,
    daemon_config,
    free_port,
    load_average,
    ready_daemon,
    start,
    stop,
)
from daemon.notify.receiver import Receiver

# Where a function's self time is counted: the first prefix of its file's path (relative) that matches.
GROUPS = (
    ("policy", ("daemon/core/policy",)),
    ("model", ("daemon/core/margin/", "daemon/core/view.py", "daemon/core/state.py")),
    ("metrics", ("daemon/app/account_metrics.py", "prometheus_client/")),
    ("runner", ("daemon/app/",)),
    ("trace", ("daemon/exchanges/mark_trace.py",)),
    ("hub/connector", ("daemon/exchanges/",)),
    ("core (other)", ("daemon/core/",)),
    ("ccxt", ("ccxt/",)),
    ("aiohttp", ("aiohttp/", "yarl/", "multidict/")),
    ("asyncio", ("asyncio/",)),
    ("structlog/logging", ("structlog/", "logging/")),
)

# The child: the daemon's own command line, with cProfile switched on by SIGUSR1 and dumped by SIGUSR2.
CHILD = """
import cProfile, signal, sys
out = sys.argv[1]
sys.argv = ["marginguard", *sys.argv[2:]]
profile = cProfile.Profile()
signal.signal(signal.SIGUSR1, lambda *_: profile.enable())
def dump(*_):
    profile.disable()
    profile.dump_stats(out)
signal.signal(signal.SIGUSR2, dump)
from daemon.app.cli import main
raise SystemExit(main())
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--accounts", type=int, default=0, help="default: enough to hold each symbol once")
    parser.add_argument("--legs", type=int, default=3)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--top", type=int, default=25, help="functions listed by self time")
    parser.add_argument("--save", help="keep the raw profile here (pstats format)")
    parser.add_argument("--json", action="store_true")
    return parser.parse_args()


def group_of(filename: str) -> str:
    path = filename.replace(os.sep, "/")
    for name, prefixes in GROUPS:
        if any(prefix in path for prefix in prefixes):
            return name
    return "other"


async def main(args: argparse.Namespace) -> dict[str, object]:
    accounts = args.accounts or -(-args.symbols // args.legs)
    sim = await asyncio.to_thread(Simulator, args.symbols, accounts, args.legs, 0)
    receiver = Receiver()
    await receiver.start()
    work = Path(tempfile.mkdtemp(prefix="mg-profile-"))
    out = args.save or str(work / "daemon.prof")
    port = free_port()
    config = daemon_config(sim, work, port, receiver.url)
    argv = [sys.executable, "-c", CHILD, out, "run", "--config", str(config)]
    # As in bench/marks.py: pinned to CPU 1, with the mark trace on.
    process = start(argv, work / "output.log", work / "trace.txt", cpu=1)
    try:
        import aiohttp

        started = time.monotonic()
        async with aiohttp.ClientSession() as session:
            while not await ready_daemon(session, port):
                if process.poll() is not None or time.monotonic() - started > 120:
                    raise RuntimeError(f"daemon not ready; see {work / 'output.log'}")
                await asyncio.to_thread(sim.bursts, ["up"], 1.0)
                await asyncio.sleep(0.5)
        await asyncio.to_thread(sim.spread, args.rate, args.warmup)
        await asyncio.sleep(1.0)
        process.send_signal(signal.SIGUSR1)
        await asyncio.sleep(0.2)
        cpu0 = cpu_seconds(process.pid)
        sends = await asyncio.to_thread(sim.spread, args.rate, args.seconds)
        await asyncio.sleep(0.5)
        cpu = cpu_seconds(process.pid) - cpu0
        process.send_signal(signal.SIGUSR2)
        for _ in range(100):
            await asyncio.sleep(0.1)
            if _dumped(out):
                break
        await asyncio.sleep(0.5)
    finally:
        stop(process)
        sim.stop()
        await receiver.stop()
    stats = pstats.Stats(out)
    raw = stats.stats  # type: ignore[attr-defined]
    groups: dict[str, float] = defaultdict(float)
    total_calls, total = 0, 0.0
    rows = []
    for (filename, line, name), (_cc, calls, tottime, cumtime, _callers) in raw.items():
        groups[group_of(filename)] += tottime
        total_calls += calls
        total += tottime
        rows.append((tottime, calls, cumtime, f"{_short(filename)}:{line}({name})"))
    rows.sort(reverse=True)
    marks = len(sends)
    return {
        "load_average": load_average(),
        "marks": marks,
        "cpu_us_per_mark": cpu / max(1, marks) * 1e6,
        "profiled_s": total,
        "calls_per_mark": total_calls / max(1, marks),
        "groups": {k: v for k, v in sorted(groups.items(), key=lambda kv: -kv[1])},
        "top": rows[: args.top],
        "profile": out,
    }


def _dumped(path: str) -> bool:
    return os.path.exists(path) and os.path.getsize(path) > 0


def _short(filename: str) -> str:
    for marker in ("site-packages/", str(REPO) + "/", "/lib/python3.11/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def report(figures: dict[str, object]) -> None:
    print(f"load average {figures['load_average']}")
    print(
        f"{figures['marks']} marks: {figures['cpu_us_per_mark']:.0f} µs CPU per mark (unprofiled figure "
        f"is lower: cProfile adds its own), {figures['calls_per_mark']:.0f} Python calls per mark"
    )
    total = float(figures["profiled_s"])  # type: ignore[arg-type]
    print("self time by group:")
    for name, seconds in figures["groups"].items():  # type: ignore[attr-defined]
        print(f"  {name:<20} {seconds:7.3f} s  {seconds / total * 100:5.1f} %")
    print("heaviest functions (self s, calls, cumulative s):")
    for tottime, calls, cumtime, where in figures["top"]:  # type: ignore[attr-defined]
        print(f"  {tottime:7.3f} {calls:9d} {cumtime:7.3f}  {where}")
    print(f"profile: {figures['profile']}")


if __name__ == "__main__":
    arguments = parse_args()
    result = asyncio.run(main(arguments))
    if arguments.json:
        print(json.dumps(result, default=str))
    else:
        report(result)
    print("command:", " ".join([Path(sys.executable).name, *sys.argv]))

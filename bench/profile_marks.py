"""Where the daemon's CPU goes per mark: `marginguard run` under cProfile on `bench/marks.py`'s steady feed.
With `--side bare`, the same for `bench/bare_ccxt.py`, so event-loop passes and calls per mark compare side by side.

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
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import (
    REPO,
    UNTHROTTLED,
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

# The child: the daemon's own command line (or the bare loop's script), with cProfile switched on by SIGUSR1
# and dumped by SIGUSR2.
CHILD = """
import cProfile, runpy, signal, sys
out = sys.argv[1]
sys.argv = ["marginguard", *sys.argv[2:]]
profile = cProfile.Profile()
signal.signal(signal.SIGUSR1, lambda *_: profile.enable())
def dump(*_):
    profile.disable()
    profile.dump_stats(out)
signal.signal(signal.SIGUSR2, dump)
if sys.argv[1].endswith(".py"):
    sys.argv = sys.argv[1:]
    sys.path.insert(0, "REPO")
    runpy.run_path(sys.argv[0], run_name="__main__")
else:
    from daemon.app.cli import main
    raise SystemExit(main())
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--side", choices=("daemon", "bare"), default="daemon", help="the process profiled")
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--accounts", type=int, default=0, help="default: enough to hold each symbol once")
    parser.add_argument("--legs", type=int, default=3)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--top", type=int, default=25, help="functions listed by self time")
    parser.add_argument(
        "--save", help="keep the raw profile here (pstats format; with --sampler: py-spy's raw)"
    )
    parser.add_argument(
        "--sampler",
        action="store_true",
        help="sample with py-spy (250 Hz) instead of cProfile: shares without cProfile's per-call cost, which "
        "inflates deep call trees; self and inclusive shares per function",
    )
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
    child = CHILD.replace("REPO", str(REPO))
    if args.side == "daemon":
        config = daemon_config(sim, work, port, receiver.url)
        argv = [sys.executable, "-c", child, out, "run", "--config", str(config)]
    else:
        public = {k: v for k, v in sim.config.items() if k not in ("apiKey", "secret")}
        public["options"] = {**public.get("options", {}), **UNTHROTTLED}
        argv = [sys.executable, "-c", child, out, str(REPO / "bench" / "bare_ccxt.py"), "--config"]
        argv += [json.dumps(public), "--symbols", str(args.symbols)]
    # As in bench/marks.py: pinned to CPU 1, with the mark trace on.
    trace = work / "trace.txt"
    process = start(argv, work / "output.log", trace, cpu=1)
    try:
        import aiohttp

        started = time.monotonic()
        async with aiohttp.ClientSession() as session:
            while not (
                await ready_daemon(session, port)
                if args.side == "daemon"
                else await asyncio.to_thread(Path(str(trace) + ".ready").exists)
            ):
                if process.poll() is not None or time.monotonic() - started > 120:
                    raise RuntimeError(f"{args.side} not ready; see {work / 'output.log'}")
                await asyncio.to_thread(sim.bursts, ["up"], 1.0)
                await asyncio.sleep(0.5)
        await asyncio.to_thread(sim.spread, args.rate, args.warmup)
        await asyncio.sleep(1.0)
        sampler = None
        if args.sampler:
            sampler = await asyncio.to_thread(_sample, process.pid, args.seconds + 1, out)
        else:
            process.send_signal(signal.SIGUSR1)
        await asyncio.sleep(0.2)
        cpu0 = cpu_seconds(process.pid)
        sends = await asyncio.to_thread(sim.spread, args.rate, args.seconds)
        await asyncio.sleep(0.5)
        cpu = cpu_seconds(process.pid) - cpu0
        if sampler is not None:
            await asyncio.to_thread(sampler.wait)
        else:
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
    if args.sampler:
        return {
            "side": args.side,
            "load_average": load_average(),
            "marks": len(sends),
            "cpu_us_per_mark": cpu / max(1, len(sends)) * 1e6,
            **sampled(out, args.top),
            "profile": out,
        }
    stats = pstats.Stats(out)
    raw = stats.stats  # type: ignore[attr-defined]
    groups: dict[str, float] = defaultdict(float)
    total_calls, total, passes = 0, 0.0, 0
    rows = []
    for (filename, line, name), (_cc, calls, tottime, cumtime, _callers) in raw.items():
        groups[group_of(filename)] += tottime
        total_calls += calls
        total += tottime
        rows.append((tottime, calls, cumtime, f"{_short(filename)}:{line}({name})"))
        if name == "_run_once":
            passes += calls
    rows.sort(reverse=True)
    marks = len(sends)
    return {
        "side": args.side,
        "load_average": load_average(),
        "marks": marks,
        "cpu_us_per_mark": cpu / max(1, marks) * 1e6,
        "profiled_s": total,
        "calls_per_mark": total_calls / max(1, marks),
        "loop_passes_per_mark": passes / max(1, marks),
        "groups": {k: v for k, v in sorted(groups.items(), key=lambda kv: -kv[1])},
        "top": rows[: args.top],
        "profile": out,
    }


def _sample(pid: int, seconds: float, out: str) -> subprocess.Popen[bytes]:
    """py-spy recording `pid` for `seconds` at 250 Hz into `out` (collapsed stacks with line numbers)."""
    py_spy = str(Path(sys.executable).parent / "py-spy")
    argv = [py_spy, "record", "-p", str(pid), "-r", "250", "-d", str(int(seconds)), "-f", "raw", "-o", out]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def sampled(path: str, top: int) -> dict[str, object]:
    """Shares of py-spy's samples (collapsed stacks, idle waits left out): self per group, and per function
    self and inclusive (a function counted once per sample, however deep it recurs)."""
    groups: dict[str, float] = defaultdict(float)
    own: dict[str, float] = defaultdict(float)
    within: dict[str, float] = defaultdict(float)
    total = 0
    for line in Path(path).read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        frames = [frame for frame in stack.split(";") if frame]
        if not frames or "select (selectors.py" in frames[-1] or "poll" in frames[-1].split(" ")[0]:
            continue
        if any("_worker (concurrent/futures/thread.py" in frame for frame in frames):
            continue  # the default executor's threads: journal writes, off the loop
        count = int(count_text)
        total += count
        frames = [_function_of(frame) for frame in frames]
        leaf = frames[-1]
        groups[group_of(leaf)] += count
        own[leaf] += count
        for frame in set(frames):
            within[frame] += count
    share = {name: value / max(1, total) for name, value in groups.items()}
    return {
        "samples": total,
        "groups": dict(sorted(share.items(), key=lambda kv: -kv[1])),
        "self": sorted(((v / max(1, total), k) for k, v in own.items()), reverse=True)[:top],
        "inclusive": sorted(((v / max(1, total), k) for k, v in within.items()), reverse=True)[:top],
    }


def _function_of(frame: str) -> str:
    """A py-spy frame without its line number ("name (file.py:12)" -> "name (file.py)"): lines of one function
    are counted together."""
    head, _, line = frame.rpartition(":")
    return f"{head})" if line.endswith(")") and line[:-1].isdigit() else frame


def _dumped(path: str) -> bool:
    return os.path.exists(path) and os.path.getsize(path) > 0


def _short(filename: str) -> str:
    for marker in ("site-packages/", str(REPO) + "/", "/lib/python3.11/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def report(figures: dict[str, object]) -> None:
    if "samples" in figures:
        print(f"load average {figures['load_average']}; side: {figures['side']}")
        print(
            f"{figures['marks']} marks: {figures['cpu_us_per_mark']:.0f} µs CPU per mark; "
            f"{figures['samples']} busy samples"
        )
        for title in ("groups",):
            for name, share in figures[title].items():  # type: ignore[attr-defined]
                print(f"  {name:<20} {share * 100:5.1f} %")
        for title in ("self", "inclusive"):
            print(f"{title} share per function:")
            for share, where in figures[title]:  # type: ignore[attr-defined]
                print(f"  {share * 100:5.1f} %  {where}")
        return
    print(f"load average {figures['load_average']}; side: {figures['side']}")
    print(
        f"{figures['marks']} marks: {figures['cpu_us_per_mark']:.0f} µs CPU per mark (unprofiled figure "
        f"is lower: cProfile adds its own), {figures['calls_per_mark']:.0f} Python calls and "
        f"{figures['loop_passes_per_mark']:.1f} event-loop passes per mark"
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

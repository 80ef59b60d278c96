"""The whole daemon against a bare ccxt loop, mark by mark, on the same simulator feed.

Three processes: the Binance USD-M simulator (pinned, with this bench, to CPU 0), and in turn the process under
test (pinned to CPU 1): either `marginguard run` on a generated configuration (every account of the simulator,
real runners, policy, SQLite journal, outbox to a webhook receiver in this process, metrics), or
`bench/bare_ccxt.py` (one `watch_mark_price` loop per symbol, nothing else). By default the daemon has just enough
accounts to hold every symbol once, so each mark is one decision on both sides. Both write the mark trace
(`MARGINGUARD_MARK_TRACE`): when ccxt took each frame, and when each account (the bare loop: each symbol's loop)
decided on a mark, with the mark ccxt's cache held at that moment; the bare loop decides on the newest mark ccxt
holds after each wake-up, as the daemon should. Runs alternate bare, daemon, bare, ...;
each figure is the median over `--runs` with its min–max spread.

Per run, once the process is ready (daemon: /readyz 200; bare: a mark on every symbol), with 1 Hz bursts
until then, and `--warmup` seconds at `--rate` (not measured):
  steady     `--rate` marks/s spread evenly over the symbols for `--seconds`: CPU of the process under test per
             mark sent (µs; /proc utime+stime over the feed and 0.5 s after, so idle and catch-up work count too)
             and as a share of one core over the feed's duration; latency from ccxt taking a frame to each
             decision on it (p50/p99, ms), and from the simulator's send to a decision on it or a newer mark;
  bursts     `--bursts` bursts, 1 s apart, moving every symbol at once: time from the simulator's send until each
             holding account decided on that mark or a newer one (p99 and max, ms);
  webhook    (daemon) `--alerts` bursts into the alert zone and back, 1.5 s apart: from the simulator's send and
             from ccxt taking the frame to the webhook POST reaching the receiver (p50/p99, ms);
  capacity   the offered rate climbs through `--capacity` (`--step-seconds` each) until the process falls
             behind: some mark sent not covered by a decision on it or a newer one for every holding account
             within `--behind-ms` at p99 (or never covered). The capacity is the highest rate not behind (0:
             not even the first). Its ceiling is the simulator's: a step whose sent rate falls short says so.
  superseded decisions whose mark is older than one ccxt's cache already held for the symbol, counted in the
             steady and capacity phases.

    .venv/bin/python bench/marks.py                      # 3 runs each, 100 symbols, 34 accounts x 3 legs
    .venv/bin/python bench/marks.py --runs 1 --seconds 5 --capacity 1000,2000,4000 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.figures import (
    Send,
    command_line,
    covering_lags_ms,
    fmt,
    frame_to_decision_ms,
    holders_of,
    in_window,
    json_safe,
    market_id,
    percentile,
    read_trace,
    send_order,
    summary,
    superseded,
)
from bench.harness import (
    BARE,
    REPO,
    UNTHROTTLED,
    Simulator,
    cpu_seconds,
    daemon_config,
    free_port,
    load_average,
    pin,
    ready_daemon,
    start,
    stop,
)
from daemon.notify.receiver import Receiver

SIDES = ("bare", "daemon")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3, help="runs of each side, interleaved (default 3)")
    parser.add_argument("--symbols", type=int, default=100, help="symbols (default 100)")
    parser.add_argument(
        "--accounts", type=int, default=0, help="daemon accounts (default: enough to hold each symbol once)"
    )
    parser.add_argument("--legs", type=int, default=3, help="legs per account (default 3)")
    parser.add_argument("--rate", type=float, default=1000.0, help="steady offered marks/s (default 1000)")
    # 30 s rather than 10: over 10 s, CPU per mark spread by a fifth between runs on either side.
    parser.add_argument("--seconds", type=float, default=30.0, help="steady phase length (default 30)")
    parser.add_argument(
        "--warmup", type=float, default=3.0, help="seconds at --rate before the steady phase is measured (3)"
    )
    parser.add_argument("--bursts", type=int, default=5, help="all-symbol bursts (default 5)")
    parser.add_argument("--alerts", type=int, default=3, help="alert round trips (default 3)")
    parser.add_argument(
        "--capacity", default="1000,2000,4000,8000,16000", help="offered rates tried, in order (marks/s)"
    )
    parser.add_argument("--step-seconds", type=float, default=3.0, help="length of each capacity step")
    parser.add_argument("--behind-ms", type=float, default=100.0, help="p99 lag that counts as behind")
    parser.add_argument("--ready-timeout", type=float, default=120.0, help="seconds to wait for readiness")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    return parser.parse_args()


async def measure(side: str, args: argparse.Namespace, sim: Simulator, receiver: Receiver) -> dict[str, Any]:
    figures: dict[str, Any] = {"side": side}
    work = Path(tempfile.mkdtemp(prefix=f"mg-marks-{side}-"))
    trace_path = work / "trace.txt"
    holdings = (
        sim.holdings if side == "daemon" else {BARE: sorted({m for ms in sim.holdings.values() for m in ms})}
    )
    holders = holders_of(holdings)
    port = free_port()
    if side == "daemon":
        config = daemon_config(sim, work, port, receiver.url)
        argv = [sys.executable, "-m", "daemon", "run", "--config", str(config)]
    else:
        public = {k: v for k, v in sim.config.items() if k not in ("apiKey", "secret")}
        public["options"] = {**public.get("options", {}), **UNTHROTTLED}
        argv = [sys.executable, str(REPO / "bench" / "bare_ccxt.py"), "--config", json.dumps(public)]
        argv += ["--symbols", str(args.symbols)]
    started = time.monotonic()
    process = start(argv, work / "output.log", trace_path, cpu=1)
    try:
        async with aiohttp.ClientSession() as session:
            while True:
                ready = (
                    await ready_daemon(session, port)
                    if side == "daemon"
                    else await asyncio.to_thread(Path(str(trace_path) + ".ready").exists)
                )
                if ready:
                    break
                if process.poll() is not None or time.monotonic() - started > args.ready_timeout:
                    raise RuntimeError(f"{side} not ready; see {work / 'output.log'}")
                await asyncio.to_thread(sim.bursts, ["up"], 1.0)
                await asyncio.sleep(0.5)
        figures["ready_s"] = time.monotonic() - started
        # start-up work (tiers, leverage reads, the first reconciliations) settles before anything is measured
        await asyncio.to_thread(sim.spread, args.rate, args.warmup)
        await asyncio.sleep(1.0)
        await steady(figures, process.pid, sim, args, trace_path, holders)
        await bursts(figures, sim, args, trace_path, holders)
        if side == "daemon":
            await webhook(figures, sim, args, trace_path, receiver)
        await capacity(figures, process.pid, sim, args, trace_path, holders)
    finally:
        stop(process)
    return figures


async def window(
    pid: int, sim: Simulator, trace_path: Path, run: Any, tail_s: float
) -> tuple[list[Send], float, float, Any]:
    """Run `run` (a simulator call) and wait `tail_s`: the sends, the process's and the simulator's CPU seconds
    over it, and the decisions made meanwhile."""
    cpu0, sim0, w0 = cpu_seconds(pid), cpu_seconds(sim.pid), time.monotonic()
    sends: list[Send] = await asyncio.to_thread(run)
    await asyncio.sleep(tail_s)
    cpu1, sim1, w1 = cpu_seconds(pid), cpu_seconds(sim.pid), time.monotonic()
    await asyncio.sleep(0.3)  # the trace is flushed every quarter second
    decisions = in_window(read_trace(trace_path), w0, w1)
    return sends, cpu1 - cpu0, sim1 - sim0, decisions


async def steady(
    figures: dict[str, Any],
    pid: int,
    sim: Simulator,
    args: argparse.Namespace,
    trace_path: Path,
    holders: Any,
) -> None:
    sends, cpu, sim_cpu, decisions = await window(
        pid, sim, trace_path, lambda: sim.spread(args.rate, args.seconds), 0.5
    )
    trace = read_trace(trace_path)
    order = send_order(sends)
    latencies = frame_to_decision_ms(trace, decisions)
    lags, missing = covering_lags_ms(sends, decisions, holders, order)
    figures.update(
        offered_per_s=len(sends) / args.seconds,
        cpu_us_per_mark=cpu / max(1, len(sends)) * 1e6,
        # over the time the feed ran; the catch-up after it counts in the numerator
        cpu_share=cpu / args.seconds,
        sim_cpu_share=sim_cpu / args.seconds,
        decisions=len(decisions),
        frame_to_decision_p50_ms=percentile(latencies, 0.5),
        frame_to_decision_p99_ms=percentile(latencies, 0.99),
        covering_p99_ms=percentile(lags, 0.99),
        uncovered=missing,
        superseded_steady=superseded(decisions, order),
    )


async def bursts(
    figures: dict[str, Any], sim: Simulator, args: argparse.Namespace, trace_path: Path, holders: Any
) -> None:
    w0 = time.monotonic()
    sends = await asyncio.to_thread(sim.bursts, ["up"] * args.bursts, 1.0)
    await asyncio.sleep(1.3)
    decisions = in_window(read_trace(trace_path), w0, time.monotonic())
    lags, missing = covering_lags_ms(sends, decisions, holders, send_order(sends))
    figures.update(
        burst_p99_ms=percentile(lags, 0.99) if not missing else float("inf"),
        burst_max_ms=max(lags, default=float("nan")) if not missing else float("inf"),
        burst_uncovered=missing,
    )


async def webhook(
    figures: dict[str, Any], sim: Simulator, args: argparse.Namespace, trace_path: Path, receiver: Receiver
) -> None:
    before = len(receiver.received())
    sends = await asyncio.to_thread(sim.bursts, ["alert", "up"] * args.alerts, 1.5)
    await asyncio.sleep(2.0)
    trace = read_trace(trace_path)
    sent = {(market, price): t for market, price, t in sends}
    from_send: list[float] = []
    from_frame: list[float] = []
    for post in receiver.received()[before:]:
        body = post.json
        symbol, price = body.get("identity", {}).get("symbol"), body.get("mark_price")
        if symbol is None or price is None:
            continue
        key = (market_id(symbol), round(float(price), 2))
        if key in sent:
            from_send.append((post.at - sent[key]) * 1000.0)
        if key in trace.frames:
            from_frame.append((post.at - trace.frames[key]) * 1000.0)
    figures.update(
        webhook_posts=len(from_send),
        send_to_post_p50_ms=percentile(from_send, 0.5),
        send_to_post_p99_ms=percentile(from_send, 0.99),
        frame_to_post_p50_ms=percentile(from_frame, 0.5),
        frame_to_post_p99_ms=percentile(from_frame, 0.99),
    )


async def capacity(
    figures: dict[str, Any],
    pid: int,
    sim: Simulator,
    args: argparse.Namespace,
    trace_path: Path,
    holders: Any,
) -> None:
    steps: list[dict[str, Any]] = []
    best = 0.0
    for rate in [float(r) for r in args.capacity.split(",") if r]:
        sends, cpu, sim_cpu, decisions = await window(
            pid, sim, trace_path, lambda r=rate: sim.spread(r, args.step_seconds), 1.0
        )
        order = send_order(sends)
        lags, missing = covering_lags_ms(sends, decisions, holders, order)
        p99 = percentile(lags, 0.99)
        behind = missing > 0 or not p99 <= args.behind_ms
        steps.append(
            {
                "offered_per_s": rate,
                "sent_per_s": len(sends) / args.step_seconds,
                "cpu_us_per_mark": cpu / max(1, len(sends)) * 1e6,
                "cpu_share": cpu / args.step_seconds,
                "sim_cpu_share": sim_cpu / args.step_seconds,
                "lag_p99_ms": p99,
                "uncovered": missing,
                "superseded": superseded(decisions, order),
                "behind": behind,
            }
        )
        if behind:
            break
        best = rate
        await asyncio.sleep(1.0)  # let any backlog drain before the next step
    figures.update(
        capacity_per_s=best,
        capacity_steps=steps,
        superseded_capacity=sum(step["superseded"] for step in steps),
    )


ROWS = [
    ("ready_s", "ready after start (s)", 2),
    ("offered_per_s", "steady: marks sent /s", 0),
    ("cpu_us_per_mark", "steady: CPU per mark (µs)", 1),
    ("cpu_share", "steady: CPU, share of a core", 3),
    ("sim_cpu_share", "steady: simulator CPU share", 3),
    ("frame_to_decision_p50_ms", "frame -> decision p50 (ms)", 2),
    ("frame_to_decision_p99_ms", "frame -> decision p99 (ms)", 2),
    ("covering_p99_ms", "send -> decided (or newer) p99 (ms)", 2),
    ("uncovered", "steady: marks never decided", 0),
    ("superseded_steady", "steady: decisions on a superseded mark", 0),
    ("burst_p99_ms", "burst: send -> all decided p99 (ms)", 1),
    ("burst_max_ms", "burst: send -> all decided max (ms)", 1),
    ("send_to_post_p50_ms", "send -> webhook POST p50 (ms)", 1),
    ("send_to_post_p99_ms", "send -> webhook POST p99 (ms)", 1),
    ("frame_to_post_p99_ms", "frame -> webhook POST p99 (ms)", 1),
    ("capacity_per_s", "capacity: highest rate kept up (marks/s)", 0),
    ("superseded_capacity", "capacity: decisions on a superseded mark", 0),
]


def report(args: argparse.Namespace, results: dict[str, list[dict[str, Any]]], notes: dict[str, str]) -> None:
    print(f"command: {command_line()}")
    print(
        f"{args.symbols} symbols; daemon: {args.accounts} accounts x {args.legs} legs; {args.runs} run(s) per side, "
        f"interleaved; median (min–max)"
    )
    print(
        f"pinned: {notes['pinned']}; load average before: {notes['load_before']}, after: {notes['load_after']}"
    )
    print(f"{'':44s} {'bare ccxt':>24s} {'daemon':>24s} {'ratio':>7s}")
    for key, label, digits in ROWS:
        values = {side: [r.get(key, float("nan")) for r in results[side]] for side in SIDES}
        bare, daemon = summary(values["bare"])[0], summary(values["daemon"])[0]
        ratio = (
            f"{daemon / bare:6.2f}x"
            if bare == bare and daemon == daemon and bare not in (0, float("inf"))
            else ""
        )
        print(
            f"{label:44s} {fmt(values['bare'], digits):>24s} {fmt(values['daemon'], digits):>24s} {ratio:>7s}"
        )
    for side in SIDES:
        for number, result in enumerate(results[side], start=1):
            steps = ", ".join(
                f"{s['offered_per_s']:.0f}/s (sent {s['sent_per_s']:.0f}, sim cpu {s['sim_cpu_share']:.2f}): "
                f"p99 {s['lag_p99_ms']:.0f} ms, cpu {s['cpu_share']:.2f}"
                f"{' BEHIND' if s['behind'] else ''}"
                for s in result["capacity_steps"]
            )
            print(f"capacity {side} run {number}: {steps}")


async def main() -> None:
    args = parse_args()
    args.accounts = args.accounts or -(-args.symbols // args.legs)
    if args.accounts * args.legs < args.symbols:
        # the bare loop watches every symbol: the daemon must hold every one too, or it sees fewer frames
        sys.exit("marks.py: --accounts x --legs must be at least --symbols")
    note = pin(0, 0)
    load_before = load_average()
    sim = Simulator(args.symbols, args.accounts, args.legs, cpu=0)
    results: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
    try:
        async with Receiver() as receiver:
            for _run in range(args.runs):
                for side in SIDES:
                    results[side].append(await measure(side, args, sim, receiver))
    finally:
        sim.stop()
    notes = {
        "pinned": f"simulator and bench {note}, process under test cpu 1",
        "load_before": load_before,
        "load_after": load_average(),
    }
    if args.json:
        print(
            json.dumps(
                json_safe({"command": command_line(), "args": vars(args), **notes, "results": results}),
                indent=1,
            )
        )
    else:
        report(args, results, notes)


if __name__ == "__main__":
    asyncio.run(main())

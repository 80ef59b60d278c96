"""The whole daemon at scale: N accounts x 3 legs over 500 symbols whose marks all move once a second.

For each account count (`--accounts 250,1000,2000,4000`) a Binance USD-M simulator with exactly those accounts
starts in a process of its own (pinned, with this bench, to CPU 0), then `marginguard run` on a generated
configuration of every account (pinned to CPU 1; webhook sink to a receiver in this process), with the mark
trace on (`MARGINGUARD_MARK_TRACE`). The simulator moves every mark once a second from the daemon's start on.

  up         seconds from the process's start until /healthz answers 200 (the listener is up before ccxt is
             imported and the accounts' clients are built);
  ready      seconds from the process's start until /readyz answers 200 (every account snapshotted, every
             stream fresh); not ready within `--ready-timeout`: the count is reported as never ready;
  CPU        the daemon's /proc utime+stime over `--seconds` of 1 Hz bursts, as a share of one core;
  RSS        the daemon's resident memory at the end, and per account beyond a one-account daemon's;
  burst      per burst, the time from the simulator's send until every holding account decided on each moved
             mark (or a newer one): p50 and p99 over the bursts, and p99 over every (account, leg, burst);
  keeps up   ready, every mark decided by every holder, every burst fully decided within its 1 s period.

The largest count that keeps up is printed last. Counts are tried in the order given and stop at the first
that never becomes ready.

    .venv/bin/python bench/scale.py --accounts 250 --seconds 10        # about a minute
    .venv/bin/python bench/scale.py --accounts 250,1000,2000,4000 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.figures import (
    command_line,
    holders_of,
    in_window,
    json_safe,
    percentile,
    read_trace,
    send_order,
)
from bench.harness import (
    Simulator,
    cpu_seconds,
    daemon_config,
    free_port,
    healthy,
    load_average,
    pin,
    readiness,
    rss_mb,
    start,
    stop,
)
from daemon.notify.receiver import Receiver


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--accounts", default="250,1000,2000,4000", help="account counts, comma-separated")
    parser.add_argument("--symbols", type=int, default=500, help="symbols (default 500)")
    parser.add_argument("--legs", type=int, default=3, help="legs per account (default 3)")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds of 1 Hz bursts (20)")
    parser.add_argument(
        "--ready-timeout", type=float, default=120.0, help="seconds to wait for /readyz (120)"
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the one-account daemon (RSS base)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    return parser.parse_args()


class Ticker:
    """Moves every mark once a second, on the second, until stopped; keeps what was sent."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.sends: list[tuple[str, float, float]] = []
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stopping:
            self.sends += await asyncio.to_thread(self.sim.bursts, ["up"], 1.0)
            next_at += 1.0
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            await self._task


async def measure(count: int, args: argparse.Namespace, receiver: Receiver) -> dict[str, Any]:
    figures: dict[str, Any] = {"accounts": count}
    sim = Simulator(args.symbols, count, args.legs, cpu=0)
    figures["sim_setup_s"] = sim.setup_s
    work = Path(tempfile.mkdtemp(prefix=f"mg-scale-{count}-"))
    trace_path = work / "trace.txt"
    port = free_port()
    config = daemon_config(sim, work, port, receiver.url)
    ticker = Ticker(sim)
    ticker.start()
    started, sim_before = time.monotonic(), cpu_seconds(sim.pid)
    process = start(
        [sys.executable, "-m", "daemon", "run", "--config", str(config)],
        work / "output.log",
        trace_path,
        cpu=1,
    )
    try:
        async with aiohttp.ClientSession() as session:
            while True:
                if "healthz_s" not in figures and await healthy(session, port):
                    figures["healthz_s"] = time.monotonic() - started
                ready, accounts = await readiness(session, port)
                if ready:
                    figures["ready_s"] = time.monotonic() - started
                    break
                if process.poll() is not None:
                    raise RuntimeError(f"the daemon exited; see {work / 'output.log'}")
                if time.monotonic() - started > args.ready_timeout:
                    break
                await asyncio.sleep(0.1)
        elapsed = time.monotonic() - started
        figures["startup_cpu_share"] = cpu_seconds(process.pid) / elapsed
        figures["startup_sim_cpu_share"] = (cpu_seconds(sim.pid) - sim_before) / elapsed
        if "ready_s" not in figures:
            # what /readyz said at the deadline: how many accounts were still not ready, and why
            waiting = Counter(str(reason).split(":")[0] for reason in accounts.values() if reason != "fresh")
            figures.update(
                ready_s=None,
                keeps_up=False,
                rss_mb=rss_mb(process.pid),
                not_ready=dict(waiting.most_common(3)),
            )
            return figures
        await asyncio.sleep(2.0)
        first = len(ticker.sends)
        cpu0, sim0, w0 = cpu_seconds(process.pid), cpu_seconds(sim.pid), time.monotonic()
        await asyncio.sleep(args.seconds)
        cpu1, sim1, w1 = cpu_seconds(process.pid), cpu_seconds(sim.pid), time.monotonic()
        figures["rss_mb"] = rss_mb(process.pid)
        sends = [s for s in ticker.sends[first:] if s[2] < w1 - 1.0]  # each burst given its full second
        await asyncio.sleep(0.5)  # the trace is flushed a quarter second after a write
        figures.update(cpu_share=(cpu1 - cpu0) / (w1 - w0), sim_cpu_share=(sim1 - sim0) / (w1 - w0))
        figures.update(bursts_figures(sends, in_window(read_trace(trace_path), w0, w1 + 0.5), sim.holdings))
        figures["keeps_up"] = figures["uncovered"] == 0 and figures["burst_max_ms"] < 1000.0
    finally:
        await ticker.stop()
        stop(process)
        sim.stop()
    return figures


def bursts_figures(
    sends: list[tuple[str, float, float]], decisions: list[Any], holdings: dict[str, list[str]]
) -> dict[str, Any]:
    """Per burst (one send time), the time until every holder decided each of its marks or a newer one."""
    holders = holders_of(holdings)
    order = send_order(sends)
    first: dict[tuple[str, str], list[tuple[float, int]]] = defaultdict(list)
    for t, account, market, price, _held in sorted(decisions):
        first[(account, market)].append((t, order.get((market, price), -1)))
    by_burst: dict[float, float] = {}
    leg_lags: list[float] = []
    uncovered = 0
    for market, price, sent_at in sends:
        number = order[(market, price)]
        for account in holders.get(market, ()):
            decided = next((t for t, n in first.get((account, market), ()) if n >= number), None)
            if decided is None:
                uncovered += 1
                continue
            lag = max(0.0, decided - sent_at) * 1000.0
            leg_lags.append(lag)
            by_burst[sent_at] = max(by_burst.get(sent_at, 0.0), lag)
    per_burst = list(by_burst.values())
    return {
        "bursts": len(per_burst),
        "burst_p50_ms": percentile(per_burst, 0.5),
        "burst_p99_ms": percentile(per_burst, 0.99),
        "burst_max_ms": max(per_burst, default=float("inf")),
        "leg_p99_ms": percentile(leg_lags, 0.99),
        "uncovered": uncovered,
    }


def report(
    args: argparse.Namespace,
    rows: list[dict[str, Any]],
    baseline: dict[str, Any] | None,
    notes: dict[str, str],
) -> None:
    print(f"command: {command_line()}")
    print(
        f"N accounts x {args.legs} legs over {args.symbols} symbols, every mark moving at 1 Hz; {args.seconds:.0f} s measured"
    )
    print(
        f"pinned: {notes['pinned']}; load average before: {notes['load_before']}, after: {notes['load_after']}"
    )
    base = baseline["rss_mb"] if baseline else None
    if baseline:
        print(f"one-account daemon: ready {baseline['ready_s']:.2f} s, RSS {base:.0f} MB")
    print(
        f"{'accounts':>8s} {'up s':>5s} {'ready s':>8s} {'CPU core':>8s} {'sim CPU':>8s} {'RSS MB':>7s} {'MB/acct*':>8s} "
        f"{'burst p50':>9s} {'burst p99':>9s} {'leg p99':>8s} {'undecided':>9s} {'keeps up':>8s}"
    )

    def ms(row: dict[str, Any], key: str) -> str:
        value = row.get(key)
        return "-" if value is None else f"{value:.0f} ms"

    for row in rows:
        ready = "never" if row["ready_s"] is None else f"{row['ready_s']:.1f}"
        per = (
            (row["rss_mb"] - base) / max(1, row["accounts"] - 1)
            if base is not None
            else row["rss_mb"] / row["accounts"]
        )

        print(
            f"{row['accounts']:>8d} {row.get('healthz_s') or float('nan'):>5.2f} {ready:>8s} {row.get('cpu_share', float('nan')):>8.2f} "
            f"{row.get('sim_cpu_share', float('nan')):>8.2f} {row['rss_mb']:>7.0f} {per:>8.3f} "
            f"{ms(row, 'burst_p50_ms'):>9s} {ms(row, 'burst_p99_ms'):>9s} {ms(row, 'leg_p99_ms'):>8s} "
            f"{row.get('uncovered', '-')!s:>9s} {'yes' if row['keeps_up'] else 'no':>8s}"
        )
    for row in rows:
        print(
            f"{row['accounts']} accounts, from start to ready (or the deadline): daemon CPU share "
            f"{row['startup_cpu_share']:.2f}, simulator {row['startup_sim_cpu_share']:.2f}"
        )
        if row.get("not_ready"):
            print(
                f"{row['accounts']} accounts not ready after {args.ready_timeout:.0f} s; /readyz said: {row['not_ready']}"
            )
    print(
        "* RSS per account beyond the one-account daemon's"
        if base is not None
        else "* RSS / accounts (no baseline)"
    )
    kept = [row["accounts"] for row in rows if row["keeps_up"]]
    print(f"largest account count that keeps up: {max(kept) if kept else 'none of those tried'}")


async def main() -> None:
    args = parse_args()
    note = pin(0, 0)
    load_before = load_average()
    rows: list[dict[str, Any]] = []
    baseline: dict[str, Any] | None = None
    async with Receiver() as receiver:
        if not args.no_baseline:
            baseline = await measure(1, argparse.Namespace(**{**vars(args), "seconds": 3.0}), receiver)
        for count in [int(c) for c in args.accounts.split(",") if c]:
            row = await measure(count, args, receiver)
            rows.append(row)
            if row["ready_s"] is None:
                break  # a larger count will not be ready either
    notes = {
        "pinned": f"simulator and bench {note}, daemon cpu 1",
        "load_before": load_before,
        "load_after": load_average(),
    }
    if args.json:
        print(
            json.dumps(
                json_safe(
                    {
                        "command": command_line(),
                        "args": vars(args),
                        **notes,
                        "baseline": baseline,
                        "rows": rows,
                    }
                ),
                indent=1,
            )
        )
    else:
        report(args, rows, baseline, notes)


if __name__ == "__main__":
    asyncio.run(main())

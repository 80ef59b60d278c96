"""The benches' figures: the mark trace (`daemon/exchanges/mark_trace.py`) read and set against what the
simulator sent (`bench/harness.py`), and the median-and-spread summaries they print."""

from __future__ import annotations

import bisect
import dataclasses
import statistics
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

Send = tuple[str, float, float]  # (market id, price, monotonic time the simulator published it)
Decision = tuple[float, str, str, float, float | None]  # (t, account, market id, price, held)


def market_id(symbol: str) -> str:
    """'SYN0001/USDT:USDT' (ccxt's unified symbol) -> 'SYN0001USDT' (the simulator's id)."""
    return symbol.split(":")[0].replace("/", "")


# ---- the trace against the sends ----


@dataclasses.dataclass
class Trace:
    frames: dict[tuple[str, float], float]  # (market id, price) -> when ccxt first took it
    decisions: list[Decision]  # (t, account, market id, price, held)


def read_trace(path: Path) -> Trace:
    frames: dict[tuple[str, float], float] = {}
    decisions: list[Decision] = []
    if not path.exists():
        return Trace(frames, decisions)
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            parts = line.split()
            if len(parts) == 4 and parts[0] == "F":
                frames.setdefault((parts[2], round(float(parts[3]), 2)), float(parts[1]))
            elif len(parts) == 6 and parts[0] == "D":
                held = None if parts[5] == "None" else round(float(parts[5]), 2)
                decisions.append(
                    (float(parts[1]), parts[2], market_id(parts[3]), round(float(parts[4]), 2), held)
                )
    return Trace(frames, decisions)


def in_window(trace: Trace, since: float, until: float) -> list[Decision]:
    return [d for d in trace.decisions if since <= d[0] < until]


def frame_to_decision_ms(trace: Trace, decisions: Iterable[Decision]) -> list[float]:
    """From ccxt taking a mark's frame to each account's decision on that mark."""
    return [
        (t - trace.frames[(market, price)]) * 1000.0
        for t, _account, market, price, _held in decisions
        if (market, price) in trace.frames
    ]


def superseded(decisions: Iterable[Decision], order: dict[tuple[str, float], int]) -> int:
    """Decisions made on a mark older than the one ccxt already held for the symbol."""
    count = 0
    for _t, _account, market, price, held in decisions:
        if held is None or held == price:
            continue
        if order.get((market, held), -1) > order.get((market, price), -1):
            count += 1
    return count


def send_order(sends: Iterable[Send]) -> dict[tuple[str, float], int]:
    return {(market, price): number for number, (market, price, _t) in enumerate(sends)}


def covering_lags_ms(
    sends: Sequence[Send],
    decisions: Sequence[Decision],
    holders: dict[str, list[str]],
    order: dict[tuple[str, float], int],
) -> tuple[list[float], int]:
    """For each mark sent and each account holding its symbol: how long until that account decided on that
    mark or a newer one (a decision skipping superseded marks covers them). Returns the lags and how many
    were never covered."""
    by_leg: dict[tuple[str, str], tuple[list[float], list[int]]] = defaultdict(lambda: ([], []))
    for t, account, market, price, _held in sorted(decisions):
        times, newest = by_leg[(account, market)]
        number = order.get((market, price), -1)
        times.append(t)
        newest.append(max(number, newest[-1]) if newest else number)  # the newest decided so far
    lags: list[float] = []
    missing = 0
    for market, price, sent_at in sends:
        number = order[(market, price)]
        for account in holders.get(market, ()):
            times, newest = by_leg.get((account, market), ([], []))
            # the first decision at or after the send whose newest-so-far reaches this mark
            index = bisect.bisect_left(newest, number)
            if index < len(times):
                lags.append(max(0.0, times[index] - sent_at) * 1000.0)
            else:
                missing += 1
    return lags, missing


def holders_of(holdings: dict[str, list[str]]) -> dict[str, list[str]]:
    """Market id -> the accounts holding it."""
    result: dict[str, list[str]] = defaultdict(list)
    for account, markets in holdings.items():
        for market in markets:
            result[market].append(account)
    return result


# ---- figures ----


def percentile(values: Sequence[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def summary(values: Sequence[float]) -> tuple[float, float, float]:
    """Median, min and max of one figure over the runs (NaN-free)."""
    clean = [v for v in values if v == v]
    if not clean:
        return float("nan"), float("nan"), float("nan")
    return statistics.median(clean), min(clean), max(clean)


def fmt(values: Sequence[float], digits: int = 2) -> str:
    median, low, high = summary(values)
    if median != median:
        return "n/a"
    if len([v for v in values if v == v]) == 1:
        return f"{median:.{digits}f}"
    return f"{median:.{digits}f} ({low:.{digits}f}–{high:.{digits}f})"


def json_safe(value: Any) -> Any:
    """Infinite and NaN figures (never decided, nothing measured) as null: JSON has no word for them."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value


def command_line() -> str:
    return " ".join([".venv/bin/python", *sys.argv])

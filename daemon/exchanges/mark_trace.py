"""An opt-in trace of mark prices for the benchmarks: when ccxt takes each mark frame, and when a runner decides
on a mark. Off unless `MARGINGUARD_MARK_TRACE` names a file; then `TRACE` is set at import.

Off, it costs one module-global `is None` test per hub built and per runner step, nothing per frame (the frame
hook is installed only when on). On, it appends text lines to its file (flushed a quarter second after a write and
at exit), times from `time.monotonic()` (CLOCK_MONOTONIC: one clock for every process on the machine, so a bench
can set them beside the simulator's send times). A record is kept as a tuple and turned into text at the flush,
after the burst it belongs to: formatting 3,000 lines inside a burst of 1,000 accounts' decisions took a quarter
of the decisions' time, so the trace delayed what it measures.

    F <t> <market id> <price>                    ccxt took a mark frame (before parsing it)
    D <t> <account> <symbol> <price> <held>      a runner decided on `price`; `held`: ccxt's cached mark then

A runner writes a `D` line for each leg whose mark changed since its previous line for that leg. A `held` newer
than `price` is a decision made on a superseded mark. Frames are recognised in Binance's mark-price shape (a
dict with `s` and `p`: the benches' simulator dialect); other venues' frames are not timed.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import time
from collections.abc import Iterable
from typing import Any

ENV = "MARGINGUARD_MARK_TRACE"
FLUSH_EVERY_S = 0.25  # a bench reads the file while the daemon runs (capacity steps)


class MarkTrace:
    def __init__(self, path: str, clock: Any = time.monotonic) -> None:
        self.path = path
        self._clock = clock
        self._records: list[tuple[Any, ...]] = []
        self._flush_due = False
        self._decided: dict[tuple[str, str], float] = {}
        open(path, "w").close()  # truncated: one trace per process life
        atexit.register(self.flush)

    def watch_frames(self, client: Any) -> None:
        """Time every message `client` takes, ahead of ccxt's own handling. ccxt binds the callback when it
        opens a socket, so this must run before the first watch."""
        handle = client.handle_message

        def timed(ws: Any, message: Any) -> Any:
            if isinstance(message, dict) and "s" in message and "p" in message:
                self._write(("F", self._clock(), message["s"], message["p"]))
            return handle(ws, message)

        client.handle_message = timed

    def decided(self, account: str, marks: Iterable[tuple[str, float | None]], client: Any) -> None:
        """Record the (symbol, mark) pairs decided on that changed since this account's previous call, with
        the mark ccxt's cache (`client.tickers`) held for the symbol at that moment."""
        now = self._clock()
        tickers = getattr(client, "tickers", None) or {}
        for symbol, price in marks:
            if price is None or self._decided.get((account, symbol)) == price:
                continue
            self._decided[(account, symbol)] = price
            held = (tickers.get(symbol) or {}).get("markPrice")
            self._write(("D", now, account, symbol, price, held))

    def _write(self, record: tuple[Any, ...]) -> None:
        self._records.append(record)
        if not self._flush_due:
            # A timer rather than a check on the next write: the last lines before a quiet spell must reach
            # the file too. Outside an event loop (a test) they wait for `flush()` or the exit.
            try:
                asyncio.get_running_loop().call_later(FLUSH_EVERY_S, self.flush)
                self._flush_due = True
            except RuntimeError:
                pass

    def flush(self) -> None:
        self._flush_due = False
        if not self._records:
            return
        records, self._records = self._records, []
        with open(self.path, "a", encoding="utf-8") as out:
            out.write("\n".join(_line(record) for record in records) + "\n")


def _line(record: tuple[Any, ...]) -> str:
    if record[0] == "F":
        _kind, t, market_id, price = record
        return f"F {t:.6f} {market_id} {price}"
    _kind, t, account, symbol, price, held = record
    return f"D {t:.6f} {account} {symbol} {price!r} {held!r}"


def _from_environment() -> MarkTrace | None:
    path = os.environ.get(ENV)
    return MarkTrace(path) if path else None


TRACE: MarkTrace | None = _from_environment()

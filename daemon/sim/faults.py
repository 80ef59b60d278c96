"""Run-time switchable faults: what a flaky exchange does to its clients.

Each fault can be set with an optional `duration_s` (wall time, on the injectable monotonic clock) and/or
`count` (number of requests or frames it applies to), and cleared. Kinds, with their parameters:

- `drop`               `drop_websockets()`: close every open websocket now (one-shot, nothing to clear).
- `stall`              sockets stay open but data frames are silently withheld (protocol pings still answered).
- `delay`              `ms`: every data frame and HTTP answer is held back this long.
- `malformed`          the next frames (`count`, default 1) are replaced by invalid JSON.
- `http_status`        `status` (429 | 418 | 500 | 502 | 503), optional `path` prefix and `method`: answer in
                       the dialect's own error shape instead of serving the request.
- `http_timeout`       optional `path` prefix and `method`: hold the request open until the fault is cleared
                       (or `hold_s`, default 120 s) so the client times out.
- `listen_key_expired` the private stream's key is reported expired (dialects decide what that means).
- `clock_skew`         `ms`: the server's clock runs this far ahead (negative: behind) of the real one, so
                       signed requests fall outside their receive window.
- `restart`            `down_s` (default 3): the exchange restarts. Every websocket is closed at once, every
                       request and websocket upgrade is refused with 503 for `down_s`, and the dialects forget
                       what a restart loses (Binance: its listen keys); then it serves again, the accounts,
                       positions and marks as they were.

An `http_status` fault may also set `retry_after_s`: the Retry-After header its answers carry instead of the
dialect's own (Binance's 429 says 60 s, too long for most tests).

Listeners registered with `on_change` hear `FaultChanged` after every set/clear (the server forwards them to
the dialect's `on_event`, e.g. to push `listenKeyExpired`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from daemon.sim.sockets import SimSocket

KINDS = (
    "drop",
    "stall",
    "delay",
    "malformed",
    "http_status",
    "http_timeout",
    "listen_key_expired",
    "clock_skew",
    "restart",
)
HTTP_STATUSES = (429, 418, 500, 502, 503, 504)


@dataclass(frozen=True, slots=True)
class FaultChanged:
    kind: str
    active: bool
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class _Active:
    params: dict[str, Any]
    until: float | None  # monotonic deadline
    remaining: int | None  # uses left


class Faults:
    def __init__(
        self, clock: Callable[[], float] = time.monotonic, wall_clock: Callable[[], float] = time.time
    ):
        self.clock = clock
        self.wall_clock = wall_clock
        self._active: dict[str, _Active] = {}
        self._sockets: set[SimSocket] = set()
        self._listeners: list[Callable[[FaultChanged], None]] = []
        self._released = asyncio.Event()  # set (and replaced) when http_timeout is cleared by hand
        self.drops = 0  # how many sockets `drop_websockets` has closed, for tests and the control API
        self.restarts = 0  # how many times the exchange was restarted (`restart`)

    # ---- setting and clearing ----

    def set(
        self, kind: str, *, duration_s: float | None = None, count: int | None = None, **params: Any
    ) -> None:
        """Switch a fault on (replacing an active one of the same kind). `drop` acts at once."""
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(KINDS)}")
        if kind == "drop":
            self.drop_websockets()
            return
        if kind == "http_status" and int(params.get("status", 0)) not in HTTP_STATUSES:
            raise ValueError(f"http_status needs status in {HTTP_STATUSES}")
        if kind in ("delay", "clock_skew") and "ms" not in params:
            raise ValueError(f"{kind} needs ms")
        if kind == "malformed" and count is None:
            count = 1
        if kind == "restart":
            params["down_s"] = duration_s = float(params.get("down_s", duration_s or 3.0))
            count = None
        until = self.clock() + duration_s if duration_s is not None else None
        self._active[kind] = _Active(dict(params), until, count)
        if kind == "restart":
            self.restarts += 1
            self.drop_websockets()  # a restarting server takes every connection with it
        self._notify(FaultChanged(kind, True, dict(params)))

    def clear(self, kind: str | None = None) -> None:
        """Switch one fault off, or all of them; requests held by `http_timeout` are released."""
        kinds = [kind] if kind is not None else list(self._active)
        for name in kinds:
            self._expire_one(name)
        if "http_timeout" in kinds or kind is None:
            self._released.set()
            self._released = asyncio.Event()

    def active(self) -> dict[str, dict[str, Any]]:
        """Active faults with their parameters and what is left of them (for `/_sim/state`)."""
        self._expire()
        return {
            kind: {**a.params, "remaining": a.remaining, "until": a.until} for kind, a in self._active.items()
        }

    def on_change(self, listener: Callable[[FaultChanged], None]) -> None:
        self._listeners.append(listener)

    # ---- queries used by sockets, the server and the dialects ----

    @property
    def stall(self) -> bool:
        return self._get("stall") is not None

    @property
    def delay_ms(self) -> float:
        fault = self._get("delay")
        return float(fault.params["ms"]) if fault is not None else 0.0

    def http_status_retry_after_s(self) -> float | None:
        """The Retry-After the active http_status fault asks its answers to carry (None: the dialect's own).
        Read before `take_http_status`, which may use the fault up."""
        fault = self._get("http_status")
        value = None if fault is None else fault.params.get("retry_after_s")
        return None if value is None else float(value)

    @property
    def restarting(self) -> bool:
        """The exchange is down for a restart: refuse everything but the control API."""
        return self._get("restart") is not None

    @property
    def listen_key_expired(self) -> bool:
        return self._get("listen_key_expired") is not None

    @property
    def clock_skew_ms(self) -> int:
        fault = self._get("clock_skew")
        return int(fault.params["ms"]) if fault is not None else 0

    def server_time_ms(self) -> int:
        """The exchange's clock as its clients see it: wall clock plus any skew."""
        return int(self.wall_clock() * 1000) + self.clock_skew_ms

    def take_malformed(self) -> bool:
        """True when the frame about to be sent must be replaced by garbage (consumes one use)."""
        return self._consume("malformed", None) is not None

    def take_http_status(self, path: str, method: str | None = None) -> int | None:
        """The status to answer `path` with instead of serving it, if an http_status fault matches."""
        fault = self._consume("http_status", path, method)
        return int(fault.params["status"]) if fault is not None else None

    def take_http_timeout(self, path: str, method: str | None = None) -> float | None:
        """Seconds to hold `path` unanswered, if an http_timeout fault matches."""
        fault = self._consume("http_timeout", path, method)
        return float(fault.params.get("hold_s", 120.0)) if fault is not None else None

    async def hold(self, seconds: float) -> None:
        """Wait `seconds` or until `http_timeout` is cleared, whichever comes first."""
        released = self._released
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(released.wait(), seconds)

    # ---- websockets ----

    def register(self, socket: SimSocket) -> None:
        self._sockets.add(socket)

    def unregister(self, socket: SimSocket) -> None:
        self._sockets.discard(socket)

    @property
    def open_sockets(self) -> int:
        return len(self._sockets)

    @property
    def sockets(self) -> frozenset[SimSocket]:
        """The websockets open right now."""
        return frozenset(self._sockets)

    def drop_websockets(self) -> int:
        """Close every open websocket now (abruptly, as a dying load balancer would); returns how many."""
        sockets = list(self._sockets)
        for socket in sockets:
            socket.abort()
        self.drops += len(sockets)
        self._notify(FaultChanged("drop", True, {"sockets": len(sockets)}))
        return len(sockets)

    # ---- internals ----

    def _get(self, kind: str) -> _Active | None:
        fault = self._active.get(kind)
        if fault is not None and fault.until is not None and self.clock() >= fault.until:
            self._expire_one(kind)
            return None
        return fault

    def _consume(self, kind: str, path: str | None, method: str | None = None) -> _Active | None:
        fault = self._get(kind)
        if fault is None:
            return None
        prefix = fault.params.get("path")
        if path is not None and prefix and not path.startswith(prefix):
            return None
        # A method tells apart requests under one prefix (POST /fapi/v1/positionMargin, GET .../history).
        wanted = fault.params.get("method")
        if method is not None and wanted and method.upper() != str(wanted).upper():
            return None
        if fault.remaining is not None:
            fault.remaining -= 1
            if fault.remaining <= 0:
                self._expire_one(kind)  # requests already held stay held: they were counted
        return fault

    def _expire_one(self, kind: str) -> None:
        if self._active.pop(kind, None) is not None:
            self._notify(FaultChanged(kind, False))

    def _expire(self) -> None:
        for kind in list(self._active):
            self._get(kind)

    def _notify(self, change: FaultChanged) -> None:
        for listener in list(self._listeners):
            listener(change)

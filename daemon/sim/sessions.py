"""The simulator's connection log: every authenticated private websocket session, per account.

A session opens when a private stream is bound to an account (Binance: the listen-key socket is accepted; Bybit:
`auth` succeeds; OKX: `login` succeeds) and closes when its connection ends (the client closed it, went away,
or the simulator dropped it). Each session records the account's API key, the client's TCP address
(`peer`: host and port, as the kernel shows it on the client's side, so a test can tell which local process
holds that port), the path, and its open and close times (the simulator's clock and `time.monotonic()`).

    GET /_sim/connections?open=1&api_key=...     {"sessions": [...]}   (see `Session.to_json`)
    sim.sessions.open_sessions(), sim.sessions.of(api_key)

A socket that authenticates again under another key closes its first session and opens a second one; the
same key again keeps the session it has.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from daemon.sim.sockets import SimSocket


@dataclass(slots=True)
class Session:
    id: int
    api_key: str
    peer: tuple[str, int] | None  # the client's (host, port); None if the transport was already gone
    path: str
    opened_at: float  # the simulator's clock (the engine's: wall time unless a test injects one)
    opened_mono: float  # time.monotonic(): one clock for every process on the machine
    closed_at: float | None = None
    closed_mono: float | None = None
    channels: frozenset[str] = field(default_factory=frozenset)  # what it had subscribed when last looked at

    @property
    def open(self) -> bool:
        return self.closed_mono is None

    @property
    def peer_port(self) -> int | None:
        return None if self.peer is None else self.peer[1]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "api_key": self.api_key,
            "peer": list(self.peer) if self.peer is not None else None,
            "path": self.path,
            "opened_at": self.opened_at,
            "opened_mono": self.opened_mono,
            "closed_at": self.closed_at,
            "closed_mono": self.closed_mono,
            "open": self.open,
            "channels": sorted(self.channels),
        }


def peer_of(socket: SimSocket) -> tuple[str, int] | None:
    request = socket.request
    transport = request.transport if request is not None else None
    peer = transport.get_extra_info("peername") if transport is not None else None
    if not peer:
        return None
    return str(peer[0]), int(peer[1])


class SessionLog:
    """Every private-stream session the simulator has seen, in opening order."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.sessions: list[Session] = []
        self._by_socket: dict[SimSocket, Session] = {}
        self._ids = itertools.count(1)

    def opened(self, socket: SimSocket, api_key: str) -> Session:
        """`socket` is now `api_key`'s private stream (call once it is authenticated)."""
        current = self._by_socket.get(socket)
        if current is not None:
            if current.api_key == api_key:
                return current
            self.closed(socket)
        path = socket.request.path if socket.request is not None else ""
        session = Session(next(self._ids), api_key, peer_of(socket), path, self.clock(), time.monotonic())
        self.sessions.append(session)
        self._by_socket[socket] = session
        return session

    def closed(self, socket: SimSocket, channels: frozenset[str] = frozenset()) -> None:
        """`socket`'s connection ended (harmless for a socket without a session, or one already closed)."""
        session = self._by_socket.pop(socket, None)
        if session is not None:
            session.channels = channels or session.channels
            session.closed_at = self.clock()
            session.closed_mono = time.monotonic()

    def note_channels(self, socket: SimSocket, channels: frozenset[str]) -> None:
        session = self._by_socket.get(socket)
        if session is not None:
            session.channels = channels

    def open_sessions(self) -> list[Session]:
        return [s for s in self.sessions if s.open]

    def of(self, api_key: str) -> list[Session]:
        return [s for s in self.sessions if s.api_key == api_key]

    def since(self, mono: float) -> list[Session]:
        """Sessions opened at or after `mono` (time.monotonic())."""
        return [s for s in self.sessions if s.opened_mono >= mono]

"""The one shape every exchange dialect of the simulator has (Binance USD-M, Bybit v5, OKX v5, and the next).

A dialect translates between one exchange's wire format and the exchange-neutral `Engine`. Each is a package
`daemon/sim/<name>/` laid out the same way, so a new one starts as a copy of an existing one:

    __init__.py    re-exports the dialect class (and says what each module holds)
    dialect.py     `class <Name>Dialect(SimDialect)`: `ccxt_id`, `family`, `build()`, `ccxt_config()`,
                   `error_response()`
    rest.py        the REST endpoints at the exchange's real paths: an object with `routes()`
    streams.py     the websockets and the pushes of engine events: an object with `routes()` and `on_event()`
    auth.py        signatures and timestamps checked as the exchange checks them
    payloads.py    JSON bodies in the exchange's exact shapes, from the engine's figures

and one line in `daemon/sim/dialects.py` registers it. The margin rules it answers with come from the oracle
(`daemon.sim.oracle`, chosen by `family`), never from the daemon's own model.

What `SimDialect` asks of a subclass:
- `build()`: the dialect's `rest` and `streams` parts (any shared state set on `self` first);
- `ccxt_config()`: what an unmodified ccxt.pro client needs to talk to this server (URLs, keys, options);
- `error_response()`: an HTTP fault answered in the exchange's own error shape, with its retry headers;
  `kind` is "rate_limited" (429), "banned" (418) or "server_error" (5xx).
`routes()` and `on_event()` (engine events and `FaultChanged`, queued as pushes through the `SocketHub`) are
the base's: the parts' routes, and the streams' handling of events.

Websocket handlers should use `daemon.sim.server.open_socket(request, faults, hub)` to create the
`SimSocket`, so drops, stalls and delays apply to them. `Faults.server_time_ms()` is the clock to check
request timestamps against (it carries the clock-skew fault).
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

from aiohttp import web

from daemon.sim.engine import Engine, SimAccount
from daemon.sim.faults import Faults
from daemon.sim.sockets import SocketHub


class RestPart(Protocol):
    def routes(self) -> list[web.RouteDef]: ...


class StreamPart(Protocol):
    def routes(self) -> list[web.RouteDef]: ...

    def on_event(self, event: object) -> None: ...


class SimDialect:
    """The base of every dialect: holds the engine, faults and socket hub, and serves its parts."""

    ccxt_id: ClassVar[str]
    family: ClassVar[str]

    def __init__(self, engine: Engine, faults: Faults, hub: SocketHub) -> None:
        self.engine = engine
        self.faults = faults
        self.hub = hub
        self.rest, self.streams = self.build()

    def build(self) -> tuple[RestPart, StreamPart]:
        raise NotImplementedError

    def routes(self) -> list[web.RouteDef]:
        return [*self.rest.routes(), *self.streams.routes()]

    def ccxt_config(self, http_base: str, ws_base: str, account: SimAccount) -> dict[str, Any]:
        raise NotImplementedError

    def error_response(self, kind: str, status: int) -> web.Response:
        raise NotImplementedError

    def on_event(self, event: object) -> None:
        self.streams.on_event(event)


ERROR_KINDS = {429: "rate_limited", 418: "banned"}


def error_kind_for_status(status: int) -> str:
    """The `error_response` kind for an HTTP fault status."""
    return ERROR_KINDS.get(status, "server_error")

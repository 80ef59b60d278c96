"""The plug-in protocol every exchange dialect implements (Binance USD-M, Bybit v5, OKX v5).

A dialect translates between one exchange's wire format and the exchange-neutral `Engine`:
- `routes()`: its REST and websocket endpoints at the exchange's real paths (the server mounts them as-is);
- `ccxt_config()`: what an unmodified ccxt.pro client needs to talk to this server (URLs, keys, options);
- `error_response()`: an HTTP fault answered in the exchange's own JSON error shape, with its retry headers;
  `kind` is "rate_limited" (429), "banned" (418) or "server_error" (5xx);
- `on_event()`: engine events (`daemon.sim.engine.*` dataclasses) and fault changes
  (`daemon.sim.faults.FaultChanged`) become websocket pushes, queued through the `SocketHub`/`SimSocket`
  (synchronous: `SimSocket.enqueue` / `SocketHub.publish`).

Websocket handlers should use `daemon.sim.server.open_socket(request, faults, hub)` to create the
`SimSocket`, so drops, stalls and delays apply to them. `Faults.server_time_ms()` is the clock to check
request timestamps against (it carries the clock-skew fault).
"""

from __future__ import annotations

from typing import Any, Protocol

from aiohttp import web

from daemon.sim.engine import Engine, SimAccount
from daemon.sim.faults import Faults
from daemon.sim.sockets import SocketHub


class Dialect(Protocol):
    ccxt_id: str  # "binanceusdm" | "bybit" | "okx"
    family: str  # the oracle venue whose margin rules apply: "binance" | "bybit" | "okx" (daemon.sim.oracle)

    def __init__(self, engine: Engine, faults: Faults, hub: SocketHub) -> None: ...

    def routes(self) -> list[web.RouteDef]: ...

    def ccxt_config(self, http_base: str, ws_base: str, account: SimAccount) -> dict[str, Any]: ...

    def error_response(self, kind: str, status: int) -> web.Response: ...

    def on_event(self, event: object) -> None: ...


ERROR_KINDS = {429: "rate_limited", 418: "banned"}


def error_kind_for_status(status: int) -> str:
    """The `error_response` kind for an HTTP fault status."""
    return ERROR_KINDS.get(status, "server_error")

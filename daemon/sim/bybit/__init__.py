"""The simulator's Bybit v5 dialect (ccxt id `bybit`): a unified trading account with USDT perpetuals.

Modules: `dialect` (the dialect class: URLs for ccxt, error shapes), `wire` (number formats, ids, envelope), `auth` (REST and websocket signatures), `errors` (retCodes),
`payloads` (JSON shapes from plain figures), `views` (engine state -> figures), `rest` (HTTP endpoints),
`streams` (websockets and engine-event pushes).
"""

from daemon.sim.bybit.dialect import BybitDialect

__all__ = ["BybitDialect"]

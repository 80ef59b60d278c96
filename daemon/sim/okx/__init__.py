"""The simulator's OKX v5 dialect (ccxt id `okx`): REST, websockets and signature checks.

Modules: `dialect` (the dialect class: URLs for ccxt, error shapes), `rest` (HTTP endpoints; `trading`,
`funding` and `history` behind them), `streams` (websockets and engine-event pushes), `auth` (signatures, demo
keys), `payloads` / `account_payloads` / `replies` (JSON shapes), `views` (engine state -> figures), `errors`.
"""

from daemon.sim.okx.dialect import OkxDialect

__all__ = ["OkxDialect"]

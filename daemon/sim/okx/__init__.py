"""The simulator's OKX v5 dialect (ccxt id `okx`): REST, websockets and signature checks."""

from daemon.sim.okx.dialect import OkxDialect

__all__ = ["OkxDialect"]

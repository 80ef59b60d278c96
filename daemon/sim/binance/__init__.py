"""The simulator's Binance USD-M dialect (ccxt id `binanceusdm`).

- `dialect`: the dialect class (URLs for ccxt, error shapes);
- `rest`: the REST endpoints at the real `/fapi/...` paths (and the two spot-wallet transfer routes);
- `streams`: the market websocket (mark prices, forced orders) and the user-data stream;
- `auth`: request signing and freshness checked as Binance checks them; `listen_keys`: user-stream keys;
- `payloads`, `pushes`, `orders`, `wire`: bodies in the exchange's exact shapes, types and error codes;
- `realized`: the per-row accumulated realized PnL Binance reports and the engine does not keep.
"""

from daemon.sim.binance.dialect import BinanceDialect

__all__ = ["BinanceDialect"]

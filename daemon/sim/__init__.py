"""marginguard's exchange simulator: Binance USD-M, Bybit v5 and OKX v5 at the wire level, on loopback.

Layout: `markets` (instruments), `model` + `book` + `engine` + `bands` (state machine, liquidation engine and its cache),
`faults` (run-time failures), `sockets` (websocket wrapper and channel hub), `dialect` (the plug-in
protocol) and `dialects` (registry), `server` (`SimServer`), `control` (the `/_sim/` API), `scenario` (data
driven price paths). Start with `daemon.sim.server.SimServer`.
"""

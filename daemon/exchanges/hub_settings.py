"""`HubSettings`: how a `MarketHub` (`daemon.exchanges.marketdata`) watches its marks and shares its clients."""

from __future__ import annotations

from dataclasses import dataclass, field

from daemon.core.backoff import Backoff


@dataclass(frozen=True, slots=True)
class HubSettings:
    stale_after_s: float = 10.0  # marks are pushed every 1-3 s by every supported exchange
    check_every_s: float = (
        0.25  # how often the watchdog looks: staleness is seen within this of the threshold
    )
    poll_every_s: float = 1.0  # for exchanges whose marks are polled over REST
    backoff: Backoff = field(default_factory=Backoff)
    # How many accounts of the environment take their first snapshot at once (`adopted`). Each client keeps
    # ccxt's own throttle (`enableRateLimit`: its `rateLimit` and per-endpoint costs, which ccxt models on one
    # key's share of the venue's limits), but nothing in ccxt spans clients: without a bound, thousands of
    # accounts would send their snapshots in the same instant from one address. Assumed: the venue limits
    # public endpoints per IP and private ones per key (Bybit, OKX). Binance also counts signed requests
    # against the IP's weight (2,400 a minute on USD-M; one snapshot weighs about 15): a bound on how many at
    # once spreads the burst but does not keep thousands of Binance accounts behind one IP within it; that
    # takes several addresses (cluster mode) or a longer reconciliation interval.
    startup_concurrency: int = 64
    # One stream of every market's marks instead of one per symbol, where the venue has one (see the module's
    # docstring). Chosen when the hub is built (`hub_for`), never switched while it runs: ccxt has no cheap way
    # to leave hundreds of per-symbol subscriptions, and both at once would parse every mark twice.
    all_markets: bool = False

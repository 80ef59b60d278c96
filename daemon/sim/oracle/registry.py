"""Every venue the oracle knows, by name. A new venue: copy one family module, add one line below."""

from __future__ import annotations

from daemon.sim.oracle.binance import Binance
from daemon.sim.oracle.bybit import Bybit
from daemon.sim.oracle.gate import Gate
from daemon.sim.oracle.hyperliquid import Hyperliquid
from daemon.sim.oracle.okx import Okx
from daemon.sim.oracle.rules import MarginRules

FAMILIES: dict[str, MarginRules] = {
    rules.name: rules
    for rules in (
        Binance(),
        Bybit(),
        Okx(),
        Gate(),
        Hyperliquid(),
    )
}


def rules_for(name: str) -> MarginRules:
    """The rules of the venue called `name`; a ValueError lists the known ones otherwise."""
    try:
        return FAMILIES[name]
    except KeyError:
        known = ", ".join(sorted(FAMILIES))
        raise ValueError(f"the simulator's oracle knows no venue {name!r} (known: {known})") from None

"""Which accounts need the oracle re-run after a mark move: a cache of safe price intervals per account.

Running the oracle for every holder of every symbol on every tick costs tens of µs an account (it computes
in Decimal). So after each run the engine keeps a `Band` per account: for each group of legs (an isolated
leg, or the cross legs of one symbol) the open price interval around its mark within which the group can
reach neither liquidation nor the margin-call ratio (`GroupVerdict.watch`, solved exactly by the oracle).
For cross accounts the oracle shares the account's slack between its cross symbols, so every symbol staying
inside its interval keeps the whole account safe whatever the others do; half of that slack is held back,
so a transfer or funding payment that leaves the cross wallet at or above `Band.wallet_floor` keeps the band
(where the venue's requirement does not itself move with the wallet). A later mark move needs the oracle
again only when some mark has left its interval; the engine drops the band on every position event of the
account and on wallet moves beyond the floor, and accounts already margin-called are always re-run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from daemon.sim.oracle import Verdict


@dataclass(frozen=True, slots=True)
class Band:
    watch: tuple[tuple[str, float, float], ...]  # (symbol, low, high): safe while low < mark < high
    wallet_floor: float | None  # the band survives a cross-wallet move that stays at or above it


def band_from(verdict: Verdict) -> Band | None:
    """The account's band, or None when some group has no safe interval (re-run on every move)."""
    floor = verdict.wallet_floor
    wallet_floor = None if floor is None else math.nextafter(float(floor), math.inf)
    watch = []
    for group in verdict.groups:
        if group.watch is None:
            return None
        low, high = group.watch
        # Rounded inwards, so a float mark can never sit outside the exact interval and pass as inside.
        low_f = -math.inf if low is None else math.nextafter(float(low), math.inf)
        high_f = math.inf if high is None else math.nextafter(float(high), -math.inf)
        watch.append((group.symbol, low_f, high_f))
    return Band(tuple(watch), wallet_floor)


def needs_model(band: Band, marks: Mapping[str, float]) -> bool:
    return any(not low < marks[symbol] < high for symbol, low, high in band.watch)

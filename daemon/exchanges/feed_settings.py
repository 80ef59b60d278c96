"""What an account's feed is told: its timings and thresholds (`FeedSettings`), and how it may fail."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from daemon.core.backoff import Backoff


@dataclass(frozen=True, slots=True)
class FeedSettings:
    reconcile_every_s: float = 60.0
    # Silence threshold of the private streams; None: silence means nothing (most accounts are quiet for
    # hours) and the reconciliation judges them. Never applied where quirks say pushes come only on change.
    private_stale_after_s: float | None = None
    check_every_s: float = 0.25
    reconcile_after_thin_push_s: float = 1.0
    # After a reconnect, how long the new socket gets to subscribe before the reconciliation snapshot.
    resubscribe_grace_s: float = 0.5
    # A snapshot that disagrees with the position stream is checked again this much later before the
    # stream is declared deaf (its push may simply trail the REST answer).
    confirm_after_s: float = 1.0
    backoff: Backoff = field(default_factory=Backoff)
    watch_balance: bool = True
    # How long this account's mark streams may be silent before it hears STALE: per symbol where its rules
    # name one (`RuleSet.named_symbols`), else the account's; None: the hub's own threshold.
    mark_stale_after_s: float | None = None
    mark_stale_after_s_by_symbol: Mapping[str, float] = field(default_factory=dict)
    # A private stream that stays down this long fails the feed (`FeedStalled`), so the account is rebuilt
    # from scratch (a new client); None: never. The daemon sets it from the account's `stale_after_s`.
    give_up_after_s: float | None = None


# Accounts started together would reconcile together for ever (each 60 s after its last), a wave of snapshots
# that held 1,000 accounts' marks up to 1.4 s: the first periodic reconciliation comes after a quarter to all of
# the interval, each later one after 90 to 100 % of it. Never later than `reconcile_every_s`.
FIRST_RECONCILE_SPREAD = 0.75
RECONCILE_SPREAD = 0.1


def reconcile_after_s(every_s: float, first: bool, draw: float) -> float:
    """When the next periodic reconciliation is due, `draw` in [0, 1) (a random number: the shell's)."""
    spread = FIRST_RECONCILE_SPREAD if first else RECONCILE_SPREAD
    return every_s * (1.0 - spread * draw)


class FeedStalled(Exception):
    """A private stream could not be brought back within `FeedSettings.give_up_after_s`: the feed fails, and
    whoever runs it should start the account again on a new client (the supervisor restarts its runner)."""

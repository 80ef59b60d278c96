"""What the alert policy remembers between decisions: per alert identity, where its figures stand, what the
receivers were last told, and a message counter that only grows.

The memory is a value: `decide` returns a new one. The shell keeps it (and may persist it) between calls.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from daemon.core.alerts import AlertIdentity, AlertKind
from daemon.core.values import value


class Level(enum.IntEnum):
    OK = 0
    WARNING = 1
    CRITICAL = 2


@value
class Crossing:
    """One threshold, debounced. `since` is when the figures last went beyond it (None: they are not beyond it
    now); `held` says the crossing has lasted the minimum duration and counts. Leaving counts at once."""

    since: float | None = None
    held: bool = False

    @property
    def beyond(self) -> bool:
        return self.since is not None

    def step(self, beyond: bool, now: float, min_duration_s: float) -> Crossing:
        # An unchanged crossing is returned as it is (a value: equal either way, and no object made per mark).
        if not beyond:
            return self if self.since is None and not self.held else _CLEAR
        if self.since is not None and self.held:
            return self
        since = self.since if self.since is not None else now
        return Crossing(since, self.held or now - since >= min_duration_s)


_CLEAR = Crossing()


@value
class Figures:
    """The last figures known for an alert's subject, carried on its messages."""

    contracts: float | None = None
    mark_price: float | None = None
    liquidation_price: float | None = None
    distance: float | None = None
    margin_ratio: float | None = None
    quantity: float | None = None  # base units (linear; quote value for inverse)
    notional: float | None = None  # in the settle currency, at the mark


@value
class Track:
    """One identity's conversation with the receivers.

    `notified` is the level receivers were last told (OK: nothing firing, or told it resolved); it lags `level`
    while the identity is silenced. `episode` counts the excursions beyond the warning threshold (each ends once
    the figures are clear of it, hysteresis included), so a decision taken within one can be named stably.
    """

    identity: AlertIdentity
    kind: AlertKind
    warning: Crossing = Crossing()
    critical: Crossing = Crossing()
    notified: Level = Level.OK
    last_sent: float | None = None
    episode: int = 0
    figures: Figures = Figures()

    @property
    def level(self) -> Level:
        if self.critical.held:
            return Level.CRITICAL
        if self.warning.held:
            return Level.WARNING
        return Level.OK

    @property
    def at_rest(self) -> bool:
        """Nothing beyond a threshold, nothing waiting on the clock, and receivers told OK: figures that stay
        clear of every threshold only move its figures (`rested`)."""
        warning, critical = self.warning, self.critical
        return (
            self.notified is Level.OK
            and warning.since is None
            and not warning.held
            and critical.since is None
            and not critical.held
        )

    def rested(self, figures: Figures) -> Track:
        """`step(False, False, ..., figures)` of a track `at_rest`: only the figures move (nothing is due)."""
        return Track(
            self.identity,
            self.kind,
            self.warning,
            self.critical,
            self.notified,
            self.last_sent,
            self.episode,
            figures,
        )

    def step(
        self, warning: bool, critical: bool, now: float, min_duration_s: float, figures: Figures
    ) -> Track:
        """The track once the figures say `warning` / `critical` (already with hysteresis applied)."""
        stepped_warning = self.warning.step(warning or critical, now, min_duration_s)
        # An episode starts when the figures cross the warning threshold, before any minimum duration has passed:
        # a top-up triggered inside that threshold belongs to the episode even if the alert has not fired yet.
        started = self.warning.since is None and stepped_warning.since is not None
        # Built directly, not by `dataclasses.replace` (this runs for every leg on every mark).
        return Track(
            self.identity,
            self.kind,
            stepped_warning,
            self.critical.step(critical, now, min_duration_s),
            self.notified,
            self.last_sent,
            self.episode + 1 if started else self.episode,
            figures,
        )


@dataclass(frozen=True, slots=True)
class Notice:
    """The last one-off message of an identity (a top-up outcome), so an unchanged refusal is not re-sent.
    `topic` is what makes two messages the same (a refusal's rule)."""

    topic: str
    sent_at: float


@dataclass(frozen=True, slots=True)
class PolicyMemory:
    """Tracks by identity key, and per identity the last message sequence and firing episode. The counters
    outlive the tracks (a position closed and reopened keeps counting), so neither ever goes back."""

    tracks: dict[str, Track] = field(default_factory=dict)
    sequences: dict[str, int] = field(default_factory=dict)
    episodes: dict[str, int] = field(default_factory=dict)
    notices: dict[str, Notice] = field(default_factory=dict)

    def track(self, identity: AlertIdentity) -> Track | None:
        return self.tracks.get(identity.key)

    def episode(self, identity: AlertIdentity) -> int:
        """The identity's current (or last) firing episode number; 0 when it never fired."""
        return self.episodes.get(identity.key, 0)

    def numbered_at_least(self, floors: Mapping[str, int]) -> PolicyMemory:
        """The memory with every identity's message counter at least `floors[key]` (what the journal holds): a
        memory saved before its last messages, or lost, never numbers a new message like an old one."""
        raised = {key: n for key, n in floors.items() if n > self.sequences.get(key, 0)}
        if not raised:
            return self
        return replace(self, sequences={**self.sequences, **raised})

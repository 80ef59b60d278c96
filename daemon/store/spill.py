"""What the journal could not write, held in memory until it can: alerts with their deliveries, and the outcomes
of deliveries and top-up intents that were to be written.

A full disk must not silence marginguard. While writes fail, a new alert and its deliveries live here (with
negative delivery ids, so the outbox can tell them from journaled ones without knowing), the outbox sends them
like any other, and the status of a journaled delivery or intent that could not be updated is overlaid on what
the database says. When a write works again, everything here is written in one transaction and forgotten.
Whatever is still here when the process dies is lost: that is what the journal_failure alert warns about.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from daemon.core.alerts import Alert

# A pending delivery as the outbox's reads see it: (sink, next attempt, delivery id, alert id, attempts, the
# alert or its JSON). Held alerts have negative alert ids too (-1 - their index).
Pending = tuple[str, float, int, int, int, "str | Alert"]


@dataclass(slots=True)
class SpilledDelivery:
    id: int  # negative: not in the database
    alert_index: int  # position of its alert in `Spill.alerts`
    sink: str
    next_attempt_at: float
    attempts: int = 0
    status: str = "pending"  # pending | sent | failed
    last_error: str | None = None
    sent_at: float | None = None


@dataclass(frozen=True, slots=True)
class HeldRow:
    """A delivery row to write: fresh (pending, never tried) or carried over from memory with its history."""

    sink: str
    next_attempt_at: float
    status: str = "pending"
    attempts: int = 0
    last_error: str | None = None
    sent_at: float | None = None


@dataclass(slots=True)
class DeliveryUpdate:
    """A journaled delivery's new state, not yet written."""

    status: str
    attempts_added: int
    next_attempt_at: float | None
    last_error: str | None
    sent_at: float | None


@dataclass
class Spill:
    alerts: list[tuple[Alert, float]] = field(default_factory=list)
    deliveries: dict[int, SpilledDelivery] = field(default_factory=dict)
    delivery_updates: dict[int, DeliveryUpdate] = field(default_factory=dict)
    intent_updates: dict[str, tuple[str, str, float]] = field(
        default_factory=dict
    )  # key -> status, detail, ts
    # After a flush, a spilled delivery the outbox still holds is found under its database id.
    moved: dict[int, int] = field(default_factory=dict)
    _next_id: int = -1

    def __bool__(self) -> bool:
        return bool(self.alerts or self.delivery_updates or self.intent_updates)

    def add_alert(self, alert: Alert, sinks: list[str], now: float) -> None:
        index = len(self.alerts)
        self.alerts.append((alert, now))
        for sink in sinks:
            self.deliveries[self._next_id] = SpilledDelivery(self._next_id, index, sink, now)
            self._next_id -= 1

    def update_delivery(
        self,
        delivery_id: int,
        status: str,
        next_attempt_at: float | None = None,
        error: str | None = None,
        sent_at: float | None = None,
    ) -> None:
        """Record a delivery's outcome, whether the delivery lives here or in the database."""
        delivery_id = self.moved.get(delivery_id, delivery_id)
        spilled = self.deliveries.get(delivery_id)
        if spilled is not None:
            spilled.attempts += 1
            spilled.status = status
            spilled.last_error = error if error is not None else spilled.last_error
            spilled.sent_at = sent_at
            if next_attempt_at is not None:
                spilled.next_attempt_at = next_attempt_at
            return
        known = self.delivery_updates.get(delivery_id)
        added = (known.attempts_added if known else 0) + 1
        self.delivery_updates[delivery_id] = DeliveryUpdate(status, added, next_attempt_at, error, sent_at)

    def journaled_id(self, delivery_id: int) -> int:
        """The id to write an outcome under: a flushed delivery's database id, else the id as given."""
        return self.moved.get(delivery_id, delivery_id)

    def held_alerts(self) -> Iterator[tuple[Alert, float, list[int], list[HeldRow]]]:
        """What a flush writes, oldest first: each alert, when it was raised, its deliveries' ids and rows."""
        for index, (alert, now) in enumerate(self.alerts):
            held = [d for d in self.deliveries.values() if d.alert_index == index]
            rows = [
                HeldRow(d.sink, d.next_attempt_at, d.status, d.attempts, d.last_error, d.sent_at)
                for d in held
            ]
            yield alert, now, [d.id for d in held], rows

    def flushed(self, moved: dict[int, int]) -> None:
        """Everything here was written (one transaction, committed); `moved`: held delivery id -> database id."""
        self.clear()
        self.moved.update(moved)

    def overlay(self, rows: Iterable[Any]) -> list[Pending]:
        """The pending deliveries: the database's `rows` (id, alert_id, sink, attempts, next_attempt_at, payload;
        oldest alert first) with the outcomes held here applied, then the deliveries held here."""
        pending: list[Pending] = []
        for row in rows:
            update = self.delivery_updates.get(row["id"])
            if update is not None and update.status != "pending":
                continue
            attempts = row["attempts"] + (update.attempts_added if update else 0)
            due = (
                update.next_attempt_at
                if update and update.next_attempt_at is not None
                else row["next_attempt_at"]
            )
            pending.append((row["sink"], due, row["id"], row["alert_id"], attempts, row["payload"]))
        for held in sorted(self.deliveries.values(), key=lambda d: -d.id):
            if held.status == "pending":
                alert = self.alerts[held.alert_index][0]
                pending.append(
                    (held.sink, held.next_attempt_at, held.id, -1 - held.alert_index, held.attempts, alert)
                )
        return pending

    def clear(self) -> None:
        self.alerts.clear()
        self.deliveries.clear()
        self.delivery_updates.clear()
        self.intent_updates.clear()

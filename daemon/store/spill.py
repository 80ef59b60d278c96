"""What the journal could not write, held in memory until it can: alerts with their deliveries, and the outcomes
of deliveries and top-up intents that were to be written.

A full disk must not silence marginguard. While writes fail, a new alert and its deliveries live here (with
negative delivery ids, so the outbox can tell them from journaled ones without knowing), the outbox sends them
like any other, and the status of a journaled delivery or intent that could not be updated is overlaid on what
the database says. When a write works again, everything here is written in one transaction and forgotten.
Whatever is still here when the process dies is lost: that is what the journal_failure alert warns about.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from daemon.core.alerts import Alert


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

    def clear(self) -> None:
        self.alerts.clear()
        self.deliveries.clear()
        self.delivery_updates.clear()
        self.intent_updates.clear()

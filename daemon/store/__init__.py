"""The journal: marginguard's durable memory in SQLite (alerts, their deliveries, top-up intents, silences)."""

from daemon.store.journal import Delivery, IntentRecord, Journal

__all__ = ["Delivery", "IntentRecord", "Journal"]

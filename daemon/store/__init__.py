"""The journal: marginguard's durable memory in SQLite (alerts, their deliveries, top-up intents, silences)."""

from daemon.store.journal import Journal
from daemon.store.schema import Delivery, IntentRecord, JournalUnavailable, SilenceRecord

__all__ = ["Delivery", "IntentRecord", "Journal", "JournalUnavailable", "SilenceRecord"]

"""The journal: marginguard's durable memory (alerts, their deliveries, top-up intents, silences) behind one async
port, over SQLite (the embedded default) or PostgreSQL."""

from daemon.store.journal import Journal
from daemon.store.port import JournalPort
from daemon.store.schema import Delivery, IntentRecord, JournalUnavailable, SilenceRecord
from daemon.store.sqlite_port import SqliteJournal

__all__ = [
    "Delivery",
    "IntentRecord",
    "Journal",
    "JournalPort",
    "JournalUnavailable",
    "SilenceRecord",
    "SqliteJournal",
]

"""The journal's tables and the records read from them."""

from __future__ import annotations

from dataclasses import dataclass

from daemon.core.alerts import Alert

SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    ts REAL NOT NULL,
    account TEXT NOT NULL,
    kind TEXT NOT NULL,
    severity TEXT NOT NULL,
    resolved INTEGER NOT NULL,
    payload TEXT NOT NULL,
    UNIQUE (key, sequence)
);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY,
    alert_id INTEGER NOT NULL REFERENCES alerts(id),
    sink TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',   -- pending | sent | failed
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_error TEXT,
    sent_at REAL,
    UNIQUE (alert_id, sink)
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (status, next_attempt_at);
CREATE TABLE IF NOT EXISTS topup_intents (
    intent_key TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    action TEXT NOT NULL,                     -- add_margin | transfer
    asset TEXT NOT NULL,
    amount REAL NOT NULL,
    status TEXT NOT NULL,                     -- pending | unknown | done | failed | unconfirmed | dry_run
    margin_before REAL,
    detail TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    updated REAL NOT NULL,
    episode INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS policy_memory (
    account TEXT PRIMARY KEY,
    payload TEXT NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS silences (
    id INTEGER PRIMARY KEY,
    account TEXT NOT NULL,
    symbol TEXT,
    until REAL NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL
);
-- Incident charts (PNG) of critical and liquidated alerts, one per message. Created on open like every table
-- here, so a journal from before charts opens as it is. `attached`: stored while the message's deliveries
-- still waited for it, so every attempt (retries and restarts included) sends the same picture, or none.
CREATE TABLE IF NOT EXISTS charts (
    alert_id INTEGER PRIMARY KEY REFERENCES alerts(id),
    png BLOB NOT NULL,
    attached INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,                     -- created | seeded:<account> | probe
    value TEXT NOT NULL
);
"""


class JournalUnavailable(Exception):
    """The journal cannot be written right now (see `Journal.write_failure`): do not start anything whose record
    would be lost — a top-up above all. Alerts are not affected: the journal holds them in memory meanwhile."""


# Intent statuses whose outcome is not known: they are settled against the exchange's records before any new
# top-up for the same position.
UNSETTLED = ("pending", "unknown")


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int  # negative while the delivery lives in memory only (the journal could not be written)
    alert_id: int
    sink: str
    attempts: int
    alert: Alert
    chart: bytes | None = None  # the message's incident chart (PNG), when one was stored in time for it


@dataclass(frozen=True, slots=True)
class IntentRecord:
    intent_key: str
    account: str
    symbol: str
    side: str
    action: str
    asset: str
    amount: float
    status: str
    margin_before: float | None  # the leg's margin (the wallet, for a transfer) read just before sending
    detail: str
    created: float
    updated: float
    episode: int = 0  # the firing episode the decision belongs to (limits count attempts per episode)


@dataclass(frozen=True, slots=True)
class SilenceRecord:
    id: int
    account: str
    symbol: str | None
    until: float
    reason: str

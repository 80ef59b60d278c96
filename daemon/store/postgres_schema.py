"""The PostgreSQL journal's tables, as ordered migrations recorded in `schema_version`.

The same tables and constraints as the SQLite journal (`schema.py`): what makes a message or a top-up intent
unique, and what a delivery row holds, are the journal's semantics and must not differ by engine. Each step runs
once, in order, in one transaction with the version bump; openers serialise on an advisory lock, so two
instances starting together against a new database do not both create it. A step is never edited once
released: a change is a new step appended to `MIGRATIONS`.
"""

from __future__ import annotations

from typing import Any

_V1 = """
CREATE TABLE alerts (
    id BIGSERIAL PRIMARY KEY,
    key TEXT NOT NULL,
    sequence BIGINT NOT NULL,
    ts DOUBLE PRECISION NOT NULL,
    account TEXT NOT NULL,
    kind TEXT NOT NULL,
    severity TEXT NOT NULL,
    resolved INTEGER NOT NULL,
    payload TEXT NOT NULL,
    UNIQUE (key, sequence)
);
CREATE INDEX alerts_account ON alerts (account, key);
CREATE TABLE deliveries (
    id BIGSERIAL PRIMARY KEY,
    alert_id BIGINT NOT NULL REFERENCES alerts(id),
    sink TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at DOUBLE PRECISION NOT NULL,
    last_error TEXT,
    sent_at DOUBLE PRECISION,
    UNIQUE (alert_id, sink)
);
CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at);
CREATE TABLE topup_intents (
    intent_key TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    action TEXT NOT NULL,
    asset TEXT NOT NULL,
    amount DOUBLE PRECISION NOT NULL,
    status TEXT NOT NULL,
    margin_before DOUBLE PRECISION,
    detail TEXT NOT NULL DEFAULT '',
    created DOUBLE PRECISION NOT NULL,
    updated DOUBLE PRECISION NOT NULL,
    episode INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE policy_memory (
    account TEXT PRIMARY KEY,
    payload TEXT NOT NULL,
    updated DOUBLE PRECISION NOT NULL
);
CREATE TABLE silences (
    id BIGSERIAL PRIMARY KEY,
    account TEXT NOT NULL,
    symbol TEXT,
    until DOUBLE PRECISION NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    created DOUBLE PRECISION NOT NULL
);
CREATE TABLE charts (
    alert_id BIGINT PRIMARY KEY REFERENCES alerts(id),
    png BYTEA NOT NULL,
    attached INTEGER NOT NULL,
    created DOUBLE PRECISION NOT NULL
);
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

# The cluster (`leases.py`): instances with their heartbeats, one lease row per shard, each account's shard, and
# the fence every action-leading write runs in its own transaction. The fence locks the lease row FOR SHARE, so
# an instance taking the shard over waits for that transaction, and sees its write, before it decides anything.
_V2 = """
CREATE TABLE cluster_instances (
    name TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    heartbeat_at TIMESTAMPTZ NOT NULL,
    stopped_at TIMESTAMPTZ
);
CREATE TABLE leases (
    shard INTEGER PRIMARY KEY,
    owner TEXT,
    epoch BIGINT NOT NULL DEFAULT 0,
    expires_at TIMESTAMPTZ NOT NULL DEFAULT 'epoch',
    acquired_at TIMESTAMPTZ
);
CREATE TABLE account_shards (
    account TEXT PRIMARY KEY,
    shard INTEGER NOT NULL
);
CREATE FUNCTION marginguard_fence(p_shard INTEGER, p_owner TEXT, p_epoch BIGINT) RETURNS void AS $$
BEGIN
    PERFORM 1 FROM leases
     WHERE shard = p_shard AND owner = p_owner AND epoch = p_epoch AND expires_at > clock_timestamp()
       FOR SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'the lease of shard % at epoch % is not held by %', p_shard, p_epoch, p_owner
            USING ERRCODE = 'MGL01';
    END IF;
END
$$ LANGUAGE plpgsql;
"""

# Ordered: MIGRATIONS[n] takes the schema from version n to n + 1.
MIGRATIONS: tuple[str, ...] = (_V1, _V2)

# Any fixed number: the advisory lock openers take while they migrate.
_MIGRATION_LOCK = 0x6D67_6A72  # "mgjr"


async def migrate(conn: Any) -> int:
    """Bring the database to the newest version; returns it. Refuses a database newer than this code."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        current = await conn.fetchval("SELECT MAX(version) FROM schema_version")
        version = int(current or 0)
        if version > len(MIGRATIONS):
            raise RuntimeError(
                f"the journal's schema is version {version}, newer than this marginguard knows"
                f" ({len(MIGRATIONS)}): upgrade marginguard"
            )
        for step in range(version, len(MIGRATIONS)):
            await conn.execute(MIGRATIONS[step])
            await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", step + 1)
        return len(MIGRATIONS)

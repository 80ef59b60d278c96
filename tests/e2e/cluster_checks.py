"""What the cluster tests and the cluster bench check beyond who watches what (`tests/e2e/cluster_support.py`):

- `overlaps`: two instances holding one account's private stream at once, from the simulator's connection log;
- `requests_from`: the requests an instance sent to the simulator (its request log, each entry's client port
  named by `Cluster.resolve` while its connection was open);
- `JournalAudit`: every row written to the journal's tables, with the PostgreSQL connection's client port
  (`inet_client_port()`), so a write is traced to the instance whose process holds that port. Triggers are
  added to every table of the journal's schema once the instances have created them; the test's audit table
  is its own, which the daemon never reads.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from tests.e2e.cluster_support import Cluster

AUDIT_TABLE = "zz_test_audit"

_AUDIT_SQL = f"""
CREATE TABLE IF NOT EXISTS {AUDIT_TABLE} (
    id BIGSERIAL PRIMARY KEY,
    tbl TEXT NOT NULL,
    op TEXT NOT NULL,
    account TEXT,
    client_port INTEGER,
    backend_pid INTEGER NOT NULL,
    at DOUBLE PRECISION NOT NULL
);
CREATE OR REPLACE FUNCTION {AUDIT_TABLE}_row() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    doc JSONB := CASE WHEN TG_OP = 'DELETE' THEN to_jsonb(OLD) ELSE to_jsonb(NEW) END;
    who TEXT := doc ->> 'account';
BEGIN
    IF who IS NULL AND doc ? 'alert_id' THEN
        EXECUTE format('SELECT account FROM %I.alerts WHERE id = $1', TG_TABLE_SCHEMA)
            INTO who USING (doc ->> 'alert_id')::BIGINT;
    END IF;
    INSERT INTO {AUDIT_TABLE} (tbl, op, account, client_port, backend_pid, at)
    VALUES (TG_TABLE_NAME, TG_OP, who, inet_client_port(), pg_backend_pid(),
            extract(epoch FROM clock_timestamp()));
    RETURN NULL;
END $$;
"""


@dataclass(frozen=True, slots=True)
class Overlap:
    account: str
    first: str  # instance
    second: str
    seconds: float  # how long both were open


def overlaps(
    cluster: Cluster, tolerance_s: float = 0.25, ignore: frozenset[str] = frozenset()
) -> list[Overlap]:
    """Pairs of one account's private streams held by two different instances at once for longer than
    `tolerance_s` (the simulator notes a close when it reads it), leaving out the instances in `ignore` (a
    frozen one keeps its sockets open by design)."""
    cluster.resolve()
    found: list[Overlap] = []
    now = time.monotonic()
    for account in cluster.accounts:
        spans = []
        for session in cluster.sim.sessions.of(account.api_key):
            owner = cluster.owner_of(session)
            if owner is not None and owner not in ignore:
                spans.append((session.opened_mono, session.closed_mono or now, owner))
        spans.sort()
        for i, (_opened, closed, owner) in enumerate(spans):
            for other_opened, other_closed, other in spans[i + 1 :]:
                if other_opened >= closed:
                    break
                both = min(closed, other_closed) - other_opened
                if other != owner and both > tolerance_s:
                    found.append(Overlap(account.id, owner, other, both))
    return found


def requests_from(
    cluster: Cluster, instance: str, since_wall: float, api_keys: set[str] | None = None
) -> list[dict[str, Any]]:
    """The requests `instance` sent from `since_wall` (time.time()) on, optionally only those signed with one of
    `api_keys`; each entry with its request-log index as "index"."""
    cluster.resolve()
    out = []
    for index, entry in enumerate(cluster.sim.engine.request_log):
        if entry["ts"] < since_wall or cluster.sender_of(index) != instance:
            continue
        if api_keys is None or entry.get("api_key") in api_keys:
            out.append({**entry, "index": index})
    return out


class JournalAudit:
    """Row-level triggers on the journal's tables; `rows()` names each write's instance where it can."""

    def __init__(self, cluster: Cluster, url: str) -> None:
        self.cluster = cluster
        self.url = url
        self.pg_port = urlsplit(url).port or 5432
        self._owners: dict[int, str] = {}  # audit row id -> instance
        self._seen = 0

    async def install(self) -> list[str]:
        """Audit every table of the journal's schema (call once the instances have created them); returns the
        tables audited."""
        conn = await asyncpg.connect(self.url, timeout=10)
        try:
            await conn.execute(_AUDIT_SQL)
            tables = [
                str(row["table_name"])
                for row in await conn.fetch(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
                    "AND table_type = 'BASE TABLE' AND table_name <> $1",
                    AUDIT_TABLE,
                )
            ]
            for table in tables:
                await conn.execute(
                    f'CREATE OR REPLACE TRIGGER {AUDIT_TABLE} AFTER INSERT OR UPDATE OR DELETE ON "{table}" '
                    f"FOR EACH ROW EXECUTE FUNCTION {AUDIT_TABLE}_row()"
                )
        finally:
            await conn.close()
        return tables

    async def poll(self) -> None:
        """Name the instance of every new audit row while its connection is still open (call it often)."""
        rows = await self._fetch(self._seen)
        if not rows:
            return
        ports = self.cluster.ports(self.pg_port)
        for row in rows:
            self._owners[int(row["id"])] = ports.get(int(row["client_port"] or 0), "?")
        self._seen = max(int(row["id"]) for row in rows)

    async def rows(self) -> list[dict[str, Any]]:
        """Every audited write so far: tbl, op, account, at (epoch seconds), instance ("?" if not named)."""
        await self.poll()
        return [
            {**dict(row), "instance": self._owners.get(int(row["id"]), "?")} for row in await self._fetch(0)
        ]

    async def _fetch(self, after: int) -> list[Any]:
        conn = await asyncpg.connect(self.url, timeout=10)
        try:
            return list(await conn.fetch(f"SELECT * FROM {AUDIT_TABLE} WHERE id > $1 ORDER BY id", after))
        finally:
            await conn.close()

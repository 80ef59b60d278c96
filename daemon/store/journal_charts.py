"""The journal's incident charts (a part of `Journal`, kept in its own module).

A critical or liquidated alert is journaled with its deliveries to chart-showing sinks held for a few seconds
(`record_alert(..., hold=...)`); the chart is rendered meanwhile, off the event loop, and stored here keyed by the
message, which makes those deliveries due at once. If no chart comes (rendering failed or was too slow, or the
daemon stopped), the hold simply runs out and the message goes as text: nothing waits on a chart for longer, and
a delivery after a restart finds the chart here or goes without it.

A chart stored after its hold ran out is kept for the status page but never attached, so every attempt at one
message — retries and restarts included — sends the same body. Charts are pruned as they are stored: those older
than `CHART_KEEP_S`, and all but the newest `CHART_KEEP_MAX`, unless a delivery of their message is still pending.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from daemon.store.schema import JournalUnavailable

CHART_KEEP_S = 7 * 86400.0
CHART_KEEP_MAX = 500  # about 50 KB each: a few tens of MB at most

_PENDING = "SELECT alert_id FROM deliveries WHERE status = 'pending'"


class JournalCharts:
    _db: sqlite3.Connection

    def _write(self, statements: Iterable[tuple[str, Sequence[Any]]]) -> list[sqlite3.Cursor]:
        raise NotImplementedError

    def store_chart(self, key: str, sequence: int, png: bytes, now: float) -> int | None:
        """Keep a message's chart and send its held deliveries now. Returns the alert's number (the chart's
        address on the status page, `/incident/<number>.png`), or None when the message is not in the database
        (held in memory while the journal could not be written) or the chart cannot be written: then the
        message goes as text when its hold runs out."""
        alert_id = self._alert_id(key, sequence)
        if alert_id is None:
            return None
        held = self._db.execute(
            "SELECT COUNT(*) FROM deliveries WHERE alert_id = ? AND status = 'pending' AND attempts = 0"
            " AND next_attempt_at > ?",
            (alert_id, now),
        ).fetchone()[0]
        try:
            self._write(
                [
                    (
                        "INSERT OR REPLACE INTO charts (alert_id, png, attached, created) VALUES (?, ?, ?, ?)",
                        (alert_id, png, int(held > 0), now),
                    ),
                    _release(alert_id, now),
                    (
                        f"DELETE FROM charts WHERE created < ? AND alert_id NOT IN ({_PENDING})",
                        (now - CHART_KEEP_S,),
                    ),
                    (
                        "DELETE FROM charts WHERE alert_id NOT IN (SELECT alert_id FROM charts ORDER BY alert_id"
                        f" DESC LIMIT ?) AND alert_id NOT IN ({_PENDING})",
                        (CHART_KEEP_MAX,),
                    ),
                ]
            )
        except JournalUnavailable:
            return None
        return alert_id

    def release_hold(self, key: str, sequence: int, now: float) -> None:
        """No chart is coming for this message: send its held deliveries now, as text."""
        alert_id = self._alert_id(key, sequence)
        if alert_id is not None:
            with contextlib.suppress(JournalUnavailable):  # the hold runs out by itself
                self._write([_release(alert_id, now)])

    def chart(self, alert_id: int) -> bytes | None:
        """A message's chart (PNG), for the status page."""
        row = self._db.execute("SELECT png FROM charts WHERE alert_id = ?", (alert_id,)).fetchone()
        return None if row is None else bytes(row[0])

    def attached_chart(self, alert_id: int) -> bytes | None:
        """The chart every delivery of this message sends, or None: it goes as text."""
        row = self._db.execute(
            "SELECT png FROM charts WHERE alert_id = ? AND attached = 1", (alert_id,)
        ).fetchone()
        return None if row is None else bytes(row[0])

    def _alert_id(self, key: str, sequence: int) -> int | None:
        row = self._db.execute(
            "SELECT id FROM alerts WHERE key = ? AND sequence = ?", (key, sequence)
        ).fetchone()
        return None if row is None else int(row[0])


def _release(alert_id: int, now: float) -> tuple[str, tuple[Any, ...]]:
    return (
        "UPDATE deliveries SET next_attempt_at = ? WHERE alert_id = ? AND status = 'pending' AND attempts = 0"
        " AND next_attempt_at > ?",
        (now, alert_id, now),
    )

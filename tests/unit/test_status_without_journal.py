"""/status while the journal cannot be read (PostgreSQL away): it still answers, with every account as the
runners see it, and says that silences, alerts and the outbox are not shown and why — never a 500 that leaves the
status page blank while the positions are known."""

from __future__ import annotations

from typing import Any

from daemon.app.status_view import status_document
from daemon.store import JournalUnavailable


class UnreadableJournal:
    """The reads /status makes, each refused as a PostgreSQL journal refuses them while it is away."""

    async def active_silences(self, now: float) -> Any:
        raise JournalUnavailable("PostgreSQL journal unavailable: no answer within 5 s")

    async def history(self, limit: int) -> Any:
        raise JournalUnavailable("PostgreSQL journal unavailable: no answer within 5 s")

    async def pending_deliveries(self) -> int:
        raise JournalUnavailable("PostgreSQL journal unavailable: no answer within 5 s")


async def test_status_answers_without_the_journal_and_says_what_it_cannot_show() -> None:
    document = await status_document([], UnreadableJournal(), lambda value: value, 1_800_000_000.0)  # type: ignore[arg-type]

    assert document["journal_unreadable"] == "PostgreSQL journal unavailable: no answer within 5 s"
    assert document["alerts"] == [] and document["outbox_pending"] is None
    assert document["accounts"] == {}

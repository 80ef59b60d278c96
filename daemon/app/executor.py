"""One account's top-up executor: journals a decision, sends it, and settles what it did from the exchange's books.

The pure policy decides (with the ledger as input); this shell makes the decision happen at most once:

- before sending, the leg's margin is read fresh from the exchange (the baseline a lost answer is judged against)
  and the intent is journaled; a journal that cannot be written starts no top-up;
- an answer that says "done" counts from that moment (the ledger entry's cooldown starts when it landed) and
  holds the leg until the account's picture shows the new margin;
- an answer that never came (timeout, dropped connection, 5xx) leaves the outcome unknown: the exchange's own
  records (`AccountRecords`) settle it before anything else is decided for that leg. While they cannot be read,
  the user is told once that the outcome is unknown; a top-up that landed is never told as failed;
- a journal that is new for the account (first start, or the journal was lost) knows nothing of the last day's
  top-ups: no top-up runs until the exchange's margin history of the last 24 h is counted against the daily
  limits. Where the venue keeps none that marginguard can read, what the open isolated legs hold beyond their
  opening margin is counted instead (a top-up to a leg closed since cannot be seen), and transfers, which no
  picture shows, wait until the journal is a day old.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import structlog

from daemon.app.http import Metrics
from daemon.app.intents import (
    Judgement,
    expected_after,
    judge_by_both,
    judge_by_changes,
    judge_by_margin,
    judge_by_snapshot,
    ledger_entry,
    topup_of,
    with_status,
)
from daemon.app.topup_seed import SEED_HISTORY, SEED_OPEN_LEGS, seeded_from_history, seeded_record
from daemon.core.policy_topup import TopUpExecuted, TopUpFailed, TopUpOutcome, TopUpUnknown
from daemon.core.state import AccountState
from daemon.core.topup import (
    DAY_S,
    Refused,
    TopUp,
    TopUpLedger,
    TopUpLimits,
    TopUpMethod,
    margin_added_while_open,
)
from daemon.core.types import Side
from daemon.exchanges.actuator import MarginActions
from daemon.exchanges.errors import ExchangeError, TransientError, said
from daemon.exchanges.records import AccountRecords
from daemon.store import IntentRecord, JournalPort, JournalUnavailable

# A top-up is decided on the streamed picture and sent only while a fresh REST read of the leg's margin agrees
# with it: relative tolerance (funding, fee rounding between a push and a read).
PICTURE_MARGIN_TOLERANCE = 1e-3
PICTURE_STALE = "picture_stale"
# A cluster instance's lease does not leave room for a request now: another round of the runner tries again.
LEASE_HELD_BACK = "lease"

log = structlog.get_logger("marginguard.topup")

# A read of the exchange's records that takes longer than this is given up for this tick (alerts wait on it);
# just above ccxt's own request timeout (10 s by default), so a slow exchange's answer is still taken.
READ_TIMEOUT_S = 12.0
# While an unknown outcome cannot be settled, the records are asked again after 2, 4, 8 ... at most 30 s.
_RECHECK_S, _RECHECK_MAX_S = 2.0, 30.0


def _always() -> str | None:
    return None


@dataclass
class _Open:
    """An intent whose outcome is not known yet, and when to ask the exchange's records about it next."""

    record: IntentRecord
    next_check: float = -math.inf
    failures: int = 0
    told_unknown: bool = False
    # The leg's size read just before sending (None: not known, as after a restart). Kept in memory only: where
    # the venue keeps no margin history, margin grown on a leg whose size changed proves nothing.
    contracts_before: float | None = None


class TopUpExecutor:
    def __init__(
        self,
        account_id: str,
        journal: JournalPort,
        metrics: Metrics,
        limits: TopUpLimits | None,
        clock: Callable[[], float],
    ) -> None:
        self.account_id = account_id
        self.journal = journal
        self.metrics = metrics
        self.limits = limits
        self.clock = clock
        # Read from the journal by `load`, which must be awaited before anything is decided.
        self.ledger = TopUpLedger(())
        self._open: dict[str, _Open] = {}
        self._seed_note: str | None = None
        self._seed_retry_at = -math.inf
        self._seed_failures = 0
        self._seed_problem = ""
        # Why nothing may be sent to the exchange now (None: it may). In a cluster: this instance's lease of the
        # account's shard must outlast the request (`daemon.app.cluster.ShardKeeper.may_send`).
        self.may_send: Callable[[], str | None] = _always

    async def load(self) -> None:
        """Read what the journal holds of this account: its ledger, its unsettled intents, its seeding."""
        spent = await self.journal.intents(self.account_id, seeded=True)
        self.ledger = TopUpLedger(tuple(ledger_entry(r) for r in spent))
        self._open = {r.intent_key: _Open(r) for r in await self.journal.unsettled_intents(self.account_id)}
        self._seed_note = await self.journal.seed_note(self.account_id)

    @property
    def unsettled(self) -> list[IntentRecord]:
        return [item.record for item in self._open.values()]

    @property
    def any_unsettled(self) -> bool:
        """Whether `unsettled` has any record, without building it (asked at every mark)."""
        return bool(self._open)

    # ---- settling unknown outcomes ----

    async def settle_open(
        self, records: AccountRecords, state: AccountState
    ) -> list[tuple[IntentRecord, TopUpOutcome]]:
        """Ask the exchange's records about every intent whose outcome is unknown and due for a look; the
        outcomes to tell, in journal order."""
        told: list[tuple[IntentRecord, TopUpOutcome]] = []
        for item in list(self._open.values()):
            if self.clock() < item.next_check:
                continue
            outcome = await self._settle(records, state, item)
            if outcome is not None:
                told.append((item.record, outcome))
        return told

    async def _settle(self, records: AccountRecords, state: AccountState, item: _Open) -> TopUpOutcome | None:
        record = item.record
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                judgement = await self._judge(records, state, item)
        except (ExchangeError, TimeoutError) as exc:
            item.failures += 1
            item.next_check = self.clock() + min(_RECHECK_S * 2 ** (item.failures - 1), _RECHECK_MAX_S)
            reason = f"the exchange's records cannot be read ({said(exc)}); nothing more is done for this position until they can"
            log.warning(
                "top-up outcome unknown", account=self.account_id, intent=record.intent_key, error=said(exc)
            )
            return await self._tell_unknown(item, reason)
        log.info(
            "top-up settled from the exchange's records",
            account=self.account_id,
            intent=record.intent_key,
            verdict=judgement.verdict,
            detail=judgement.detail,
        )
        topup = topup_of(record, self.limits)
        if judgement.verdict == "done":
            await self._landed(record, record.amount, judgement.detail)
            return TopUpExecuted(topup)
        if judgement.verdict == "failed":
            await self._finish(record, "failed", judgement.detail)
            return TopUpFailed(topup, judgement.detail)
        if judgement.verdict == "gone":
            # Counted against the limits as if it landed: the money may be gone with the position.
            await self._finish(record, "unconfirmed", judgement.detail)
            return await self._tell_unknown(item, judgement.detail)
        item.next_check = self.clock() + _RECHECK_S
        return None

    async def _judge(self, records: AccountRecords, state: AccountState, item: _Open) -> Judgement:
        """The margin history where the venue keeps one, and the leg's fresh margin: either showing the top-up
        landed settles it (a history can lag; a margin can have moved for other reasons); a closed leg is
        settled by the history alone. The exchange's read says whether the leg is open, never the picture,
        which may lag behind a close and a reopening."""
        record = item.record
        now = self.clock()
        changes = await records.margin_changes(int(record.created * 1000) - 60_000)
        by_history = None if changes is None else judge_by_changes(record, changes, now)
        if by_history is not None and (
            by_history.verdict == "done" or record.action == TopUpMethod.TRANSFER.value
        ):
            return by_history
        if record.action == TopUpMethod.TRANSFER.value:
            return judge_by_snapshot(record, state, now)
        leg = await records.leg_margin(record.symbol, Side(record.side))
        if leg is not None and leg.margin is None:
            return by_history or Judgement("open", "the exchange did not give the position's margin")
        if leg is not None and by_history is None and item.contracts_before not in (None, leg.contracts):
            return Judgement(
                "gone",
                f"the position changed size ({item.contracts_before:g} -> {leg.contracts:g} contracts) while the "
                "top-up was out: whether it landed cannot be told",
            )
        margin = None if leg is None else leg.margin
        return judge_by_both(record, by_history, judge_by_margin(record, margin, now), now)

    async def _tell_unknown(self, item: _Open, reason: str) -> TopUpOutcome | None:
        if item.told_unknown:
            return None
        item.told_unknown = True
        if item.record.intent_key in self._open:
            await self.journal.settle_intent(
                item.record.intent_key, "unknown", reason, self.clock(), self.account_id
            )
        return TopUpUnknown(topup_of(item.record, self.limits), reason)

    # ---- a new journal: the last day's top-ups, from the exchange ----

    async def ensure_seeded(self, records: AccountRecords, state: AccountState) -> None:
        """Count the account's top-ups of the last 24 h, once per journal, before the first top-up."""
        now = self.clock()
        if self._seed_note is not None or now < self._seed_retry_at:
            return
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                changes = await records.margin_changes(int((now - DAY_S) * 1000))
        except (ExchangeError, TimeoutError) as exc:
            return self._seed_later(f"its margin history cannot be read: {said(exc)}")
        if changes is not None:
            spent, note = seeded_from_history(self.account_id, changes, state, now), SEED_HISTORY
        else:
            added = margin_added_while_open(state)
            if added is None:
                return self._seed_later("the open positions' margins are not known yet")
            ordered = sorted(added.items(), key=lambda kv: (kv[0][0], kv[0][1].value))
            spent = [
                seeded_record(
                    self.account_id,
                    sym,
                    side.value,
                    TopUpMethod.ADD_MARGIN,
                    amount,
                    state.settle_currency,
                    now,
                    i,
                )
                for i, ((sym, side), amount) in enumerate(ordered)
            ]
            note = SEED_OPEN_LEGS
        try:
            await self.journal.record_seed(self.account_id, spent, note)
        except JournalUnavailable as exc:
            return self._seed_later(f"the journal cannot be written ({exc})")
        for record in spent:
            self.ledger = self.ledger.record(ledger_entry(record))
        self._seed_note = note
        log.info(
            "the last day's top-ups counted",
            account=self.account_id,
            source=note,
            amount=round(sum(r.amount for r in spent), 8),
        )

    def _seed_later(self, problem: str) -> None:
        self._seed_failures += 1
        self._seed_retry_at = self.clock() + min(_RECHECK_S * 2 ** (self._seed_failures - 1), _RECHECK_MAX_S)
        self._seed_problem = problem
        log.warning("the last day's top-ups cannot be counted yet", account=self.account_id, problem=problem)

    def _not_yet(self, topup: TopUp) -> Refused | None:
        """Why a new journal may not start this top-up yet (None: it may)."""
        if self._seed_note is None:
            why = f" ({self._seed_problem})" if self._seed_problem else ""
            return Refused(
                "history",
                "the journal is new for this account: no top-up until the exchange's record of the last 24 h of "
                f"top-ups is counted against the daily limits{why}",
            )
        resume = self.journal.created + DAY_S
        if (
            self._seed_note == SEED_OPEN_LEGS
            and topup.method is TopUpMethod.TRANSFER
            and self.clock() < resume
        ):
            return Refused(
                "history",
                "the journal is new and the exchange keeps no margin history marginguard can read: transfers of "
                "the last 24 h cannot be counted, so transfers start 24 h after the journal was created",
                retry_at=resume,
            )
        return None

    # ---- executing a decision ----

    async def execute(
        self, actuator: MarginActions, records: AccountRecords, topup: TopUp, state: AccountState, settle: str
    ) -> TopUpOutcome | None:
        """Journal, send and settle one decision; the outcome to tell (None: nothing to tell yet)."""
        not_yet = self._not_yet(topup)
        if not_yet is not None:
            return not_yet
        held_back = self.may_send()
        if held_back is not None:
            return Refused(LEASE_HELD_BACK, held_back)
        failure = self.journal.write_failure
        if failure is not None:
            return Refused(
                "journal", f"the journal cannot be written ({failure}): no top-up is started until it can"
            )
        cross = topup.method is TopUpMethod.TRANSFER
        contracts_before: float | None = None
        if cross:
            before = state.wallet_balance
        else:
            try:
                async with asyncio.timeout(READ_TIMEOUT_S):
                    leg = await records.leg_margin(topup.symbol, Side(topup.side))
            except (ExchangeError, TimeoutError) as exc:
                return Refused("margin_unknown", f"the position's margin could not be read: {said(exc)}")
            before = None if leg is None else leg.margin
            if leg is None or before is None:
                return Refused("margin_unknown", "the exchange gives no margin for this position")
            contracts_before = leg.contracts
            pictured = state.legs.get((topup.symbol, Side(topup.side)))
            pictured_margin = pictured.isolated_margin if pictured is not None else None
            if pictured_margin is None or not math.isclose(
                pictured_margin, before, rel_tol=PICTURE_MARGIN_TOLERANCE, abs_tol=1e-6
            ):
                # The decision was made on a picture the exchange no longer matches (a missed liquidation,
                # reopening or flip: the leg on the books is another one). Nothing is sent; the runner asks a
                # snapshot, and the next decision is made on the exchange's own figures.
                return Refused(
                    PICTURE_STALE,
                    f"the exchange holds {before:g} of margin on this position where marginguard's picture has "
                    f"{pictured_margin}: nothing sent until a fresh snapshot agrees",
                )
        now = self.clock()
        record = IntentRecord(
            topup.intent_key,
            self.account_id,
            topup.symbol,
            topup.side,
            topup.method.value,
            settle,
            topup.amount,
            "pending",
            before,
            "",
            now,
            now,
            topup.episode,
        )
        try:
            fresh = await self.journal.begin_intent(record)
        except JournalUnavailable as exc:
            return Refused(
                "journal", f"the journal cannot be written ({exc}): no top-up is started until it can"
            )
        if not fresh:
            log.warning("top-up intent already journaled: not sent again", intent=topup.intent_key)
            return None
        self.ledger = self.ledger.record(topup.pending(self.account_id, now))
        log.info(
            "top-up",
            account=self.account_id,
            intent=topup.intent_key,
            amount=topup.amount,
            method=topup.method.value,
        )
        held_back = self.may_send()  # again: the journal's write took time off the lease
        if held_back is not None:
            await self._finish(record, "failed", f"not sent: {held_back}")
            return Refused(LEASE_HELD_BACK, held_back)
        try:
            if cross:
                result = await actuator.transfer_to_futures(settle, topup.amount, topup.intent_key)
            else:
                result = await actuator.add_isolated_margin(
                    topup.symbol, Side(topup.side), topup.amount, topup.intent_key
                )
        except TransientError as exc:
            # The request may have landed: the exchange's records say, before anything else is decided.
            log.warning(
                "top-up answer lost", account=self.account_id, intent=topup.intent_key, error=said(exc)
            )
            await self.journal.settle_intent(
                record.intent_key, "unknown", f"answer lost: {said(exc)}", self.clock(), self.account_id
            )
            item = self._open[record.intent_key] = _Open(
                with_status(record, "unknown"), contracts_before=contracts_before
            )
            return await self._settle(records, state, item)
        except ExchangeError as exc:
            await self._finish(record, "failed", said(exc))
            return TopUpFailed(topup, said(exc))
        if result.refused:
            await self._finish(record, "failed", result.refused)
            return TopUpFailed(topup, result.refused)
        if result.dry_run:
            await self._finish(record, "dry_run", f"would send {result.amount}")
            return TopUpExecuted(topup, dry_run=True)
        await self._landed(
            record, result.amount if result.amount is not None else topup.amount, f"sent {result.amount}"
        )
        return TopUpExecuted(topup)

    # ---- outcomes ----

    async def _landed(self, record: IntentRecord, sent: float, detail: str) -> None:
        """On the exchange's books now: counted from this moment, and its leg held until the picture shows it."""
        now = self.clock()
        self._open.pop(record.intent_key, None)
        await self.journal.settle_intent(record.intent_key, "done", detail, now, self.account_id)
        entry = replace(
            ledger_entry(with_status(record, "done")),
            ts=now,
            expected=expected_after(record, sent),
            landed_ms=int(now * 1000),
        )
        self.ledger = self.ledger.record(entry)
        self.metrics.topups.labels(self.account_id, "done").inc()

    async def _finish(self, record: IntentRecord, status: str, detail: str) -> None:
        now = self.clock()
        self._open.pop(record.intent_key, None)
        await self.journal.settle_intent(record.intent_key, status, detail, now, self.account_id)
        self.ledger = self.ledger.record(replace(ledger_entry(with_status(record, status)), ts=now))
        self.metrics.topups.labels(self.account_id, status).inc()

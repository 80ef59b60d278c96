"""The top-up part of an account's runner (`AccountRunner`, in `runner.py`): decide on the picture as it is at the
moment of deciding, execute through the account's `TopUpExecutor`, tell the outcome."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import structlog

from daemon.app.executor import LEASE_HELD_BACK, PICTURE_STALE, TopUpExecutor
from daemon.app.leg_endings import LegEndings
from daemon.core.alerts import Alert
from daemon.core.policy import risk_identity
from daemon.core.policy_memory import PolicyMemory
from daemon.core.policy_rules import Silence
from daemon.core.policy_topup import TopUpOutcome, announce_topup
from daemon.core.topup import Refused, TopUp, TopUpDecision, decide_topup
from daemon.core.types import MarginMode, Side
from daemon.core.view import LegView
from daemon.exchanges.connector import Connector
from daemon.exchanges.errors import ExchangeError, said
from daemon.exchanges.gateway import ExchangeGateway
from daemon.exchanges.records import AccountRecords

if TYPE_CHECKING:
    from daemon.app.runner import RunnerConfig

log = structlog.get_logger("marginguard.runner")

# A top-up's margin is read back by a snapshot this soon after it was sent (its push may be lost).
TOPUP_RECONCILE_S = 1.0
# Refusals not worth a message: a cooldown follows marginguard's own top-up (the position's risk alerts go on).
QUIET_REFUSALS = frozenset({"cooldown", PICTURE_STALE, LEASE_HELD_BACK})


class TopUpSteps:
    """Stubs of what `AccountRunner` gives."""

    config: RunnerConfig
    account_id: str
    connector: Connector | None
    executor: TopUpExecutor
    endings: LegEndings
    clock: Callable[[], float]
    _memory: PolicyMemory

    def _records(self) -> AccountRecords:
        raise NotImplementedError

    async def _emit(self, alerts: Sequence[Alert], now: float) -> None:
        raise NotImplementedError

    # ---- top-ups ----

    async def _consider_topup(
        self, gateway: ExchangeGateway, key: tuple[str, Side], silences: list[Silence]
    ) -> None:
        """Decide a top-up for one leg on the picture as it is at the moment of deciding: the step's awaits
        (records, settlements, the balance read) may take seconds under retries, and a picture read before them
        may show a leg that has since been liquidated, reopened or resized (money moved on a leg the exchange
        had far from liquidation)."""
        assert self.config.limits is not None and self.connector is not None
        connector = self.connector
        symbol, side = key
        episode = self._memory.episode(risk_identity(self.account_id, symbol, side))
        limits = self.config.limits

        def decide_with(available: float | None) -> tuple[LegView | None, TopUpDecision | None]:
            state, view = connector.state, connector.view
            leg = view.leg(symbol, side.value)
            if leg is None or key in self.endings.asking:
                return None, None  # gone meanwhile: the policy tells how it ended
            decision = decide_topup(
                leg,
                view,
                limits,
                self.executor.ledger,
                self.clock(),
                state=state,
                available_balance=available,
                episode=episode,
            )
            return leg, decision

        leg, decision = decide_with(None)
        if leg is not None and isinstance(decision, Refused) and decision.code == "balance_unknown":
            # Every other rule passed: only now is the balance worth a REST call; then decide again on the
            # picture as it is after that read.
            leg, decision = decide_with(await self._available_balance(gateway, leg))
        if leg is None or decision is None:
            return
        state = connector.state
        if isinstance(decision, TopUp):
            settle = self.connector.quirks.settle if self.connector else "USDT"
            outcome = await self.executor.execute(gateway, self._records(), decision, state, settle)
            await self._announce(leg, outcome, silences)
            self._refresh_picture()
        elif isinstance(decision, Refused) and decision.code not in QUIET_REFUSALS:
            await self._announce(leg, decision, silences)

    def _refresh_picture(self) -> None:
        """After margin moved (or may have): a snapshot soon, rather than waiting for the push that says so. A
        push lost to a stall or a reconnect would leave the leg's margin and liquidation price wrong, and the
        leg held from new decisions, until the periodic reconciliation."""
        if self.connector is not None:
            self.connector.feed.request_reconcile(after_s=TOPUP_RECONCILE_S)

    async def _available_balance(self, gateway: ExchangeGateway, leg: LegView) -> float | None:
        """The settle currency free to top up from (the transfer's source wallet for a cross leg); None when
        it cannot be read, which refuses the top-up until the next tick asks again."""
        wallet = None
        if (
            leg.facts.margin_mode is MarginMode.CROSS
            and self.config.limits
            and self.config.limits.cross_transfer_from
        ):
            wallet = self.config.limits.cross_transfer_from
        try:
            return await gateway.free_balance(gateway.quirks.settle, wallet)
        except ExchangeError as exc:
            log.warning(
                "balance unavailable", account=self.account_id, error=type(exc).__name__, detail=said(exc)
            )
            return None

    async def _announce(
        self, leg: LegView | None, outcome: TopUpOutcome | None, silences: list[Silence]
    ) -> None:
        if outcome is None or leg is None:  # a gone leg: its liquidation or close is told by the policy
            return
        if isinstance(outcome, Refused) and outcome.code in QUIET_REFUSALS:
            log.info("top-up not sent", account=self.account_id, symbol=leg.key[0], reason=outcome.reason)
            return
        now = self.clock()
        self._memory, alert = announce_topup(
            self._memory,
            leg,
            outcome,
            self.config.rules,
            silences,
            now,
            account=self.account_id,
            exchange=self.config.account.exchange,
            currency=self.connector.quirks.settle if self.connector else "USDT",
        )
        if alert is not None:
            await self._emit([alert], now)

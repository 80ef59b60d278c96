"""The document /status serves: each account's legs with the model's figures and their last hour, its streams,
silences and pending top-ups, and the latest alerts. `marginguard status` and the status page read it.

Read-only and cheap enough for each open status page to ask every second: everything comes from memory but the
silences and the latest alerts, two small journal reads. Alert texts are redacted again on the way out (an entry
journaled before a secret was configured may hold it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from daemon.app.runner import AccountRunner
from daemon.app.timefmt import utc
from daemon.core.view import LegView
from daemon.store import JournalPort, JournalUnavailable

LATEST_ALERTS = 20


async def status_document(
    runners: Sequence[AccountRunner], journal: JournalPort, redact: Callable[[Any], Any], now: float
) -> dict[str, Any]:
    try:
        silences = await journal.active_silences(now)
        history = await journal.history(LATEST_ALERTS)
        pending: int | None = await journal.pending_deliveries()
        unreadable = None
    except JournalUnavailable as exc:
        # The positions come from the exchanges, not the journal: they are shown whatever the journal's state.
        silences, history, pending, unreadable = [], [], None, str(exc) or "the journal cannot be read"
    accounts: dict[str, Any] = {}
    for runner in runners:
        view = runner.view
        ready, reason = runner.readiness()
        legs = [_leg(leg, runner) for leg in (view.legs if view is not None else ())]
        state = runner.connector.state if runner.connector is not None else None
        thresholds = runner.config.rules.resolve(runner.account_id, None)
        accounts[runner.account_id] = {
            "ready": ready,
            "state": reason,
            "legs": legs,
            # The cross wallet as the daemon knows it (None: not known yet), for checks against the exchange.
            "wallet_balance": None if state is None else state.wallet_balance,
            "thresholds": {
                "warning_distance": thresholds.warning_distance,
                "critical_distance": thresholds.critical_distance,
            },
            "streams": {}
            if state is None
            else {name: h.freshness.value for name, h in sorted(state.health.items())},
            "silences": [
                f"#{s.id} {s.symbol or '(all symbols)'} until {utc(s.until)}"
                + (f" ({s.reason})" if s.reason else "")
                for s in silences
                if s.account == runner.account_id
            ],
            "pending_topups": [
                f"{r.action} {r.amount:g} {r.asset} to {r.symbol} {r.side}: {r.status}"
                for r in runner.executor.unsettled
            ],
        }
    latest = [
        {
            **{
                key: entry.get(key)
                for key in ("ts", "account", "kind", "severity", "resolved", "summary", "action")
            },
            # The message's incident chart on this server, when one was drawn (critical and liquidated alerts).
            "chart": f"/incident/{entry['id']}.png" if entry.get("chart") else None,
        }
        for entry in history
    ]
    return {
        "accounts": accounts,
        "outbox_pending": pending,
        "alerts": redact(latest),
        "journal_unreadable": unreadable,  # None, or why silences, alerts and the outbox are not shown
    }


def _leg(leg: LegView, runner: AccountRunner) -> dict[str, Any]:
    risk, size = leg.risk, leg.size
    symbol, side = leg.key[0], leg.key[1].value
    return {
        "symbol": symbol,
        "side": side,
        "contracts": leg.facts.contracts,
        "quantity": None if size is None else size.quantity,
        "notional": None if size is None else size.notional,
        "unrealized_pnl": None if size is None else size.unrealized_pnl,
        "entry_price": leg.facts.entry_price,
        "margin_mode": None if leg.facts.margin_mode is None else leg.facts.margin_mode.value,
        "leverage": leg.facts.leverage,
        "isolated_margin": leg.facts.isolated_margin,
        "mark_price": leg.mark_price,
        "liquidation_price": None if risk is None else risk.liquidation_price,
        "exchange_liquidation_price": leg.facts.exchange_liquidation_price,
        "distance_to_liquidation": None if risk is None else risk.distance_to_liquidation,
        "margin_ratio": None if risk is None else risk.margin_ratio,
        "unknown_because": leg.unknown_because,
        "history": runner.distance_history.series(symbol, side),
    }

"""The position ledger judges a one-way flip as the exchange reports it, not as a missed change.

Found by the market-path harness (binance-1: a one-way BTC short flipped into a long, then back): ccxt caches
position rows by symbol and side, so after a flip its cache still holds the old side's row. The ledger re-applied
that superseded row (its timestamp equalled the last one taken) and never learnt that the old side was flat, so
the next snapshots disagreed with what the stream had told twice running: the stream was declared deaf, reconnected,
and a stale-data alert went out for a stream that had missed nothing.
"""

from __future__ import annotations

from typing import Any

from daemon.core.types import Side
from daemon.exchanges.parse import facts_from_positions
from daemon.exchanges.reconcile import PositionLedger, Verdict

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"


def row(symbol: str, side: str, contracts: float, ts: int, hedged: bool = False) -> dict[str, Any]:
    """A position row as ccxt's Binance `parse_ws_position` makes it (one-way rows say `hedged` False)."""
    return {
        "symbol": symbol,
        "side": side,
        "contracts": contracts,
        "entryPrice": 65_000.0 if contracts else 0.0,
        "hedged": hedged,
        "timestamp": ts,
        "info": {},
    }


class FakeClient:
    """What the ledger reads of a ccxt client: its position cache, one list per account type (as Binance)."""

    def __init__(self) -> None:
        self.positions: dict[str, list[dict[str, Any]]] = {"linear": []}

    def receive(self, *rows: dict[str, Any]) -> list[dict[str, Any]]:
        """ccxt's cache after a push: one entry per symbol and side, the newest replacing the older."""
        cache = self.positions["linear"]
        for new in rows:
            cache[:] = [r for r in cache if (r["symbol"], r["side"]) != (new["symbol"], new["side"])]
            cache.append(new)
        return list(rows)


def push(
    ledger: PositionLedger, client: FakeClient, returned: list[dict[str, Any]]
) -> dict[tuple[str, Side], float]:
    """The feed's path for a push: the rows it applies, recorded in the ledger; the legs they leave open."""
    facts = facts_from_positions(ledger.with_coalesced(client, returned))
    ledger.pushed(facts)
    return dict(ledger.held)


def snapshot(ledger: PositionLedger, legs: dict[tuple[str, Side], float]) -> Verdict:
    facts = facts_from_positions(row(s, side.value, n, 0) for (s, side), n in legs.items())
    ledger.snapshot_taken(facts)
    return ledger.judge()


def test_a_one_way_flip_closes_the_old_side_and_the_stream_stays_trusted() -> None:
    ledger, client = PositionLedger(), FakeClient()
    assert snapshot(ledger, {}) is Verdict.AGREES  # the first snapshot is the baseline
    push(ledger, client, client.receive(row(BTC, "short", 0.2, 1_000)))
    assert snapshot(ledger, {(BTC, Side.SHORT): 0.2}) is Verdict.AGREES

    # The flip: Binance sends one row with the new sign; ccxt keeps the short row in its cache.
    held = push(ledger, client, client.receive(row(BTC, "long", 0.181, 2_000)))
    assert held == {(BTC, Side.LONG): 0.181}
    truth = {(BTC, Side.LONG): 0.181}
    assert snapshot(ledger, truth) is Verdict.AGREES
    assert snapshot(ledger, truth) is Verdict.AGREES

    # ... and back: the long row now lingers in ccxt's cache.
    held = push(ledger, client, client.receive(row(BTC, "short", 0.009, 3_000)))
    assert held == {(BTC, Side.SHORT): 0.009}
    truth = {(BTC, Side.SHORT): 0.009}
    assert snapshot(ledger, truth) is Verdict.AGREES
    assert snapshot(ledger, truth) is Verdict.AGREES


def test_a_row_already_applied_is_not_applied_again_from_the_cache() -> None:
    ledger, client = PositionLedger(), FakeClient()
    snapshot(ledger, {})
    first = push(ledger, client, client.receive(row(BTC, "short", 0.2, 1_000)))
    assert first == {(BTC, Side.SHORT): 0.2}
    # Another symbol's push: the BTC row cached at the same instant was taken already.
    rows = ledger.with_coalesced(client, client.receive(row(ETH, "long", 1.0, 1_000)))
    assert [(r["symbol"], r["side"], r["contracts"]) for r in rows] == [
        (ETH, "long", 1.0),
        (ETH, "short", 0.0),
    ]


def test_a_row_ccxt_cached_without_handing_it_over_is_taken_and_no_closed_leg_reopens() -> None:
    ledger, client = PositionLedger(), FakeClient()
    snapshot(ledger, {})
    push(ledger, client, client.receive(row(BTC, "long", 0.2, 1_000), row(ETH, "long", 1.0, 1_000)))
    # Two legs liquidated in one instant: the watch hands over the first message, the second is only cached.
    client.receive(row(ETH, "both", 0.0, 2_000))
    held = push(ledger, client, client.receive(row(BTC, "both", 0.0, 2_000)))
    assert held == {}


def test_hedge_legs_live_side_by_side() -> None:
    ledger, client = PositionLedger(), FakeClient()
    snapshot(ledger, {})
    push(ledger, client, client.receive(row(BTC, "long", 0.2, 1_000, hedged=True)))
    held = push(ledger, client, client.receive(row(BTC, "short", 0.1, 2_000, hedged=True)))
    assert held == {(BTC, Side.LONG): 0.2, (BTC, Side.SHORT): 0.1}
    truth = {(BTC, Side.LONG): 0.2, (BTC, Side.SHORT): 0.1}
    assert snapshot(ledger, truth) is Verdict.AGREES


def test_a_change_the_stream_never_told_is_still_a_deaf_stream() -> None:
    ledger, client = PositionLedger(), FakeClient()
    snapshot(ledger, {})
    push(ledger, client, client.receive(row(BTC, "short", 0.2, 1_000)))
    assert snapshot(ledger, {(BTC, Side.SHORT): 0.2}) is Verdict.AGREES
    flipped = {(BTC, Side.LONG): 0.181}  # the exchange flipped the leg; no push arrived
    assert snapshot(ledger, flipped) is Verdict.SUSPECT
    assert snapshot(ledger, flipped) is Verdict.DEAF
    assert ledger.missed == f"{BTC} long, {BTC} short"

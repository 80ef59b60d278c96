"""The invariants of issue 8, checked after every quiet period and at the end of a path.

1. picture: the daemon's legs, sizes, entries, wallet, isolated margins and marks equal the oracle's (once
   the faults are cleared, within `CONVERGE_S`; after a stall, which may swallow a position push, within
   the daemon's reconciliation period), and its streams are fresh again (`ready`).
2. liquidation_price: the daemon's liquidation price, whenever it is not null, is the oracle's within
   `LIQUIDATION_REL_TOL`.
3. liquidation_told: every liquidation the oracle performed is reported as a liquidation, not only as an
   all-clear.
4. topup: every margin move the exchange made matches one top-up journaled as done (each decision executed
   at most once, and a landed one never told failed), was asked for while the oracle's distance was at or
   below the trigger, and stays within the per-action and daily limits; every done top-up is announced.
5. delivery: every journaled alert reaches the receiver, once per idempotency key (a repeat of the same
   message across a SIGKILL is the documented at-least-once edge and is allowed), and no key names two messages.
6. stale: no stale-data alert unless a stream was silent beyond `stale_after_s`; a silence beyond it raises
   one alert per stream identity.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from daemon.exchanges.feed_settings import FeedSettings
from tests.paths.generator import MarketPath
from tests.paths.picture import differences, unified
from tests.paths.report import Violation
from tests.paths.world import ACCOUNT, MarginMove, World

CONVERGE_S = 25.0  # a reconnect, a resubscription and a reconciliation snapshot fit well inside
# A stall withholds frames on open sockets: a position push it swallowed shows nothing amiss to a stream that
# pushes only on change (and a stall shorter than `stale_after_s` forces no reconnect), so the daemon's periodic
# reconciliation is what finds the change.
AFTER_STALL_S = FeedSettings().reconcile_every_s + 10.0
# How long a request held by the late-answer fault may leave a stream without what it needs: the client's own
# timeout (ccxt: 10 s) and the retry after it.
LATE_ANSWER_BLIND_S = 15.0
# The Retry-After of a 429 burst: a stream whose reconnect is refused so waits it out before asking again.
RATE_LIMIT_RETRY_AFTER_S = 3.0
TOLD_S = 15.0  # how long a liquidation or a delivery may take to reach the receiver
POLL_S = 0.25
DISTANCE_SLACK = 0.001  # the oracle's distance is sampled every 100 ms; the daemon decides between samples
SINK = "audit-hook"


@dataclass
class Checker:
    path: MarketPath
    world: World
    violations: list[Violation]
    step_index: int = 0
    _moves_checked: int = 0
    _liquidations_checked: int = 0
    _seen: set[tuple[str, str]] = field(default_factory=set)
    _checked_up_to: int = -1  # the last step before the previous quiet check

    def fail(self, invariant: str, detail: str, step: int | None = None) -> None:
        key = (invariant, detail)
        if key not in self._seen:  # one report per distinct finding
            self._seen.add(key)
            self.violations.append(Violation(invariant, self.step_index if step is None else step, detail))

    def _patience(self, seconds: float) -> float:
        """Once a path has failed, later checks wait less: they only look for further distinct findings."""
        return seconds if not self.violations else min(seconds, 5.0)

    # ---- after each quiet period ----

    async def quiet(self, seconds: float) -> None:
        faults = self.world.sim.faults
        for kind in list(faults.active()):
            if kind != "http_timeout":  # a held request still lands after its client gave up
                faults.clear(kind)
        await asyncio.sleep(seconds)
        await self._converge()
        await self._liquidations_told()
        await self._outbox_drained()
        self._topups_so_far()

    async def _converge(self) -> None:
        world = self.world
        since = [text for _ts, index, text in world.recorder.timeline if index > self._checked_up_to]
        self._checked_up_to = self.step_index
        stalled = any(text.startswith("stall(") for text in since)
        deadline = time.monotonic() + self._patience(AFTER_STALL_S if stalled else CONVERGE_S)
        while True:
            found = differences(await world.status(), ACCOUNT, world.engine, world.api_key)
            if not found:
                return
            if time.monotonic() > deadline:
                for invariant, detail in found:
                    self.fail(invariant, detail)
                return
            await asyncio.sleep(POLL_S)

    def _webhook(self) -> list[dict[str, Any]]:
        return [r.json for r in self.world.receiver.received("webhook")]

    async def _liquidations_told(self) -> None:
        world = self.world
        records = [r for r in world.engine.liquidations if r["api_key"] == world.api_key]
        deadline = time.monotonic() + self._patience(TOLD_S)
        while True:
            told: dict[tuple[str, str], int] = defaultdict(int)
            for doc in self._webhook():
                if doc["kind"] == "liquidated" and not doc["resolved"]:
                    told[(doc["symbol"], doc["side"])] += 1
            needed: dict[tuple[str, str], int] = defaultdict(int)
            for record in records:
                needed[(unified(world.engine, record["symbol"]), record["side"])] += 1
            missing = {leg: n - told[leg] for leg, n in needed.items() if told[leg] < n}
            if not missing:
                return
            if time.monotonic() > deadline:
                for (symbol, side), n in missing.items():
                    said = [
                        f"{d['kind']}{'/resolved' if d['resolved'] else ''}"
                        for d in self._webhook()
                        if d["symbol"] == symbol and d["side"] == side
                    ]
                    self.fail(
                        "liquidation_told",
                        f"{n} liquidation(s) of {symbol} {side} not told as a liquidation; the leg's alerts: {said}",
                    )
                return
            await asyncio.sleep(POLL_S)

    async def _outbox_drained(self) -> None:
        deadline = time.monotonic() + TOLD_S
        while time.monotonic() < deadline:
            status = await self.world.status()
            if status is not None and status.get("outbox_pending") == 0:
                return
            await asyncio.sleep(POLL_S)
        self.fail("delivery", "the outbox did not drain with the receiver up and no fault active")

    def _topups_so_far(self) -> None:
        world, settings = self.world, self.world.settings
        moves = world.recorder.margin_moves
        for move in moves[self._moves_checked :]:
            self._check_move(move)
        self._moves_checked = len(moves)
        per_leg: dict[tuple[str, str], float] = defaultdict(float)
        for move in moves:
            per_leg[(move.symbol, move.side)] += move.amount
        for (symbol, side), total in per_leg.items():
            if total > settings.max_per_position_per_day + 1e-6:
                self.fail(
                    "topup",
                    f"{total:.4f} moved into {symbol} {side} in a day, cap {settings.max_per_position_per_day}",
                )
        total = sum(per_leg.values())
        if total > settings.max_per_account_per_day + 1e-6:
            self.fail(
                "topup", f"{total:.4f} moved in a day on the account, cap {settings.max_per_account_per_day}"
            )

    def _check_move(self, move: MarginMove) -> None:
        world, settings = self.world, self.world.settings
        if move.amount > settings.max_per_action + 1e-6:
            self.fail(
                "topup",
                f"one top-up of {move.amount:.4f} on {move.symbol} {move.side}, cap {settings.max_per_action}",
            )
        path = self._add_margin_path()
        asked = [e["ts"] for e in world.engine.request_log if e["path"] == path and e["ts"] <= move.ts]
        since = (asked[-1] if asked else move.ts) - 2.0
        nearest = world.recorder.min_distance(move.symbol, move.side, since, move.ts)
        if nearest is None or nearest > settings.trigger_distance + DISTANCE_SLACK:
            self.fail(
                "topup",
                f"{move.amount:.4f} added to {move.symbol} {move.side} while the oracle's distance was "
                f"{nearest} (trigger {settings.trigger_distance}); steps before: "
                f"{world.recorder.steps_between(move.ts - 15.0, move.ts)}",
            )

    def _add_margin_path(self) -> str:
        from tests.paths.generator import ADD_MARGIN_PATHS

        return ADD_MARGIN_PATHS[self.path.dialect]

    # ---- at the end ----

    async def final(self) -> None:
        self.step_index = -1
        journal = self._journal()
        self._deliveries(journal["alerts"])
        self._topup_accounting(journal["intents"])
        self._stale()

    def _journal(self) -> dict[str, list[tuple[Any, ...]]]:
        uri = f"file:{self.world.journal_path}?mode=ro"
        with sqlite3.connect(uri, uri=True, timeout=10) as db:
            alerts = db.execute(
                "SELECT a.key, a.sequence, a.kind, d.status FROM alerts a JOIN deliveries d ON d.alert_id = a.id "
                "WHERE d.sink = ?",
                (SINK,),
            ).fetchall()
            intents = db.execute(
                "SELECT intent_key, symbol, side, amount, status FROM topup_intents WHERE action = 'add_margin'"
            ).fetchall()
        return {"alerts": alerts, "intents": intents}

    def _deliveries(self, journaled: list[tuple[Any, ...]]) -> None:
        received = self.world.receiver.received("webhook")
        by_key: dict[str, list[Any]] = defaultdict(list)
        for record in received:
            by_key[record.json["idempotency_key"]].append(record)
        got = {(r.json["key"], r.json["sequence"]) for r in received}
        for key, sequence, kind, status in journaled:
            if status != "sent":
                self.fail("delivery", f"journaled {kind} alert {key}#{sequence} left {status}")
            elif (key, sequence) not in got:
                self.fail("delivery", f"journaled {kind} alert {key}#{sequence} marked sent, never received")
        kills = self.world.recorder.kill_times
        for key, records in by_key.items():
            if len({r.body for r in records}) > 1:
                self.fail(
                    "delivery", f"idempotency key {key} names {len({r.body for r in records})} messages"
                )
            elif len(records) > 1 and not any(records[0].at <= k <= records[-1].at for k in kills):
                self.fail("delivery", f"{key} delivered {len(records)} times without a crash in between")

    def _topup_accounting(self, intents: list[tuple[Any, ...]]) -> None:
        engine = self.world.engine
        unmatched = list(self.world.recorder.margin_moves)
        done = [i for i in intents if i[4] == "done"]
        # "unconfirmed": the leg went before the outcome could be read; told as unknown, counted as landed.
        landed = done + [i for i in intents if i[4] == "unconfirmed"]
        without_move = []
        for intent in landed:
            _, symbol, side, amount, _ = intent
            match = next(
                (
                    m
                    for m in unmatched
                    if unified(engine, m.symbol) == symbol
                    and m.side == side
                    and abs(m.amount - amount) <= 1e-3
                ),
                None,
            )
            if match is None:
                without_move.append(intent)
            else:
                unmatched.remove(match)
        for intent in without_move:
            if intent[4] != "done":  # an unconfirmed one may not have landed: that is what it says
                continue
            self.fail(
                "topup",
                f"top-up {intent[0]} journaled done ({intent[3]}) but the exchange moved nothing like it",
            )
        for move in unmatched:
            statuses = [
                (i[0], i[3], i[4])
                for i in intents
                if i[1] == unified(engine, move.symbol) and i[2] == move.side
            ]
            self.fail(
                "topup",
                f"{move.amount:.6f} moved into {move.symbol} {move.side} matches no top-up journaled as landed "
                f"(executed twice, or landed and told otherwise); intents: {statuses}",
            )
        announced = {
            d["idempotency_key"] for d in self._webhook() if d["kind"] == "topup_done" and not d["resolved"]
        }
        if len(announced) != len(done):
            self.fail("topup", f"{len(done)} top-ups done, {len(announced)} announced as done")

    def _still_firing(self, at: float) -> bool:
        """Some stale-data alert fired before `at` and was not resolved by then: an outage that began before
        a stall (a restart, say) and went on through it is one outage, told once."""
        stale = sorted((d for d in self._webhook() if d["kind"] == "stale_data"), key=lambda d: d["ts"])
        firing: set[str] = set()
        for doc in stale:
            if doc["ts"] > at:
                break
            (firing.discard if doc["resolved"] else firing.add)(doc["key"])
        return bool(firing)

    def _stale(self) -> None:
        stale_after = self.world.settings.stale_after_s
        silences = self.world.recorder.silences
        alerts = [d for d in self._webhook() if d["kind"] == "stale_data" and not d["resolved"]]
        for doc in alerts:
            # A request held past the client's timeout blinds whatever needed its answer: the listen key a
            # reconnect asks for, say (held from when the exchange took it until the client gave up on it); one
            # refused with a rate limit does so until its Retry-After has passed. The silence it prolongs may
            # have begun at a drop or garbled frame just before (the reason the reconnect needed it).
            blinding = {"http_timeout": LATE_ANSWER_BLIND_S, "http_status:429": RATE_LIMIT_RETRY_AFTER_S}
            recorder = self.world.recorder
            held = [
                (
                    min(entry["ts"], recorder.first_cut(entry["ts"], stale_after) or entry["ts"]),
                    entry["ts"] + blinding[entry["fault"]] + stale_after,
                )
                for entry in self.world.engine.request_log
                if entry.get("fault") in blinding
            ]
            windows = [*silences, *self.world.recorder.possible_silences, *held]
            explained = any(start + stale_after - 1.0 <= doc["ts"] <= end + 5.0 for start, end in windows)
            if not explained:
                self.fail(
                    "stale",
                    f"stale-data alert with no silence beyond {stale_after} s: {doc['summary']} "
                    f"after steps {self.world.recorder.steps_between(doc['ts'] - 2 * stale_after, doc['ts'])}",
                )
        for start, end in silences:
            inside = [d for d in alerts if start + stale_after - 1.0 <= d["ts"] <= end + 5.0]
            if not inside and not self._still_firing(start + stale_after - 1.0):
                self.fail(
                    "stale",
                    f"a silence of {end - start:.1f} s (> {stale_after} s) raised no stale-data alert",
                )
            per_identity: dict[str, int] = defaultdict(int)
            for doc in inside:
                per_identity[doc["key"]] += 1
            for key, n in per_identity.items():
                if n > 1:
                    self.fail("stale", f"one silence raised {n} stale-data alerts for {key}")

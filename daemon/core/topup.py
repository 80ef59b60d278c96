"""The top-up policy: whether to add margin to a position now, how much, and under which idempotency key (pure).

When a leg's distance to liquidation is at or inside its trigger, the planner sizes the amount that restores the
target distance; limits then bound it. An isolated leg gets margin added to it; a cross leg gets a transfer into
the futures wallet, and only when a source wallet is configured (otherwise marginguard only alerts).

The intent key names the decision, not the moment: account, symbol, side, the leg's firing episode and the
attempt within it. A restart that recomputes the same decision gets the same key, so the journal can refuse a
second intent; an intent still pending in the ledger is never decided again.

A top-up counts from the moment it is known to have landed (its cooldown starts then), and nothing more is
decided for its leg until the account's picture shows it: a slow exchange whose pushes lag behind its answers
would otherwise have the same margin added again on the old figures.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from daemon.core.planner import distance_after_adding, plan_top_up
from daemon.core.policy_text import number, percent
from daemon.core.state import AccountState, LegKey
from daemon.core.types import Account, MarginMode, Position, Side

# `model_position` is the view's own translation from facts to a model position: reusing it plans a top-up on exactly
# the figures the alert policy judged.
from daemon.core.view import AccountView, LegView, model_position

DAY_S = 86_400.0
# A REST snapshot finished this long after a top-up landed was asked after it (its reads are each bounded by the
# client's timeout), so it shows the top-up whatever its figures say.
SNAPSHOT_AFTER_LANDING_MS = 30_000


@dataclass(frozen=True, slots=True)
class TopUpLimits:
    """How far marginguard may go on its own. Amounts are in the settle currency; "per day" is the last 24 h.

    `min_free_balance` is what must stay available in the wallet the margin comes from. `max_attempts` counts
    executed and failed top-ups within one firing episode. `cross_transfer_from` names the wallet a cross top-up
    is transferred from (e.g. "spot", "funding"); None means cross legs are only alerted about.
    """

    trigger_distance: float
    target_distance: float
    max_per_action: float
    max_per_account_per_day: float
    max_per_position_per_day: float | None = None  # None: only the account's daily ceiling applies
    min_free_balance: float = 0.0
    cooldown_s: float = 300.0
    max_attempts: int = 3
    min_amount: float = 0.0  # an exchange's smallest accepted amount: below it, refuse rather than fail
    cross_transfer_from: str | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.trigger_distance < self.target_distance:
            raise ValueError("need 0 < trigger_distance < target_distance")
        amounts = ("max_per_action", "max_per_position_per_day", "max_per_account_per_day")
        if any(getattr(self, name) is not None and getattr(self, name) <= 0.0 for name in amounts):
            raise ValueError(f"must be positive: {', '.join(amounts)}")
        if self.min_free_balance < 0.0 or self.cooldown_s < 0.0 or self.min_amount < 0.0:
            raise ValueError("min_free_balance, cooldown_s and min_amount must not be negative")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")


class TopUpMethod(enum.Enum):
    ADD_MARGIN = "add_margin"  # to an isolated leg
    TRANSFER = "transfer"  # into the futures wallet, for cross legs


class EntryStatus(enum.Enum):
    PENDING = "pending"  # journaled, not known to have reached the exchange's books (or not known not to)
    EXECUTED = "executed"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One top-up intent and its outcome.

    `ts` is when the decision was taken while it is pending, and when it was known to have landed once executed
    (the cooldown counts from there). `expected` is the leg's isolated margin (the futures wallet, for a transfer)
    at or above which the account's picture shows this top-up; None when there is nothing to wait for. `landed_ms`
    is when it was known to have landed. A `seeded` entry was read from the exchange's own history (a new journal):
    it counts against the daily limits only, never as an attempt or a cooldown of marginguard's.
    """

    intent_key: str
    account: str
    symbol: str
    side: str
    amount: float
    ts: float
    status: EntryStatus
    episode: int
    method: TopUpMethod = TopUpMethod.ADD_MARGIN
    expected: float | None = None
    landed_ms: int | None = None
    seeded: bool = False

    def is_leg(self, account: str, symbol: str, side: str) -> bool:
        return (self.account, self.symbol, self.side) == (account, symbol, side)

    def shown_by(self, state: AccountState) -> bool:
        """Whether the account's picture shows this executed top-up (True when there is nothing to show)."""
        if self.status is not EntryStatus.EXECUTED or self.expected is None:
            return True
        snapshot, landed = state.last_snapshot_ms, self.landed_ms
        if landed is not None and snapshot is not None and snapshot >= landed + SNAPSHOT_AFTER_LANDING_MS:
            return True
        if self.method is TopUpMethod.TRANSFER:
            value = state.wallet_balance
        else:
            facts = state.legs.get((self.symbol, Side(self.side)))
            if facts is None:
                return True  # the leg is gone: nothing is decided for it anyway
            value = facts.isolated_margin
        # The expected figure is a float sum: its last bits are noise.
        return value is not None and value >= self.expected - 1e-9 * max(1.0, abs(self.expected))


@dataclass(frozen=True, slots=True)
class TopUpLedger:
    """Past top-up intents and their outcome (the shell loads it from its journal)."""

    entries: tuple[LedgerEntry, ...] = ()

    def record(self, entry: LedgerEntry) -> TopUpLedger:
        """The ledger with `entry` added, or replacing the entry of the same intent key (its new status)."""
        kept = tuple(e for e in self.entries if e.intent_key != entry.intent_key)
        return TopUpLedger((*kept, entry))

    def spent_since(
        self, since: float, account: str, symbol: str | None = None, side: str | None = None
    ) -> float:
        """Executed and pending amounts since `since` (a pending amount may have landed)."""
        return sum(
            e.amount
            for e in self.entries
            if e.ts >= since
            and e.status is not EntryStatus.FAILED
            and e.account == account
            and (symbol is None or (e.symbol, e.side) == (symbol, side))
        )


@dataclass(frozen=True, slots=True)
class TopUp:
    """Add `amount` now. `needed` is what restores `target` in full; `capped_by` says which limit cut it."""

    amount: float
    symbol: str
    side: str
    target: float
    intent_key: str
    method: TopUpMethod
    source: str | None
    needed: float
    capped_by: str | None
    distance_after: float | None
    episode: int
    attempt: int

    def pending(self, account: str, now: float) -> LedgerEntry:
        """The ledger entry to journal before executing."""
        return LedgerEntry(
            self.intent_key,
            account,
            self.symbol,
            self.side,
            self.amount,
            now,
            EntryStatus.PENDING,
            self.episode,
            self.method,
        )


@dataclass(frozen=True, slots=True)
class Refused:
    """A top-up is due but not allowed. `code` names the rule that refused (stable, for deduplication: the
    reason's figures move with the market); `retry_at` (unix s) is when waiting would lift the refusal."""

    code: str
    reason: str
    retry_at: float | None = None


@dataclass(frozen=True, slots=True)
class NotNeeded:
    reason: str


TopUpDecision = TopUp | Refused | NotNeeded


def intent_key(account: str, symbol: str, side: str, episode: int, attempt: int) -> str:
    return f"topup|{account}|{symbol}|{side}|e{episode}|a{attempt}"


def decide_topup(
    leg: LegView,
    account_view: AccountView,
    limits: TopUpLimits,
    ledger: TopUpLedger,
    now: float,
    *,
    state: AccountState,
    available_balance: float | None,
    episode: int,
) -> TopUpDecision:
    """Decide one leg's top-up.

    `state` is the account state `account_view` was made from (the planner needs the model's inputs);
    `available_balance` is what the source wallet can give (None: unknown); `episode` is the leg's current
    episode (`PolicyMemory.episode(risk_identity(...))`), which advances each time the leg crosses its warning
    threshold: keep `trigger_distance` inside the warning distance so every top-up falls within one.
    """
    account_id = account_view.account_id
    symbol, side = leg.key[0], leg.key[1].value
    currency = state.settle_currency
    if leg.risk is None:
        return NotNeeded(f"figures unknown ({leg.unknown_because}): marginguard never tops up blind")
    distance = leg.risk.distance_to_liquidation
    if distance is None:
        return NotNeeded("no liquidation price")
    if distance > limits.trigger_distance:
        return NotNeeded(
            f"{percent(distance)} from liquidation, trigger at {percent(limits.trigger_distance)}"
        )
    cross = leg.facts.margin_mode is MarginMode.CROSS
    if cross and limits.cross_transfer_from is None:
        return Refused(
            "alert_only",
            "alert only: a cross position needs a source wallet (cross_transfer_from) to transfer from",
        )

    ours = [e for e in ledger.entries if not e.seeded]
    own = [e for e in ours if e.is_leg(account_id, symbol, side)]
    # A transfer feeds every cross leg of the account at once: for a cross leg, any transfer of the account is in
    # flight for it and starts its cooldown, so two legs cannot each send one while the wallet update is on its way.
    shared = [
        e
        for e in ours
        if e.is_leg(account_id, symbol, side)
        or (cross and e.account == account_id and e.method is TopUpMethod.TRANSFER)
    ]
    in_flight = next((e for e in shared if e.status is EntryStatus.PENDING), None)
    if in_flight is not None:
        return NotNeeded(f"a top-up is in flight: {in_flight.intent_key}")
    unseen = next((e for e in shared if not e.shown_by(state)), None)
    if unseen is not None:
        return NotNeeded(f"waiting for the exchange's picture to show {unseen.intent_key}")
    settled = [e for e in own if e.episode == episode]
    if len(settled) >= limits.max_attempts:
        return Refused("attempts", f"{len(settled)} of {limits.max_attempts} attempts used in this episode")
    last_ts = max((e.ts for e in shared), default=None)
    if last_ts is not None and now < last_ts + limits.cooldown_s:
        return Refused(
            "cooldown",
            f"cooling down after the last top-up {now - last_ts:.0f} s ago",
            retry_at=last_ts + limits.cooldown_s,
        )
    if available_balance is None:
        return Refused("balance_unknown", "available balance unknown")

    model, index = _model_for(state, leg.key, cross)
    if model is None:
        return NotNeeded("figures unknown: the model cannot rebuild this position")
    plan = plan_top_up(model, index, limits.target_distance)
    if plan.amount is None:
        return Refused("unreachable", f"no amount reaches the target: {plan.note}")
    if plan.amount <= 0.0:
        return NotNeeded(plan.note or "already at the target distance")

    day_ago = now - DAY_S
    rooms = [
        ("max_per_action", limits.max_per_action),
        ("max_per_account_per_day", limits.max_per_account_per_day - ledger.spent_since(day_ago, account_id)),
        ("min_free_balance", available_balance - limits.min_free_balance),
    ]
    if limits.max_per_position_per_day is not None:
        spent = ledger.spent_since(day_ago, account_id, symbol, side)
        rooms.append(("max_per_position_per_day", limits.max_per_position_per_day - spent))
    binding, room = min(rooms, key=lambda named: named[1])
    if room <= 0.0:
        return Refused(binding, f"{binding} reached: nothing left to add ({number(room)} {currency})")
    amount = min(plan.amount, room)
    if amount < limits.min_amount:
        return Refused(
            "min_amount",
            f"{number(amount)} {currency} is below the smallest accepted amount {number(limits.min_amount)}",
        )
    capped_by = (
        None
        if amount >= plan.amount
        else f"capped by {binding}: {number(amount)} of the {number(plan.amount)} {currency} needed"
    )
    attempt = len(settled) + 1
    return TopUp(
        amount=amount,
        symbol=symbol,
        side=side,
        target=limits.target_distance,
        intent_key=intent_key(account_id, symbol, side, episode, attempt),
        method=TopUpMethod.TRANSFER if cross else TopUpMethod.ADD_MARGIN,
        source=limits.cross_transfer_from if cross else None,
        needed=plan.amount,
        capped_by=capped_by,
        distance_after=plan.distance_after
        if capped_by is None
        else distance_after_adding(model, index, amount),
        episode=episode,
        attempt=attempt,
    )


def _model_for(state: AccountState, key: LegKey, cross: bool) -> tuple[Account | None, int]:
    """The model account the planner needs: the leg alone when isolated (it stands alone), else every cross leg
    with the wallet, as the view evaluated them."""
    built: list[tuple[LegKey, Position]] = []
    for leg_key in sorted(state.legs, key=lambda k: (k[0], k[1].value)):
        position, _mark, _reason = model_position(state, state.legs[leg_key])
        if position is None:
            continue
        if leg_key == key or (cross and position.margin_mode is MarginMode.CROSS):
            built.append((leg_key, position))
    keys = [leg_key for leg_key, _p in built]
    if key not in keys:
        return None, -1
    account = Account(
        exchange=state.family,
        positions=tuple(p for _k, p in built),
        wallet_balance=state.wallet_balance if cross else None,
        settle_currency=state.settle_currency,
    )
    return account, keys.index(key)


def margin_added_while_open(state: AccountState) -> dict[LegKey, float] | None:
    """What each open isolated leg holds beyond what opening it required, for a journal that is new (or lost) on
    a venue whose margin history cannot be read: what top-ups, anyone's, may have added to it in the last day.

    The margin above size x entry / leverage, or the whole margin where the leverage is not known (counting too
    much only leaves less room). None while a leg's margin is unknown: ask again with a fuller picture.
    Top-ups to legs closed since are beyond what any picture shows; the caller says so.
    """
    added: dict[LegKey, float] = {}
    for key, facts in state.legs.items():
        if facts.margin_mode is not MarginMode.ISOLATED:
            continue
        margin = facts.isolated_margin
        if margin is None:
            return None
        rules = state.rules.get(key[0])
        size = facts.contract_size if facts.contract_size is not None else rules and rules.contract_size
        if facts.leverage and facts.entry_price and size:
            opening = abs(facts.contracts) * size * facts.entry_price / facts.leverage
            added[key] = max(0.0, margin - opening)
        else:
            added[key] = margin
    return {key: amount for key, amount in added.items() if amount > 0.0}

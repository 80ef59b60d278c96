"""The alert policy: from an account's view, stream health and leg changes to alert messages (pure).

`decide` is called after every state change and on a periodic tick (minimum durations and repeats are judged
only when it runs). Rules, one identity each:
- liquidation_risk (per leg): warning / critical from the distance to liquidation and, for isolated legs, the
  leg's margin ratio (a cross leg's ratio is the account's, judged once by account_margin);
- account_margin (per account): the cross margin ratio; a cross balance that is not positive is critical;
- stale_data:<kind> (per account and kind of stream: positions, balance, account, marks): critical once a
  stream has carried no data for its `stale_after_s`, resolved when every stream of the kind is fresh again
  (see policy_stale: a reconnect within the threshold says nothing);
- auth_failure (per account): the exchange refused the key, until a stream of the account is fresh again;
- divergence (per leg): the model's liquidation price against the exchange's, relative gap beyond tolerance;
- figures_unknown (per leg): a leg the model cannot judge although every stream is fresh;
- liquidated (per leg, one message): the exchange's records say it liquidated the leg (critical, with the price
  it closed at); the records could not be read in time (a warning: the leg vanished, the cause is unknown); or,
  where marginguard reads no records of the venue, the leg vanished or closed while its last distance was
  critical. A leg the records show closed without a liquidation ends with its alerts resolved ("closed").
Unknown figures neither fire nor resolve anything: the identity holds where it was.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace

from daemon.core import policy_text as text
from daemon.core.alerts import Alert, AlertIdentity, AlertKind, Severity
from daemon.core.events import Freshness, StreamHealth
from daemon.core.policy_levels import crossings
from daemon.core.policy_memory import Figures, Level, PolicyMemory, Track
from daemon.core.policy_rules import RuleSet, Silence, Thresholds
from daemon.core.policy_stale import STALE_RULE_PREFIX, KindHealth, kinds_health, stale_rule
from daemon.core.state import Change, ChangeKind, LegKey
from daemon.core.types import MarginMode, Side
from daemon.core.view import AccountView, LegView

RISK_RULE = "liquidation_risk"
ACCOUNT_RULE = "account_margin"
DIVERGENCE_RULE = "divergence"
UNKNOWN_RULE = "figures_unknown"
LIQUIDATED_RULE = "liquidated"
AUTH_RULE = "auth_failure"

_LEG_RULES = (RISK_RULE, DIVERGENCE_RULE, UNKNOWN_RULE)
_SEVERITY = {Level.WARNING: Severity.WARNING, Level.CRITICAL: Severity.CRITICAL}
_GONE = {ChangeKind.VANISHED: "vanished from the exchange's positions", ChangeKind.CLOSED: "closed"}
_OWNER_CLOSED = "closed (the exchange's records show no liquidation)"


def risk_identity(account: str, symbol: str, side: Side) -> AlertIdentity:
    """The identity of a leg's liquidation-risk alert (its episode names top-up decisions)."""
    return AlertIdentity(account, symbol, side.value, RISK_RULE)


def decide(
    view: AccountView,
    health: Mapping[str, StreamHealth],
    changes: Sequence[Change],
    rules: RuleSet,
    memory: PolicyMemory,
    silences: Sequence[Silence],
    now: float,
    *,
    exchange: str,
    positions_known: bool,
    asking: Collection[tuple[str, Side]] = (),
    only: Collection[LegKey] | None = None,
) -> tuple[PolicyMemory, tuple[Alert, ...]]:
    """The alerts to send now (firing, repeated or resolved), and the memory to pass next time.

    `changes` are those `state.apply` reported since the last call. `positions_known` says a complete positions
    snapshot has been folded in (`state.last_snapshot_ms is not None`): only then does a leg the memory knows
    but the view lacks count as gone, which after a restart with a kept memory reports the legs that went
    while marginguard was down, and before that snapshot reports nothing. `asking` lists the legs whose end the
    shell is asking the exchange's records about: nothing is said about them until the answer comes as a
    change (LIQUIDATED, CLOSED_BY_OWNER or GONE_UNEXPLAINED).

    `only` judges just those legs (and the account's margin): for a caller that knows nothing else changed since
    its previous decision (no change, no stream's health, no silence, the same set of legs) and that no
    deadline of `policy_deadline.clock_plan` has passed since then. The rest would decide exactly as before,
    so skipping it gives the same alerts and memory as judging everything.
    """
    run = _Run(view.account_id, exchange, rules, silences, now, memory)
    blind = any(h.freshness is not Freshness.FRESH for h in health.values())
    for change in changes:
        if change.kind in _GONE:
            run.leg_gone(change.symbol, change.side, _GONE[change.kind])
        elif change.kind is ChangeKind.LIQUIDATED:
            run.leg_liquidated(change)
        elif change.kind is ChangeKind.CLOSED_BY_OWNER:
            run.leg_gone(change.symbol, change.side, _OWNER_CLOSED, judged_by_distance=False)
        elif change.kind is ChangeKind.GONE_UNEXPLAINED:
            run.leg_unexplained(change)
    if only is not None:
        for leg in view.legs:
            if leg.key in only:
                run.leg(leg, blind)
        run.account(view)
        return run.memory(), tuple(run.alerts)
    for leg in view.legs:
        run.leg(leg, blind)
    if positions_known:
        live = {(leg.key[0], leg.key[1].value) for leg in view.legs}
        remembered = {(symbol, side.value) for symbol, side in remembered_legs(run.memory(), view.account_id)}
        held_back = {(symbol, side.value) for symbol, side in asking}
        for symbol, side in sorted(remembered - live - held_back):
            run.leg_gone(symbol, Side(side), "is not among the exchange's positions")
    run.account(view)
    refused = any(h.refused and h.freshness is not Freshness.FRESH for h in health.values())
    for stream, stream_health in sorted(health.items()):
        run.key(stream, stream_health, refused)
    run.stale_streams(health, {leg.key[0] for leg in view.legs})
    return run.memory(), tuple(run.alerts)


def remembered_legs(memory: PolicyMemory, account_id: str) -> set[tuple[str, Side]]:
    """The legs the memory holds alerts about: after a restart, those absent from the first snapshot went while
    marginguard was down (the shell asks the exchange's records how, as for any leg that goes)."""
    return {
        (track.identity.symbol, Side(track.identity.side))
        for track in memory.tracks.values()
        if track.identity.account == account_id
        and track.identity.rule in _LEG_RULES
        and track.identity.symbol is not None
        and track.identity.side is not None
    }


def leg_figures(leg: LegView) -> Figures:
    """What an alert about this leg shows: its size and mark, and the model's figures where known."""
    risk, size = leg.risk, leg.size
    return Figures(
        contracts=abs(leg.facts.contracts),
        mark_price=leg.mark_price,
        liquidation_price=risk.liquidation_price if risk else None,
        distance=risk.distance_to_liquidation if risk else None,
        margin_ratio=risk.margin_ratio if risk else None,
        quantity=size.quantity if size else None,
        notional=size.notional if size else None,
    )


# `_Run.memory` builds the memory from every field of `PolicyMemory`: one added there must be carried there too.
assert [f.name for f in fields(PolicyMemory)] == ["tracks", "sequences", "episodes", "notices"]


@functools.lru_cache(maxsize=1 << 16)
def _identity(account: str, symbol: str | None, side: str | None, rule: str) -> tuple[AlertIdentity, str]:
    """An identity judged at every mark (a leg's rules, the account's margin) and its key, made once."""
    identity = AlertIdentity(account, symbol, side, rule)
    return identity, identity.key


def _subject(leg_symbol: str, side: str, account: str) -> str:
    return f"{account} {leg_symbol} {side}"


@dataclass
class _Run:
    """One decision's working state (local and short-lived; `decide` stays a pure function)."""

    account_id: str
    exchange: str
    rules: RuleSet
    silences: Sequence[Silence]
    now: float
    before: PolicyMemory
    tracks: dict[str, Track] = field(init=False)
    sequences: dict[str, int] = field(init=False)
    episodes: dict[str, int] = field(init=False)
    alerts: list[Alert] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.tracks = dict(self.before.tracks)
        self.sequences = dict(self.before.sequences)
        self.episodes = dict(self.before.episodes)

    def memory(self) -> PolicyMemory:
        return PolicyMemory(self.tracks, self.sequences, self.episodes, self.before.notices)

    # -- the rules ---------------------------------------------------------------------------------------------

    def leg(self, leg: LegView, blind: bool) -> None:
        symbol, side = leg.key[0], leg.key[1].value
        th = self.rules.for_symbol(self.account_id, symbol)
        subject = _subject(symbol, side, self.account_id)
        risk = leg.risk
        figures = leg_figures(leg)

        unknown, unknown_key = _identity(self.account_id, symbol, side, UNKNOWN_RULE)
        # While blind, the stale alert speaks; the question stays open.
        if (risk is not None or not blind) and not self._rests(unknown_key, risk is None, figures):
            after = self._track(unknown, AlertKind.LIQUIDATION_RISK, unknown_key).step(
                risk is None, False, self.now, th.unknown_grace_s, figures
            )
            self._advance(after, th, lambda level: text.figures_unknown(subject, level, leg.unknown_because))
        if risk is None:
            return

        identity, key = _identity(self.account_id, symbol, side, RISK_RULE)
        track = self._track(identity, AlertKind.LIQUIDATION_RISK, key)
        own_ratio = risk.margin_ratio if leg.facts.margin_mode is MarginMode.ISOLATED else None
        warning, critical = crossings(risk.distance_to_liquidation, own_ratio, th, track)
        if not self._rests(key, warning, figures):  # `warning` is set whenever `critical` is
            after = track.step(warning, critical, self.now, th.min_duration_s, figures)
            self._advance(after, th, lambda level: text.position_risk(subject, level, figures, th, own_ratio))

        exchange_price = leg.facts.exchange_liquidation_price
        if exchange_price is None or exchange_price <= 0.0:
            return  # the exchange did not say: unknown, not a divergence
        model = risk.liquidation_price
        diverged = model is None or abs(model - exchange_price) / exchange_price > th.divergence_tolerance
        identity, key = _identity(self.account_id, symbol, side, DIVERGENCE_RULE)
        if not self._rests(key, diverged, figures):
            after = self._track(identity, AlertKind.DIVERGENCE, key).step(
                diverged, False, self.now, th.min_duration_s, figures
            )
            self._advance(
                after,
                th,
                lambda level: text.divergence(subject, level, model, exchange_price, th.divergence_tolerance),
            )

    def _rests(self, key: str, beyond: bool, figures: Figures) -> bool:
        """A track at rest whose figures stay clear of its thresholds: only its figures move, as stepping and
        advancing it would do (nothing is due; see `Track.rested`). Most legs at most marks end here."""
        track = self.tracks.get(key)
        if beyond or track is None or not track.at_rest:
            return False
        self.tracks[key] = track.rested(figures)
        self.episodes[key] = track.episode
        return True

    def _end_leg(self, symbol: str, side: Side) -> tuple[list[Track], Figures]:
        """Forget the leg's open identities; returns them and the leg's last known figures."""
        risk = self.tracks.get(risk_identity(self.account_id, symbol, side).key)
        leg_tracks = [
            track
            for track in self.tracks.values()
            if track.identity.account == self.account_id
            and track.identity.symbol == symbol
            and track.identity.side == side.value
            and track.identity.rule in _LEG_RULES
        ]
        for track in leg_tracks:
            del self.tracks[track.identity.key]
        return leg_tracks, risk.figures if risk is not None else Figures()

    def leg_liquidated(self, change: Change) -> None:
        """The exchange's records say it liquidated the leg: one critical message, never an all-clear (the
        leg's open alerts end with it rather than with a resolve each)."""
        _tracks, last = self._end_leg(change.symbol, change.side)
        subject = _subject(change.symbol, change.side.value, self.account_id)
        figures = replace(
            last, contracts=change.contracts if change.contracts is not None else last.contracts
        )
        identity = AlertIdentity(self.account_id, change.symbol, change.side.value, LIQUIDATED_RULE)
        summary = text.liquidated_by_exchange(subject, change.price, change.contracts, change.detail, last)
        self._send(identity, AlertKind.LIQUIDATED, Level.CRITICAL, figures, summary)

    def leg_unexplained(self, change: Change) -> None:
        """The leg left the picture and the exchange's records could not be read in time: a warning that says
        so (it may have been liquidated), never an all-clear."""
        _tracks, last = self._end_leg(change.symbol, change.side)
        subject = _subject(change.symbol, change.side.value, self.account_id)
        identity = AlertIdentity(self.account_id, change.symbol, change.side.value, LIQUIDATED_RULE)
        summary = text.gone_unexplained(subject, change.detail, last)
        self._send(identity, AlertKind.LIQUIDATED, Level.WARNING, last, summary)

    def leg_gone(self, symbol: str, side: Side, how: str, judged_by_distance: bool = True) -> None:
        """A leg closed or vanished. `judged_by_distance`: no record of the exchange says how, so a leg last
        seen near liquidation is told as probably liquidated (the fallback where marginguard reads no records)."""
        th = self.rules.for_symbol(self.account_id, symbol)
        subject = _subject(symbol, side.value, self.account_id)
        leg_tracks, last = self._end_leg(symbol, side)
        near = last.distance is not None and (
            last.distance <= 0.0
            or (th.critical_distance is not None and last.distance <= th.critical_distance)
        )
        if near and judged_by_distance:
            # One message says it all; the leg's open alerts end with it rather than with a resolve each.
            identity = AlertIdentity(self.account_id, symbol, side.value, LIQUIDATED_RULE)
            self._send(
                identity, AlertKind.LIQUIDATED, Level.CRITICAL, last, text.liquidated(subject, how, last)
            )
            return
        for track in leg_tracks:
            if track.notified is not Level.OK:
                self._send(
                    track.identity, track.kind, Level.OK, track.figures, text.position_gone(subject, how)
                )

    def account(self, view: AccountView) -> None:
        if view.account is None:
            return  # some leg is unknown, so the cross totals are too
        th = self.rules.for_account(self.account_id)
        cross = [
            leg for leg in view.legs if leg.facts.margin_mode is MarginMode.CROSS and leg.risk is not None
        ]
        ratio = view.account.cross_margin_ratio
        distances = [
            leg.risk.distance_to_liquidation
            for leg in cross
            if leg.risk is not None and leg.risk.distance_to_liquidation is not None
        ]
        figures = Figures(distance=min(distances, default=None), margin_ratio=ratio)
        identity, key = _identity(self.account_id, None, None, ACCOUNT_RULE)
        track = self._track(identity, AlertKind.ACCOUNT_MARGIN, key)
        if cross:
            # The model gives no ratio when the cross balance is not positive: beyond every threshold.
            judged = ratio if ratio is not None else math.inf
            warning, critical = crossings(None, judged, th, track)
        else:
            warning = critical = False
        if self._rests(key, warning, figures):
            return
        after = track.step(warning, critical, self.now, th.min_duration_s, figures)
        account_id = self.account_id
        self._advance(
            after, th, lambda level: text.account_margin(account_id, level, figures, bool(cross), th)
        )

    def key(self, stream: str, health: StreamHealth, refused: bool) -> None:
        """The refused-key alert. `refused`: some stream of the account is down because the exchange refused the
        key; a stream fresh while none is refused clears it (the key was replaced and marginguard restarted)."""
        th = self.rules.for_account(self.account_id)
        if health.refused:
            self._refused(stream, health, th)
            return
        refusal = self.tracks.get(AlertIdentity(self.account_id, None, None, AUTH_RULE).key)
        if (
            not refused
            and refusal is not None
            and refusal.level is not Level.OK
            and health.freshness is Freshness.FRESH
        ):
            cleared = refusal.step(False, False, self.now, 0.0, Figures())
            self._advance(cleared, th, lambda _level: text.refused(self.account_id, stream, "", cleared=True))

    def stale_streams(self, health: Mapping[str, StreamHealth], held_symbols: set[str]) -> None:
        """One stale-data alert per kind of stream (see policy_stale)."""
        for key, track in list(self.tracks.items()):
            rule = track.identity.rule
            if track.identity.account == self.account_id and rule.startswith(STALE_RULE_PREFIX + "mark:"):
                # A per-stream identity kept by an older marginguard: the marks alert speaks for it now.
                del self.tracks[key]
        for kind in kinds_health(health, self.rules, self.account_id, held_symbols):
            self._stale(kind)

    def _stale(self, kind: KindHealth) -> None:
        if kind.held:
            return  # the refused-key alert says it; this kind's alert holds where it was
        th = self.rules.for_account(self.account_id)
        identity = AlertIdentity(self.account_id, None, None, stale_rule(kind.kind))
        track = self._track(identity, AlertKind.STALE_DATA)
        blind = [o for o in kind.outages if o.blind(self.now)]
        # Fired: it stays so until every stream of the kind is fresh, whatever reconnects happen in between.
        beyond = bool(blind) or (track.critical.beyond and bool(kind.outages))
        after = track.step(beyond, beyond, self.now, 0.0, Figures())
        account_id, now = self.account_id, self.now
        shown = blind or list(kind.outages)
        self._advance(after, th, lambda level: text.stale(account_id, kind.kind, level, shown, now))

    def _refused(self, stream: str, health: StreamHealth, th: Thresholds) -> None:
        """The exchange refused the key or its permissions: critical until a restart brings the stream back."""
        identity = AlertIdentity(self.account_id, None, None, AUTH_RULE)
        track = self._track(identity, AlertKind.AUTH_FAILURE)
        after = track.step(True, True, self.now, 0.0, Figures())
        account_id = self.account_id
        self._advance(after, th, lambda _level: text.refused(account_id, stream, health.detail))

    # -- the conversation --------------------------------------------------------------------------------------

    def _track(self, identity: AlertIdentity, kind: AlertKind, key: str | None = None) -> Track:
        key = identity.key if key is None else key
        known = self.tracks.get(key)
        if known is not None:
            return known
        return Track(identity, kind, episode=self.episodes.get(key, 0))

    def _advance(self, track: Track, th: Thresholds, summary: Callable[[Level], str]) -> None:
        """Store the stepped track and send what the receivers should now hear, unless silenced."""
        level = track.level
        due = level is not track.notified or (
            level is not Level.OK
            and th.repeat_interval_s is not None
            and track.last_sent is not None
            and self.now - track.last_sent >= th.repeat_interval_s
        )
        if due and self._send(track.identity, track.kind, level, track.figures, summary(level)):
            track = replace(track, notified=level, last_sent=self.now)
        key = track.identity.key
        self.tracks[key] = track
        self.episodes[key] = track.episode

    def _send(
        self, identity: AlertIdentity, kind: AlertKind, level: Level, figures: Figures, summary: str
    ) -> bool:
        if any(s.mutes(identity.account, identity.symbol, self.now) for s in self.silences):
            return False
        sequence = self.sequences.get(identity.key, 0) + 1
        self.sequences[identity.key] = sequence
        severity = _SEVERITY.get(level, Severity.INFO)
        alert = text.compose_alert(
            identity, kind, severity, level is Level.OK, figures, summary, self.now, self.exchange
        )
        self.alerts.append(replace(alert, sequence=sequence))
        return True

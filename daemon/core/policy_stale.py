"""Stale data: when a silent stream leaves marginguard blind, judged per account and kind of stream (pure).

Feeds report each stream's health as it changes: DOWN when its socket drops, STALE when data stops while the
socket stays up (or the stream is found to have missed changes), FRESH when data flows again. Exchanges close
sockets routinely and networks blip, and a reconnect within seconds leaves nothing unseen; only a stream that
carries no data for its `stale_after_s` leaves marginguard blind. So a stream counts as blind once it has been
silent that long (DOWN: from when it last carried data, or dropped; STALE: the feed already waited that long,
unless it says since when the stream is silent, then from then on).

One alert per account and kind of stream: `positions`, `balance`, `account` (the REST snapshots) and `marks`,
one identity for all of the account's mark-price streams (only those of symbols it holds), whose message lists
the symbols. A kind fires when one of its streams turns blind, stays firing while any of them is not fresh, and
resolves once all of them are fresh again: one critical and one resolve per outage, whatever the reconnects
in between.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from daemon.core.events import Freshness, StreamHealth
from daemon.core.policy_rules import RuleSet

STALE_RULE_PREFIX = "stale_data:"
MARK_STREAM_PREFIX = "mark:"
MARKS = "marks"


def stream_kind(stream: str) -> tuple[str, str | None]:
    """(kind, symbol) of a stream name: "mark:BTC/USDT:USDT" -> ("marks", "BTC/USDT:USDT"); others are their
    own kind ("positions", "balance", "account")."""
    if stream.startswith(MARK_STREAM_PREFIX):
        return MARKS, stream.removeprefix(MARK_STREAM_PREFIX)
    return stream, None


def counts_for_account(stream: str, held_symbols: frozenset[str]) -> bool:
    """Whether a stream's health says anything about the account: every private stream does, a mark stream only
    while the account holds its symbol (one left behind by a closed position is no longer watched)."""
    _kind, symbol = stream_kind(stream)
    return symbol is None or symbol in held_symbols


def blind_streams(health: Mapping[str, StreamHealth], held_symbols: Iterable[str]) -> list[str]:
    """The streams that count for the account and are not fresh, by name."""
    held = frozenset(held_symbols)
    return sorted(
        stream
        for stream, stream_health in health.items()
        if stream_health.freshness is not Freshness.FRESH and counts_for_account(stream, held)
    )


def stale_rule(kind: str) -> str:
    return STALE_RULE_PREFIX + kind


@dataclass(frozen=True, slots=True)
class Outage:
    """A stream that is not fresh: since when it is silent, and from when that counts as blind."""

    stream: str
    symbol: str | None
    health: StreamHealth
    silent_since: float | None  # unix seconds; None: the feed did not say (a STALE verdict)
    blind_at: float  # unix seconds

    def blind(self, now: float) -> bool:
        return now >= self.blind_at


def outage(stream: str, health: StreamHealth, stale_after_s: float) -> Outage:
    _, symbol = stream_kind(stream)
    if health.silent_since_ms is not None:
        since: float | None = health.silent_since_ms / 1000.0
    elif health.freshness is Freshness.DOWN:
        since = health.ts_ms / 1000.0
    else:
        since = None
    blind_at = health.ts_ms / 1000.0 if since is None else since + stale_after_s
    return Outage(stream, symbol, health, since, blind_at)


@dataclass(frozen=True, slots=True)
class KindHealth:
    """The streams of one kind that are not fresh now (empty: all fresh). `held`: a refused stream is among
    them, so the authentication alert speaks and this kind's alert stays where it is."""

    kind: str
    outages: tuple[Outage, ...]
    held: bool = False


def kinds_health(
    health: Mapping[str, StreamHealth],
    rules: RuleSet,
    account: str,
    held_symbols: Iterable[str],
) -> list[KindHealth]:
    """Every kind with a stream in `health` (a kind nobody has reported on yet, as after a restart, is left
    where it was: unknown is not fresh).

    Mark streams count only for symbols the account holds: a mark stream left behind by a closed position says
    nothing about the account."""
    held = frozenset(held_symbols)
    outages: dict[str, list[Outage]] = {}
    refused: set[str] = set()
    for stream, stream_health in sorted(health.items()):
        kind, symbol = stream_kind(stream)
        outages.setdefault(kind, [])
        if not counts_for_account(stream, held):
            continue
        if stream_health.refused:
            refused.add(kind)
        if stream_health.freshness is Freshness.FRESH:
            continue
        threshold = rules.resolve(account, symbol).stale_after_s
        outages[kind].append(outage(stream, stream_health, threshold))
    return [KindHealth(kind, tuple(found), kind in refused) for kind, found in sorted(outages.items())]


class KindsMemo:
    """`kinds_health`, remembered while its inputs stay the same objects (a runner's health dict is replaced,
    never changed in place, and most steps bring only marks): one per account, so the memo is not shared."""

    __slots__ = ("_held", "_inputs", "_kinds")

    def __init__(self) -> None:
        self._inputs: tuple[object, ...] = ()
        self._held: frozenset[str] = frozenset()
        self._kinds: list[KindHealth] = []

    def __call__(
        self,
        health: Mapping[str, StreamHealth],
        rules: RuleSet,
        account: str,
        held_symbols: Iterable[str],
    ) -> list[KindHealth]:
        held = frozenset(held_symbols)
        inputs = self._inputs
        if (
            inputs
            and inputs[0] is health
            and inputs[1] is rules
            and inputs[2] == account
            and held == self._held
        ):
            return self._kinds
        self._kinds = kinds_health(health, rules, account, held)
        self._inputs, self._held = (health, rules, account), held
        return self._kinds

"""A quiet band lets through only marks on which the full policy, on the full solve's figures, decides nothing.

The oracle is independent of the band's arithmetic: after each mark the band lets through, the account's figures
come from `view` (the whole model solved again, not the incremental one the band read its gaps from) and the
policy decides on them from the memory the band was built with. It must send nothing and leave every track as it
was but for its figures. Accounts are generated over every margin family, cross and isolated legs, linear and
inverse contracts, continuous and jumping bracket tables, an exchange-stated liquidation price near the model's
or none, and thresholds of every size; marks walk from where the band was built, towards and past thresholds.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from daemon.core.events import (
    BalanceUpdate,
    Event,
    Freshness,
    MarketRules,
    MarkPrice,
    PositionFacts,
    PositionSnapshot,
    StreamHealth,
)
from daemon.core.live_view import LiveView
from daemon.core.policy import decide
from daemon.core.policy_memory import PolicyMemory
from daemon.core.policy_rules import RuleSet, Thresholds
from daemon.core.quiet_band import QuietBand, quiet_band
from daemon.core.state import AccountState, apply
from daemon.core.tiers import derive_maintenance_amounts
from daemon.core.types import ContractType, MarginMode, Side, Tier
from daemon.core.view import AccountView, view

ACCOUNT = "acct"
FAMILIES = ("binance", "bybit", "okx", "gate", "hyperliquid")


@dataclass(frozen=True)
class LegSpec:
    side: Side
    cross: bool
    inverse: bool
    contracts: float
    entry: float
    leverage: float
    stated_off: float | None  # the exchange's liquidation price, relative to the model's (None: not stated)


@dataclass(frozen=True)
class AccountSpec:
    family: str
    wallet: float
    legs: tuple[LegSpec, ...]
    jumping: bool  # bracket tables whose maintenance amounts leave jumps at the edges
    taker_fee: float
    thresholds: Thresholds


legs = st.builds(
    LegSpec,
    st.sampled_from(Side),
    st.sampled_from([True, True, False]),  # cross more often: its gaps move with every other mark
    st.booleans(),
    st.sampled_from([0.5, 1.0, 3.0, 40.0, 700.0]),
    st.sampled_from([0.8, 100.0, 2_500.0]),
    st.sampled_from([2.0, 5.0, 10.0, 25.0]),
    st.sampled_from([None, 0.0, 0.001, -0.002, 0.01]),
)


@st.composite
def thresholds(draw: st.DrawFn) -> Thresholds:
    warning = draw(st.sampled_from([None, 0.02, 0.1, 0.3]))
    critical = None if warning is None else draw(st.sampled_from([None, warning / 2]))
    warning_ratio = draw(st.sampled_from([None, 0.5, 0.7]))
    critical_ratio = None if warning_ratio is None else draw(st.sampled_from([None, 0.9]))
    return Thresholds(
        warning_distance=warning,
        critical_distance=critical,
        warning_margin_ratio=warning_ratio,
        critical_margin_ratio=critical_ratio,
        divergence_tolerance=draw(st.sampled_from([0.005, 0.05])),
    )


accounts = st.builds(
    AccountSpec,
    st.sampled_from(FAMILIES),
    st.sampled_from([50.0, 2_000.0, 100_000.0]),
    st.lists(legs, min_size=1, max_size=4).map(tuple),
    st.booleans(),
    st.sampled_from([0.0, 0.0005]),
    thresholds(),
)

# Relative moves of one mark: small steps creep about, large ones jump; "to the edge" takes the largest part of
# the move the band still lets through (found by bisection on a copy of it), so marks sit right at its limit.
relative = st.one_of(*(st.floats(-size, size, allow_nan=False) for size in (0.003, 0.03, 0.25)))
moves = st.lists(st.tuples(st.integers(0, 3), relative, st.booleans()), min_size=1, max_size=40)


def _edge(band: QuietBand, symbol: str, start: float, change: float) -> float:
    """The price on the way from `start` to `start·(1 + change)` furthest out that `band` still lets through."""
    inside, outside = 0.0, 1.0
    for _ in range(40):
        middle = (inside + outside) / 2
        if copy.deepcopy(band).move(symbol, start * (1.0 + change * middle)):
            inside = middle
        else:
            outside = middle
    return start * (1.0 + change * inside)


def _tiers(jumping: bool, inverse: bool, entry: float) -> tuple[Tier, ...]:
    # Sized against the legs' notional (coins for inverse contracts), so walks cross brackets.
    unit = 1.0 if inverse else entry
    tiers = derive_maintenance_amounts(
        [Tier(0.0, 0.01), Tier(20.0 * unit, 0.02), Tier(200.0 * unit, 0.05), Tier(5_000.0 * unit, 0.1)]
    )
    if jumping:
        tiers = tuple(replace(tier, maintenance_amount=tier.maintenance_amount * 0.9) for tier in tiers)
    return tiers


def _opened(spec: AccountSpec) -> tuple[AccountState, RuleSet, list[str]]:
    state = AccountState(ACCOUNT, spec.family)
    symbols = [f"S{index}/USDT:USDT" for index in range(len(spec.legs))]
    events: list[Event] = []
    facts = []
    for symbol, leg in zip(symbols, spec.legs, strict=True):
        kind = ContractType.INVERSE if leg.inverse else ContractType.LINEAR
        events.append(
            MarketRules(
                symbol,
                1.0,
                kind,
                _tiers(spec.jumping, leg.inverse, leg.entry),
                spec.taker_fee,
                max_leverage=50.0,
            )
        )
        facts.append(
            PositionFacts(
                symbol,
                leg.side,
                leg.contracts,
                entry_price=leg.entry,
                margin_mode=MarginMode.CROSS if leg.cross else MarginMode.ISOLATED,
                leverage=leg.leverage,
            )
        )
    events += [PositionSnapshot(tuple(facts), 0), BalanceUpdate(spec.wallet, 0)]
    events += [MarkPrice(symbol, leg.entry, 0) for symbol, leg in zip(symbols, spec.legs, strict=True)]
    events += [StreamHealth(f"mark:{s}", Freshness.FRESH, 0) for s in symbols]
    events += [StreamHealth(name, Freshness.FRESH, 0) for name in ("positions", "balance")]
    for opening in events:
        state, _ = apply(state, opening)
    # The exchange states a liquidation price near the model's, where the spec says so.
    stated = []
    first = view(state)
    for fact, leg, figures in zip(facts, spec.legs, first.legs, strict=True):
        model = figures.risk.liquidation_price if figures.risk is not None else None
        price = None if leg.stated_off is None or model is None else model * (1.0 + leg.stated_off)
        stated.append(replace(fact, exchange_liquidation_price=price))
    state, _ = apply(state, PositionSnapshot(tuple(stated), 1))
    return state, RuleSet(spec.thresholds), symbols


def _decide(
    state: AccountState, figures: AccountView, rules: RuleSet, memory: PolicyMemory, now: float
) -> tuple:
    return decide(figures, state.health, (), rules, memory, [], now, exchange="x", positions_known=True)


def _band(state: AccountState, rules: RuleSet) -> tuple[QuietBand | None, PolicyMemory]:
    live = LiveView(state)
    memory, _alerts = _decide(state, live.view, rules, PolicyMemory(), 1.0)
    return quiet_band(live.view, live.leeways(), live.cross_balance(), rules, memory), memory


def _without_figures(memory: PolicyMemory) -> dict[str, object]:
    return {key: replace(track, figures=None) for key, track in memory.tracks.items()}


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(accounts, moves)
def test_every_mark_a_band_lets_through_is_decided_with_nothing_but_new_figures(
    spec: AccountSpec, path: list[tuple[int, float, bool]]
) -> None:
    state, rules, symbols = _opened(spec)
    band, memory = _band(state, rules)
    event("band built" if band is not None else "no band")
    if band is None:
        return  # some track is not at rest, or a figure sits near a threshold: every mark is judged
    marks = {symbol: state.marks[symbol].price for symbol in symbols}
    for step, (which, change, to_edge) in enumerate(path):
        symbol = symbols[which % len(symbols)]
        price = _edge(band, symbol, marks[symbol], change) if to_edge else marks[symbol] * (1.0 + change)
        if not band.move(symbol, price):
            event(f"spent after {min(step, 5)}+ quiet marks")
            return  # the band is spent: the next mark is judged in full
        marks[symbol] = price
        state, _ = apply(state, MarkPrice(symbol, price, 2 + step))
        after, alerts = _decide(state, view(state), rules, memory, 2.0 + step)
        assert alerts == ()
        assert _without_figures(after) == _without_figures(memory)


def test_a_calm_account_is_quiet_until_a_mark_nears_its_warning() -> None:
    spec = AccountSpec(
        "binance",
        2_000.0,
        (
            LegSpec(Side.LONG, True, False, 1.0, 100.0, 10.0, None),
            LegSpec(Side.SHORT, False, False, 3.0, 100.0, 5.0, 0.0),
        ),
        jumping=False,
        taker_fee=0.0,
        thresholds=Thresholds(),
    )
    state, rules, symbols = _opened(spec)
    band, memory = _band(state, rules)
    assert band is not None
    # The isolated short liquidates near 118.8 at 5x: 10 % away (its warning distance) from a mark near 108.
    for price in (100.5, 103.0, 97.0, 100.2):
        assert band.move(symbols[1], price)
    assert band.move(symbols[0], 100.3)
    for nonsense in (math.nan, math.inf, 0.0, -100.0):  # a lying feed's mark is never inside a band
        assert not band.move(symbols[0], nonsense)
    assert not band.move(symbols[1], 109.0)
    state, _ = apply(state, MarkPrice(symbols[1], 109.0, 5))
    after, _alerts = _decide(state, view(state), rules, memory, 10.0)
    assert _without_figures(after) != _without_figures(memory)  # the warning's clock started: not quiet


def test_no_band_while_a_track_is_not_at_rest() -> None:
    spec = AccountSpec(
        "binance",
        2_000.0,
        (LegSpec(Side.LONG, False, False, 1.0, 100.0, 25.0, None),),  # 4 % from liquidation: warning zone
        jumping=False,
        taker_fee=0.0,
        thresholds=Thresholds(),
    )
    state, rules, _symbols = _opened(spec)
    band, _memory = _band(state, rules)
    assert band is None

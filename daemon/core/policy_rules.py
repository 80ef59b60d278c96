"""Alert thresholds as data: global values, overridden per symbol, per account, or per account and symbol.

A distance is the fraction of the mark price the market must move against a position to reach its liquidation
price (0.05 = 5 %); a margin ratio is maintenance margin over margin balance (1.0 = liquidation). A threshold set
to None is switched off (where `Domain.can_be_off` allows it).

`Thresholds` is the one definition of every threshold: its fields, their defaults and the values each accepts.
The configuration file's `[rules]` tables are made from it (daemon.app.settings_rules), so a threshold added
here is a setting, and a setting that is not a threshold here does not exist.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

DOMAIN = "domain"  # the metadata key under which each threshold field carries its Domain


class ThresholdError(ValueError):
    """A threshold value is unusable. `field` names it; nothing to retry: the configuration must change."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message
        # Where in a RuleSet the problem arose: (account, symbol), None for the global scope or every account.
        self.scope: tuple[str | None, str | None] | None = None


@dataclass(frozen=True, slots=True)
class Domain:
    """The values a threshold accepts: finite numbers between `low` and `high` (open ends exclude the bound),
    and None where it may be switched off."""

    low: float
    high: float | None = None
    low_open: bool = True
    high_open: bool = True
    can_be_off: bool = False

    def problem(self, value: object) -> str | None:
        """Why `value` is refused, or None when it is fine."""
        if value is None:
            return None if self.can_be_off else "required (it cannot be switched off)"
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "must be a number"
        if not math.isfinite(value):
            return "must be a finite number"
        if value < self.low or (self.low_open and value == self.low):
            return f"must be {'greater than' if self.low_open else 'at least'} {self.low:g}"
        if self.high is not None and (value > self.high or (self.high_open and value == self.high)):
            return f"must be {'less than' if self.high_open else 'at most'} {self.high:g}"
        return None


FRACTION = Domain(0.0, 1.0, can_be_off=True)  # 0 < x < 1, None: off
TOLERANCE = Domain(0.0, 1.0)  # 0 < x < 1
HYSTERESIS = Domain(0.0, 1.0, low_open=False)  # 0 <= x < 1
DURATION = Domain(0.0, low_open=False)  # seconds, >= 0
INTERVAL = Domain(0.0)  # seconds, > 0
OPTIONAL_INTERVAL = Domain(0.0, can_be_off=True)  # seconds, > 0, None: never


def _threshold(default: float | None, domain: Domain) -> Any:
    return field(default=default, metadata={DOMAIN: domain})


@dataclass(frozen=True, slots=True)
class Thresholds:
    """When an alert fires, how it settles, and how often it repeats.

    Warning fires at `distance <= warning_distance` or `margin_ratio >= warning_margin_ratio`; critical likewise.
    A level is left only once the figure is back past its threshold by `hysteresis` (in the figure's own unit),
    so a price hovering at a threshold does not flap. A level must hold `min_duration_s` before it is reported
    (leaving a level is reported at once). While firing, the alert is sent again every `repeat_interval_s`
    (None: never). `stale_after_s` is how long a stream may carry no data before marginguard says it is blind
    (one alert per account and kind of stream; a reconnect within it says nothing). `divergence_tolerance` is
    the relative gap between the model's liquidation price and the exchange's beyond which a divergence warning
    fires. `unknown_grace_s` is how long a position's figures may stay unknown while every stream is fresh
    before marginguard warns that it cannot judge that position.
    """

    warning_distance: float | None = _threshold(0.10, FRACTION)
    critical_distance: float | None = _threshold(0.05, FRACTION)
    warning_margin_ratio: float | None = _threshold(0.70, FRACTION)
    critical_margin_ratio: float | None = _threshold(0.85, FRACTION)
    hysteresis: float = _threshold(0.01, HYSTERESIS)
    min_duration_s: float = _threshold(5.0, DURATION)
    repeat_interval_s: float | None = _threshold(900.0, OPTIONAL_INTERVAL)
    stale_after_s: float = _threshold(30.0, INTERVAL)
    divergence_tolerance: float = _threshold(0.005, TOLERANCE)
    unknown_grace_s: float = _threshold(60.0, DURATION)

    def __post_init__(self) -> None:
        for spec in fields(self):
            check_threshold(spec.name, getattr(self, spec.name))
        problem = ordering_problem(self)
        if problem is not None:
            raise problem


# Thresholds whose values must keep an order (critical tighter than warning).
ORDERED_THRESHOLDS = frozenset(
    {"warning_distance", "critical_distance", "warning_margin_ratio", "critical_margin_ratio"}
)
THRESHOLD_NAMES: tuple[str, ...] = tuple(spec.name for spec in fields(Thresholds))
DOMAINS: Mapping[str, Domain] = {spec.name: spec.metadata[DOMAIN] for spec in fields(Thresholds)}


def check_threshold(name: str, value: object) -> None:
    """Raise ThresholdError unless `name` is a threshold and `value` one it accepts."""
    domain = DOMAINS.get(name)
    if domain is None:
        raise ThresholdError(name, f"not a threshold (known: {', '.join(THRESHOLD_NAMES)})")
    problem = domain.problem(value)
    if problem is not None:
        raise ThresholdError(name, problem)


def ordering_problem(th: Thresholds) -> ThresholdError | None:
    """Critical must be the tighter threshold: nearer liquidation, at a higher margin ratio."""
    return order_problem({name: getattr(th, name) for name in ORDERED_THRESHOLDS})


def order_problem(values: Mapping[str, float | None]) -> ThresholdError | None:
    """`ordering_problem` over the four ordered thresholds' values alone."""
    warning, critical = values["warning_distance"], values["critical_distance"]
    if warning is not None and critical is not None and critical >= warning:
        return ThresholdError(
            "critical_distance", f"must be smaller than warning_distance ({critical:g} >= {warning:g})"
        )
    warning, critical = values["warning_margin_ratio"], values["critical_margin_ratio"]
    if warning is not None and critical is not None and critical <= warning:
        return ThresholdError(
            "critical_margin_ratio",
            f"must be larger than warning_margin_ratio ({critical:g} <= {warning:g})",
        )
    return None


class Unset(enum.Enum):
    """Marks a threshold that inherits, as opposed to None, which switches a threshold off."""

    UNSET = "unset"


UNSET = Unset.UNSET


@dataclass(frozen=True, slots=True, init=False)
class RuleOverride:
    """Thresholds for one scope: an account (`symbol` None), a symbol in every account (`account` None), or a
    symbol in one account. Thresholds not named inherit from the wider scope.

        RuleOverride(symbol="BTC/USDT:USDT", warning_distance=0.2, repeat_interval_s=None)
    """

    account: str | None
    symbol: str | None
    values: tuple[tuple[str, float | None], ...]

    def __init__(self, account: str | None = None, symbol: str | None = None, **values: float | None) -> None:
        if account is None and symbol is None:
            raise ValueError(
                "an override names an account, a symbol, or both (the global values are the default)"
            )
        for name, value in values.items():
            check_threshold(name, value)
        object.__setattr__(self, "account", account)
        object.__setattr__(self, "symbol", symbol)
        object.__setattr__(self, "values", tuple(sorted(values.items())))

    @classmethod
    def of(cls, account: str | None, symbol: str | None, values: Mapping[str, float | None]) -> RuleOverride:
        """An override from a mapping of threshold names to values (a configuration table)."""
        return cls(account, symbol, **values)

    def value(self, name: str) -> float | Unset | None:
        """The override's value for a threshold, UNSET when it inherits it."""
        return dict(self.values).get(name, UNSET)

    @property
    def specificity(self) -> int:
        """Wider scopes apply first: account (1), then symbol (2), then account and symbol (3)."""
        return (1 if self.account is not None else 0) + (2 if self.symbol is not None else 0)

    def applies_to(self, account: str | None, symbol: str | None) -> bool:
        """Whether it shapes the thresholds of `symbol` in `account` (None: no account, or account-wide)."""
        if self.account is not None and self.account != account:
            return False
        return self.symbol is None or self.symbol == symbol

    def over(self, base: Thresholds) -> Thresholds:
        # Each value was checked against its threshold's domain on the way in.
        changes: dict[str, Any] = dict(self.values)
        return replace(base, **changes) if changes else base


Scope = tuple[str | None, str | None]  # (account, symbol); None: every account, or account-wide


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Global thresholds and their overrides. Every combination of scopes that can occur is checked when the
    set is built, so `resolve` never fails later, in the middle of a decision."""

    defaults: Thresholds = field(default_factory=Thresholds)
    overrides: tuple[RuleOverride, ...] = ()
    _by_scope: dict[Scope, tuple[RuleOverride, ...]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )
    # Resolved thresholds by scope: decisions ask for the same few scopes on every tick.
    _resolved: dict[Scope, Thresholds] = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        for override in self.overrides:
            scope = (override.account, override.symbol)
            self._by_scope[scope] = (*self._by_scope.get(scope, ()), override)
        # Widest scope first, then in the order the overrides were given, so the first problem reported is the
        # one a person fixes first.
        accounts = dict.fromkeys([None, *(account for account, _ in self._by_scope if account is not None)])
        shared = [symbol for account, symbol in self._by_scope if account is None and symbol is not None]
        for account in accounts:
            own = [s for a, s in self._by_scope if account is not None and a == account and s is not None]
            # Values were checked one by one on the way in; only the order of warning and critical can break
            # in combination, so a symbol's table needs checking under an account that changes one of those.
            ordering = account is None or any(
                name in ORDERED_THRESHOLDS
                for override in self._by_scope.get((account, None), ())
                for name, _ in override.values
            )
            for symbol in dict.fromkeys([None, *(shared if ordering else ()), *own]):
                problem = order_problem(self._ordered(account, symbol))
                if problem is not None:
                    problem.scope = (account, symbol)
                    raise problem

    def _scopes(self, account: str | None, symbol: str | None) -> list[Scope]:
        """The override scopes that shape (account, symbol), widest first."""
        scopes: list[Scope] = []
        if account is not None:
            scopes.append((account, None))
        if symbol is not None:
            scopes.append((None, symbol))
            if account is not None:
                scopes.append((account, symbol))
        return scopes

    def _ordered(self, account: str | None, symbol: str | None) -> dict[str, float | None]:
        """The ordered thresholds' values for (account, symbol), without building a whole Thresholds."""
        values = {name: getattr(self.defaults, name) for name in ORDERED_THRESHOLDS}
        for scope in self._scopes(account, symbol):
            for override in self._by_scope.get(scope, ()):
                values.update((name, value) for name, value in override.values if name in ORDERED_THRESHOLDS)
        return values

    def resolve(self, account: str | None, symbol: str | None) -> Thresholds:
        """The thresholds for `symbol` in `account` (`symbol` None: account-wide rules such as the cross margin
        ratio and the private streams' `stale_after_s`; `account` None: an account without overrides).
        Scopes apply widest first: global, account, symbol, account and symbol; each names what it changes."""
        known = self._resolved.get((account, symbol))
        if known is not None:
            return known
        # Laid over the defaults at once: only the final values need to be coherent, not each step.
        values: dict[str, Any] = {}
        for scope in self._scopes(account, symbol):
            for override in self._by_scope.get(scope, ()):
                values.update(override.values)
        thresholds = replace(self.defaults, **values) if values else self.defaults
        self._resolved[(account, symbol)] = thresholds
        return thresholds

    def named_symbols(self, account: str | None) -> frozenset[str]:
        """The symbols some override names for `account` (its own, and every account's): those whose
        thresholds may differ from `resolve(account, None)`'s. Any other symbol resolves as the account does."""
        return frozenset(s for a, s in self._by_scope if s is not None and a in (None, account))

    def for_account(self, account: str) -> Thresholds:
        """The thresholds for account-wide rules (cross margin ratio, private streams)."""
        return self.resolve(account, None)

    def for_symbol(self, account: str, symbol: str) -> Thresholds:
        return self.resolve(account, symbol)


@dataclass(frozen=True, slots=True)
class Silence:
    """Mute an account (`symbol` None: every alert of it) or one symbol in it, until `until` (unix seconds)."""

    account: str
    symbol: str | None
    until: float

    def mutes(self, account: str, symbol: str | None, now: float) -> bool:
        if now >= self.until or account != self.account:
            return False
        return self.symbol is None or self.symbol == symbol

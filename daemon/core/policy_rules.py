"""Alert thresholds as data: global values, overridden per account, per symbol, or per account and symbol.

A distance is the fraction of the mark price the market must move against a position to reach its liquidation
price (0.05 = 5 %); a margin ratio is maintenance margin over margin balance (1.0 = liquidation). A threshold set
to None is switched off.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields, replace


@dataclass(frozen=True, slots=True)
class Thresholds:
    """When an alert fires, how it settles, and how often it repeats.

    Warning fires at `distance <= warning_distance` or `margin_ratio >= warning_margin_ratio`; critical likewise.
    A level is left only once the figure is back past its threshold by `hysteresis` (in the figure's own unit),
    so a price hovering at a threshold does not flap. A level must hold `min_duration_s` before it is reported
    (leaving a level is reported at once). While firing, the alert is sent again every `repeat_interval_s`
    (None: never). `divergence_tolerance` is the relative gap between the model's liquidation price and the
    exchange's beyond which a divergence warning fires. `unknown_grace_s` is how long a position's figures may
    stay unknown while every stream is fresh before marginguard warns that it cannot judge that position.
    """

    warning_distance: float | None = 0.10
    critical_distance: float | None = 0.05
    warning_margin_ratio: float | None = 0.80
    critical_margin_ratio: float | None = 0.90
    hysteresis: float = 0.01
    min_duration_s: float = 0.0
    repeat_interval_s: float | None = 900.0
    divergence_tolerance: float = 0.02
    unknown_grace_s: float = 60.0

    def __post_init__(self) -> None:
        if (
            self.warning_distance is not None
            and self.critical_distance is not None
            and self.critical_distance > self.warning_distance
        ):
            raise ValueError("critical_distance must not be wider than warning_distance")
        if (
            self.warning_margin_ratio is not None
            and self.critical_margin_ratio is not None
            and self.critical_margin_ratio < self.warning_margin_ratio
        ):
            raise ValueError("critical_margin_ratio must not be below warning_margin_ratio")
        negatives = [
            name
            for name in ("hysteresis", "min_duration_s", "divergence_tolerance", "unknown_grace_s")
            if getattr(self, name) < 0.0
        ]
        if negatives:
            raise ValueError(f"must not be negative: {', '.join(negatives)}")
        if self.repeat_interval_s is not None and self.repeat_interval_s <= 0.0:
            raise ValueError("repeat_interval_s must be positive (or None for no repeats)")


class Unset(enum.Enum):
    """Marks an override field that inherits, as opposed to None, which switches a threshold off."""

    UNSET = "unset"


UNSET = Unset.UNSET


@dataclass(frozen=True, slots=True)
class RuleOverride:
    """Thresholds for one scope: an account (`symbol` None), a symbol in every account (`account` None), or a
    symbol in one account. Fields left UNSET inherit from the wider scope."""

    account: str | None = None
    symbol: str | None = None
    warning_distance: float | Unset | None = UNSET
    critical_distance: float | Unset | None = UNSET
    warning_margin_ratio: float | Unset | None = UNSET
    critical_margin_ratio: float | Unset | None = UNSET
    hysteresis: float | Unset = UNSET
    min_duration_s: float | Unset = UNSET
    repeat_interval_s: float | Unset | None = UNSET
    divergence_tolerance: float | Unset = UNSET
    unknown_grace_s: float | Unset = UNSET

    def __post_init__(self) -> None:
        if self.account is None and self.symbol is None:
            raise ValueError(
                "an override names an account, a symbol, or both (the global values are the default)"
            )

    @property
    def specificity(self) -> int:
        """Wider scopes apply first: account (1), then symbol (2), then account and symbol (3)."""
        return (1 if self.account is not None else 0) + (2 if self.symbol is not None else 0)

    def applies_to(self, account: str, symbol: str | None) -> bool:
        if self.account is not None and self.account != account:
            return False
        return self.symbol is None or self.symbol == symbol

    def over(self, base: Thresholds) -> Thresholds:
        values = {
            spec.name: getattr(self, spec.name)
            for spec in fields(Thresholds)
            if getattr(self, spec.name) is not UNSET
        }
        return replace(base, **values)


@dataclass(frozen=True, slots=True)
class RuleSet:
    defaults: Thresholds = field(default_factory=Thresholds)
    overrides: tuple[RuleOverride, ...] = ()

    def for_account(self, account: str) -> Thresholds:
        """The thresholds for account-wide rules (cross margin ratio, stale streams)."""
        return self._resolve(account, None)

    def for_symbol(self, account: str, symbol: str) -> Thresholds:
        return self._resolve(account, symbol)

    def _resolve(self, account: str, symbol: str | None) -> Thresholds:
        chosen = sorted(
            (o for o in self.overrides if o.applies_to(account, symbol)), key=lambda o: o.specificity
        )
        thresholds = self.defaults
        for override in chosen:
            thresholds = override.over(thresholds)
        return thresholds


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

"""From validated settings to the core's and the connector's own value types.

Settings speak the configuration file's language (sections, overrides, optional ceilings); the core takes plain
frozen values. Keeping the translation in one place means neither side knows the other's shape.
"""

from __future__ import annotations

from typing import Any

from daemon.app.settings import Settings
from daemon.app.settings_models import RuleOverrides
from daemon.core.policy_rules import RuleOverride, RuleSet, Thresholds
from daemon.core.topup import TopUpLimits
from daemon.exchanges.feeds import FeedSettings
from daemon.exchanges.marketdata import HubSettings

# Threshold fields shared by the settings and the core (`stale_after_s` belongs to the connector instead).
_THRESHOLD_FIELDS = (
    "warning_distance",
    "critical_distance",
    "warning_margin_ratio",
    "critical_margin_ratio",
    "hysteresis",
    "min_duration_s",
    "repeat_interval_s",
    "divergence_tolerance",
)


def _given(overrides: RuleOverrides) -> dict[str, Any]:
    return {name: value for name, value in overrides.given().items() if name in _THRESHOLD_FIELDS}


def rule_set(settings: Settings) -> RuleSet:
    """Global thresholds, then per-symbol, per-account and per-account-and-symbol overrides."""
    base = settings.rules.base
    defaults = Thresholds(**{name: getattr(base, name) for name in _THRESHOLD_FIELDS})
    overrides: list[RuleOverride] = [
        RuleOverride(symbol=symbol, **_given(values)) for symbol, values in settings.rules.symbols.items()
    ]
    for account in settings.accounts:
        if account.rules is None:
            continue
        overrides.append(RuleOverride(account=account.id, **_given(account.rules)))
        overrides.extend(
            RuleOverride(account=account.id, symbol=symbol, **_given(values))
            for symbol, values in account.rules.symbols.items()
        )
    return RuleSet(defaults, tuple(overrides))


def topup_limits(settings: Settings, account_id: str) -> TopUpLimits | None:
    """The account's top-up limits, or None when automatic top-up is off for it."""
    topup = settings.topup_for(account_id)
    if not topup.enabled or topup.max_per_action is None or topup.max_per_account_per_day is None:
        return None
    return TopUpLimits(
        trigger_distance=topup.trigger_distance,
        target_distance=topup.target_distance,
        max_per_action=topup.max_per_action,
        max_per_account_per_day=topup.max_per_account_per_day,
        max_per_position_per_day=topup.max_per_position_per_day,
        min_free_balance=topup.min_free_balance,
        cooldown_s=topup.cooldown_s,
        max_attempts=topup.max_attempts,
        cross_transfer_from=topup.cross_transfer_from,
    )


def feed_settings(settings: Settings, account_id: str) -> FeedSettings:
    """Reconciliation and freshness for one account's private streams (the connector's defaults: a REST
    snapshot every 60 s and after every reconnect; private streams judged by keepalive, not silence)."""
    return FeedSettings()


def hub_settings(settings: Settings) -> HubSettings:
    """Mark streams go stale past the global `stale_after_s`."""
    return HubSettings(stale_after_s=settings.rules.stale_after_s)

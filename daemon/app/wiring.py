"""From validated settings to the core's and the connector's own value types.

Settings speak the configuration file's language (sections, overrides, optional ceilings); the core takes plain
frozen values. Keeping the translation in one place means neither side knows the other's shape.
"""

from __future__ import annotations

from daemon.app.settings import Settings
from daemon.core.policy_rules import RuleSet
from daemon.core.topup import TopUpLimits
from daemon.exchanges.feeds import FeedSettings
from daemon.exchanges.hub_settings import HubSettings


def rule_set(settings: Settings) -> RuleSet:
    """Global thresholds, then per-account, per-symbol and per-account-and-symbol overrides (see
    `RuleSet.resolve`, which the feeds use for each stream's `stale_after_s` too)."""
    return settings.rule_set()


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


# A private stream down this many times its account's `stale_after_s` is rebuilt from scratch (see
# `FeedSettings.give_up_after_s`): long past the stale alert, so only a stream that cannot come back on its own.
GIVE_UP_AFTER_STALE = 4.0


def feed_settings(settings: Settings, account_id: str) -> FeedSettings:
    """Reconciliation and freshness for one account's streams (the connector's defaults: a REST snapshot every
    60 s and after every reconnect). Mark streams go STALE for this account past its own `stale_after_s`, per
    symbol where its rules say so (`RuleSet.resolve`). Private streams push only on change, so their silence
    is not judged; a DOWN one counts as blind past the account's `stale_after_s` (the stale-data policy), and
    one down `GIVE_UP_AFTER_STALE` times that fails the feed, and the supervisor starts the account again on a
    new client."""
    rules = settings.rule_set()
    stale_after_s = rules.resolve(account_id, None).stale_after_s
    return FeedSettings(
        give_up_after_s=GIVE_UP_AFTER_STALE * stale_after_s,
        mark_stale_after_s=stale_after_s,
        mark_stale_after_s_by_symbol={
            symbol: rules.resolve(account_id, symbol).stale_after_s
            for symbol in rules.named_symbols(account_id)
        },
    )


# From this many accounts on one environment a hub reads the venue's stream of every market's marks (where it
# has one) instead of one stream per symbol. That stream costs the whole venue's marks each second (about 600
# on Binance USD-M, some 60 ms of CPU): worth it once the symbols followed are a good part of the venue's, and
# measured at 1,000 accounts x 3 legs over 500 symbols (`bench/scale.py`): 16 % less CPU, ready 4 s sooner.
ALL_MARKETS_FROM_ACCOUNTS = 100


def hub_settings(settings: Settings, accounts: int = 1) -> HubSettings:
    """The hub's own threshold (the global `stale_after_s`), for listeners that bring none; `accounts`: how
    many accounts share the hub (see ALL_MARKETS_FROM_ACCOUNTS)."""
    return HubSettings(
        stale_after_s=settings.rule_set().defaults.stale_after_s,
        all_markets=accounts >= ALL_MARKETS_FROM_ACCOUNTS,
    )

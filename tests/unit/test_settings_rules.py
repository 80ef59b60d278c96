"""Alert thresholds as an operator sets them: every threshold the policy uses is a key in each `[rules]`
table, takes effect in its scope, and a value that would switch a safeguard off by accident is refused."""

from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.app.settings import SettingsError, load_settings, settings_from_document
from daemon.app.wiring import rule_set
from daemon.core.policy_rules import (
    DOMAINS,
    THRESHOLD_NAMES,
    Domain,
    RuleOverride,
    RuleSet,
    ThresholdError,
    Thresholds,
)
from tests.unit.settings_samples import BINANCE_ACCOUNT, write

BTC = "BTC/USDT:USDT"
ACCOUNT = {"id": "main", "exchange": "binanceusdm", "mode": "demo", "api_key": "k" * 12, "secret": "s" * 12}


def in_domain(domain: Domain) -> st.SearchStrategy[float]:
    high = domain.high if domain.high is not None else 1e6
    return st.floats(
        min_value=domain.low,
        max_value=high,
        exclude_min=domain.low_open,
        exclude_max=domain.high is not None and domain.high_open,
        allow_nan=False,
    )


def with_rules(tmp_path: Path, rules: dict[str, Any], account_rules: dict[str, Any] | None = None) -> Any:
    account = {**ACCOUNT, "rules": account_rules} if account_rules is not None else ACCOUNT
    return settings_from_document({"rules": rules, "accounts": [account]}, env={}, base_dir=tmp_path)


def test_the_settings_know_exactly_the_thresholds_the_policy_uses() -> None:
    from daemon.app.settings_rules import AccountRules, RulesSettings, SymbolRules

    assert set(SymbolRules.model_fields) == set(THRESHOLD_NAMES)
    assert set(AccountRules.model_fields) == {*THRESHOLD_NAMES, "symbols"}
    assert set(RulesSettings.model_fields) == {*THRESHOLD_NAMES, "symbols"}
    # The global table's defaults are the core's.
    assert RulesSettings().given() == {f.name: f.default for f in fields(Thresholds)}


@given(data=st.data())
def test_any_accepted_threshold_is_wired_in_every_scope(tmp_path_factory: Any, data: st.DataObject) -> None:
    tmp_path = tmp_path_factory.mktemp("rules")
    name = data.draw(
        st.sampled_from([n for n in THRESHOLD_NAMES if "distance" not in n and "ratio" not in n])
    )
    value = data.draw(in_domain(DOMAINS[name]))
    scope = data.draw(st.sampled_from(["global", "symbol", "account", "account-symbol"]))
    tables: dict[str, tuple[dict[str, Any], dict[str, Any] | None]] = {
        "global": ({name: value}, None),
        "symbol": ({"symbols": {BTC: {name: value}}}, None),
        "account": ({}, {name: value}),
        "account-symbol": ({}, {"symbols": {BTC: {name: value}}}),
    }
    rules = rule_set(with_rules(tmp_path, *tables[scope]))
    assert getattr(rules.resolve("main", BTC), name) == value
    if scope == "global":
        assert getattr(rules.resolve("other", None), name) == value
    else:  # narrower scopes leave the rest alone
        assert getattr(rules.resolve("other", None), name) == getattr(Thresholds(), name)


def test_per_account_and_per_symbol_stale_after_s_take_effect(tmp_path: Path) -> None:
    # Before: accepted by the settings, dropped on the way to the policy.
    config = write(
        tmp_path,
        BINANCE_ACCOUNT
        + f'[accounts.rules]\nstale_after_s = 12\n[accounts.rules.symbols."{BTC}"]\nstale_after_s = 7\n'
        + '[rules.symbols."ETH/USDT:USDT"]\nstale_after_s = 90\n',
    )
    rules = rule_set(load_settings(config, env={}))
    assert rules.resolve("main", None).stale_after_s == 12
    assert rules.resolve("main", BTC).stale_after_s == 7
    assert rules.resolve("main", "ETH/USDT:USDT").stale_after_s == 90
    assert rules.resolve("other", None).stale_after_s == 30
    # What a feed needs to give each mark stream its own threshold.
    assert rules.named_symbols("main") == {BTC, "ETH/USDT:USDT"}
    assert rules.named_symbols("other") == {"ETH/USDT:USDT"}


@pytest.mark.parametrize("bad", ["inf", "-inf", "nan"])
@pytest.mark.parametrize(
    ("table", "path"),
    [
        ("[topup]\nmax_per_action", "topup.max_per_action"),
        ("[topup]\nmax_per_account_per_day", "topup.max_per_account_per_day"),
        ("[topup]\nmax_per_position_per_day", "topup.max_per_position_per_day"),
        ("[topup]\ncooldown_s", "topup.cooldown_s"),
        ("[topup]\nmin_free_balance", "topup.min_free_balance"),
        ("[rules]\nstale_after_s", "rules.stale_after_s"),
        ("[rules]\nrepeat_interval_s", "rules.repeat_interval_s"),
        ("[rules]\nmin_duration_s", "rules.min_duration_s"),
        (f'[rules.symbols."{BTC}"]\nwarning_distance', f'rules.symbols."{BTC}".warning_distance'),
        ("[daemon]\nshutdown_timeout_s", "daemon.shutdown_timeout_s"),
        (BINANCE_ACCOUNT + "[accounts.topup]\nmax_per_action", "accounts[0].topup.max_per_action"),
        (BINANCE_ACCOUNT + "[accounts.rules]\nunknown_grace_s", "accounts[0].rules.unknown_grace_s"),
    ],
)
def test_a_non_finite_amount_or_duration_is_refused_naming_the_field(
    tmp_path: Path, table: str, path: str, bad: str
) -> None:
    # Before: `max_per_action = inf` was a ceiling that never stops anything.
    with pytest.raises(SettingsError) as raised:
        load_settings(write(tmp_path, f"{table} = {bad}\n"), env={})
    assert raised.value.field_path == path
    assert "finite" in raised.value.message


def test_a_non_finite_value_from_the_environment_is_refused_too(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"^config error: topup\.max_per_action: .*finite"):
        load_settings(write(tmp_path, ""), env={"MARGINGUARD_TOPUP__MAX_PER_ACTION": "Infinity"})


@pytest.mark.parametrize(
    ("account_rules", "global_rules", "path"),
    [
        # The account's critical distance is wider than a symbol table's warning distance, for that symbol.
        ({"critical_distance": 0.09}, {"symbols": {BTC: {"warning_distance": 0.08}}}, "accounts[0].rules"),
        (
            {"symbols": {BTC: {"critical_distance": 0.2}}},
            {},
            f'accounts[0].rules.symbols."{BTC}"',
        ),
        ({}, {"warning_margin_ratio": 0.9}, "rules"),
    ],
)
def test_thresholds_that_contradict_once_combined_name_the_table_at_fault(
    tmp_path: Path, account_rules: dict[str, Any], global_rules: dict[str, Any], path: str
) -> None:
    with pytest.raises(SettingsError) as raised:
        with_rules(tmp_path, global_rules, account_rules)
    assert raised.value.field_path.rpartition(".")[0] == path
    assert raised.value.message.startswith("must be")


def test_a_key_that_is_no_threshold_is_refused_in_every_table(tmp_path: Path) -> None:
    for rules, account_rules, path in (
        ({"stale_after": 10}, None, "rules.stale_after"),
        ({"symbols": {BTC: {"symbols": {}}}}, None, f'rules.symbols."{BTC}".symbols'),
        ({}, {"max_per_action": 5}, "accounts[0].rules.max_per_action"),
    ):
        with pytest.raises(SettingsError) as raised:
            with_rules(tmp_path, rules, account_rules)
        assert raised.value.field_path == path
        assert raised.value.message.startswith("unknown key (not a marginguard setting)")
    with pytest.raises(SettingsError) as raised:  # a near miss is answered with the key it was meant to be
        with_rules(tmp_path, {"stale_after": 10}, None)
    assert raised.value.message.endswith("; did you mean 'stale_after_s'?")


def test_domains_refuse_what_their_messages_say() -> None:
    assert Domain(0.0, 1.0).problem(1.0) == "must be less than 1"
    assert Domain(0.0, low_open=False).problem(-1.0) == "must be at least 0"
    assert Domain(0.0).problem(math.nan) == "must be a finite number"
    assert Domain(0.0).problem(True) == "must be a number"
    assert Domain(0.0).problem(None) == "required (it cannot be switched off)"
    assert Domain(0.0, can_be_off=True).problem(None) is None


fractions = st.sampled_from([None, 0.02, 0.04, 0.06, 0.08, 0.1, 0.2])
ratios = st.sampled_from([None, 0.5, 0.7, 0.8, 0.85, 0.9])


@st.composite
def overrides(draw: st.DrawFn) -> RuleOverride:
    account = draw(st.sampled_from([None, "a", "b"]))
    symbol = draw(st.sampled_from([None, "X", "Y"] if account is not None else ["X", "Y"]))
    names = {
        "warning_distance": fractions,
        "critical_distance": fractions,
        "warning_margin_ratio": ratios,
        "critical_margin_ratio": ratios,
        "min_duration_s": st.sampled_from([0.0, 5.0]),
    }
    chosen = draw(st.lists(st.sampled_from(sorted(names)), unique=True, max_size=3))
    values = {name: draw(names[name]) for name in chosen}
    return RuleOverride.of(account, symbol, {k: v for k, v in values.items() if v is not None})


@given(st.lists(overrides(), max_size=6))
def test_a_rule_set_is_accepted_exactly_when_every_scope_resolves(
    given_overrides: list[RuleOverride],
) -> None:
    """The up-front check (which skips combinations that cannot differ) agrees with trying every one."""

    def every_scope_resolves() -> bool:
        try:
            for account in (None, "a", "b", "c"):
                for symbol in (None, "X", "Y", "Z"):
                    # Brute force: every override that applies, narrowest last, laid over the defaults.
                    values: dict[str, Any] = {}
                    for override in sorted(
                        (o for o in given_overrides if o.applies_to(account, symbol)),
                        key=lambda o: o.specificity,
                    ):
                        values.update(override.values)
                    Thresholds(**values)
        except ThresholdError:
            return False
        return True

    expected = every_scope_resolves()
    try:
        rules = RuleSet(Thresholds(), tuple(given_overrides))
    except ThresholdError:
        assert not expected
        return
    assert expected
    assert rules.resolve("a", "X") == rules.resolve("a", "X")  # and resolving never fails afterwards

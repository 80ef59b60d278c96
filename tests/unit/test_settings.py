"""Settings as an operator meets them: defaults, a TOML file, environment overrides, secret files,
per-account and per-symbol overrides, routing, and the shipped example and demo configurations."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from daemon.app.settings import SettingsError, load_settings, settings_from_document
from daemon.app.settings_models import (
    AccountSettings,
    DaemonSettings,
    RouteSettings,
    SinkSettings,
    TopUpSettings,
)
from daemon.app.settings_rules import RulesSettings
from daemon.app.settings_view import secret_values
from tests.unit.settings_samples import (
    API_KEY,
    BINANCE_ACCOUNT,
    BOT_TOKEN,
    DEMO,
    EXAMPLE,
    PASSPHRASE,
    SECRET,
    write,
)

# ---- defaults and precedence ----


def test_defaults_without_a_file() -> None:
    settings = load_settings(None, env={})

    assert settings.accounts == [] and settings.sinks == [] and settings.routes == []
    assert settings.daemon.http_bind == "127.0.0.1:9108"
    assert settings.daemon.log_format == "auto"
    assert settings.daemon.shutdown_timeout_s == 10
    assert settings.daemon.storage_path == Path.cwd() / "marginguard.sqlite"
    rules = settings.rules
    assert (rules.warning_distance, rules.critical_distance) == (0.10, 0.05)
    assert (rules.warning_margin_ratio, rules.critical_margin_ratio) == (0.70, 0.85)
    assert (rules.hysteresis, rules.min_duration_s, rules.repeat_interval_s) == (0.01, 5, 900)
    assert (rules.stale_after_s, rules.divergence_tolerance) == (30, 0.005)
    topup = settings.topup
    assert (topup.enabled, topup.dry_run, topup.trigger_distance, topup.target_distance) == (
        False,
        False,
        0.05,
        0.15,
    )
    assert (topup.cooldown_s, topup.max_attempts, topup.cross_transfer_from) == (300, 3, None)
    assert topup.max_per_action is None  # no ceiling configured is "not set", never 0


def test_journal_lives_next_to_the_config_or_in_the_systemd_state_directory(tmp_path: Path) -> None:
    config = write(tmp_path, "")
    assert load_settings(config, env={}).daemon.storage_path == tmp_path / "marginguard.sqlite"

    state = tmp_path / "state"
    settings = load_settings(config, env={"STATE_DIRECTORY": str(state)})
    assert settings.daemon.storage_path == state / "marginguard.sqlite"

    elsewhere = tmp_path / "elsewhere" / "journal.sqlite"
    absolute = write(tmp_path, f'[daemon]\nstorage_path = "{elsewhere}"\n', "abs.toml")
    assert load_settings(absolute, env={"STATE_DIRECTORY": str(state)}).daemon.storage_path == elsewhere


def test_environment_overrides_the_file_key_by_key(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        "[rules]\nwarning_distance = 0.2\ncritical_distance = 0.04\n\n[daemon]\nlog_format = 'console'\n",
    )
    env = {"MARGINGUARD_RULES__WARNING_DISTANCE": "0.12", "MARGINGUARD_DAEMON__HTTP_BIND": "127.0.0.1:9999"}

    settings = load_settings(config, env=env)

    assert settings.rules.warning_distance == 0.12  # environment wins
    assert settings.rules.critical_distance == 0.04  # the file's other keys in the section survive
    assert settings.daemon.log_format == "console"
    assert settings.daemon.http_bind == "127.0.0.1:9999"


def test_secrets_directory_sits_between_the_file_and_the_environment(tmp_path: Path) -> None:
    config = write(tmp_path, "[rules]\nwarning_distance = 0.2\nstale_after_s = 60\n")
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "marginguard_rules__warning_distance").write_text("0.15\n")
    (secrets / "marginguard_rules__stale_after_s").write_text("45\n")

    from_dir = load_settings(config, env={"MARGINGUARD_SECRETS_DIR": str(secrets)})
    assert (from_dir.rules.warning_distance, from_dir.rules.stale_after_s) == (0.15, 45)

    env = {"MARGINGUARD_RULES__STALE_AFTER_S": "20", "CREDENTIALS_DIRECTORY": str(secrets)}
    both = load_settings(config, env=env)
    assert (both.rules.warning_distance, both.rules.stale_after_s) == (0.15, 20)


def test_secrets_come_from_files_and_environment_variables(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "api_key").write_text(API_KEY + "\n")  # editors add the newline; it is not the key
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text(SECRET)
    config = write(
        tmp_path,
        f"""
[[accounts]]
id = "okx-1"
exchange = "okx"
mode = "testnet"
api_key_file = "keys/api_key"
secret_file = "{secret_file}"
password_env = "OKX_PASSPHRASE"

[[sinks]]
name = "chat"
type = "telegram"
bot_token_env = "BOT_TOKEN"
chat_id = -100123
""",
    )

    settings = load_settings(config, env={"OKX_PASSPHRASE": PASSPHRASE, "BOT_TOKEN": BOT_TOKEN})

    account = settings.account_configs()[0]
    assert (account.api_key, account.secret, account.password) == (API_KEY, SECRET, PASSPHRASE)
    assert (account.account_id, account.exchange, account.mode, account.symbols) == (
        "okx-1",
        "okx",
        "testnet",
        None,
    )
    sink = settings.sinks[0]
    assert sink.bot_token is not None and sink.bot_token.get_secret_value() == BOT_TOKEN
    assert sink.chat_id == "-100123"
    assert secret_values(settings) >= {API_KEY, SECRET, PASSPHRASE, BOT_TOKEN}


@pytest.mark.parametrize(
    ("account_lines", "env", "field", "words"),
    [
        ('api_key_env = "NOPE"\nsecret = "s-0123456789"', {}, "accounts[0].api_key_env", "NOPE is not set"),
        (
            'api_key = "k-0123456789"\nsecret_file = "missing.txt"',
            {},
            "accounts[0].secret_file",
            "cannot read",
        ),
        ('api_key_file = "empty.txt"\nsecret = "s-0123456789"', {}, "accounts[0].api_key_file", "is empty"),
    ],
)
def test_an_unusable_secret_source_names_its_field(
    tmp_path: Path, account_lines: str, env: dict[str, str], field: str, words: str
) -> None:
    (tmp_path / "empty.txt").write_text("\n")
    config = write(tmp_path, f'[[accounts]]\nid = "a"\nexchange = "bybit"\nmode = "demo"\n{account_lines}\n')

    with pytest.raises(SettingsError) as raised:
        load_settings(config, env=env)

    assert raised.value.field_path == field
    assert words in str(raised.value)
    assert str(raised.value).startswith(f"config error: {field}: ") and "\n" not in str(raised.value)


# ---- merging per-account and per-symbol overrides, routing ----


def test_account_and_symbol_overrides_lay_over_the_global_sections(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        BINANCE_ACCOUNT
        + """
[accounts.rules]
warning_distance = 0.2

[accounts.rules.symbols."ETH/USDT:USDT"]
critical_distance = 0.08

[accounts.topup]
enabled = true
max_per_action = 50.0
max_per_account_per_day = 500.0

[rules.symbols."ETH/USDT:USDT"]
warning_distance = 0.15

[rules.symbols."BTC/USDT:USDT"]
warning_distance = 0.07
critical_distance = 0.03
""",
    )
    settings = load_settings(config, env={})

    rules = settings.rule_set()
    main = rules.resolve("main", None)
    assert main.warning_distance == 0.2 and main.critical_distance == 0.05
    eth = rules.resolve("main", "ETH/USDT:USDT")
    assert (eth.warning_distance, eth.critical_distance) == (0.15, 0.08)
    assert rules.resolve("main", "BTC/USDT:USDT").warning_distance == 0.07
    assert rules.resolve("main", "SOL/USDT:USDT").warning_distance == 0.2
    assert rules.resolve("other", "SOL/USDT:USDT").warning_distance == 0.10
    topup = settings.topup_for("main")
    assert (topup.enabled, topup.max_per_action, topup.target_distance) == (True, 50.0, 0.15)
    assert settings.topup.enabled is False  # the global section is unchanged


def test_an_account_can_switch_off_an_inherited_transfer_source(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        '[topup]\ncross_transfer_from = "spot"\n'
        + BINANCE_ACCOUNT
        + '[accounts.topup]\ncross_transfer_from = ""\n',
    )

    settings = load_settings(config, env={})

    assert settings.topup.cross_transfer_from == "spot"
    assert settings.topup_for("main").cross_transfer_from is None  # cross positions: alert only


def test_a_configuration_built_in_code_gets_the_same_sources_and_checks(tmp_path: Path) -> None:
    document = {
        "accounts": [{"id": "b", "exchange": "bybit", "mode": "demo", "api_key_env": "K", "secret": "s"}]
    }
    env = {"K": API_KEY, "MARGINGUARD_RULES__STALE_AFTER_S": "12"}

    settings = settings_from_document(document, env=env, base_dir=tmp_path)

    assert settings.account_configs()[0].api_key == API_KEY
    assert settings.rules.stale_after_s == 12
    assert settings.daemon.storage_path == tmp_path / "marginguard.sqlite"
    with pytest.raises(SettingsError, match=r"^config error: accounts\[0\]\.secret: bybit needs it"):
        settings_from_document({"accounts": [{**document["accounts"][0], "secret": None}]}, env=env)


def test_routes_pick_sinks_by_severity_and_account(tmp_path: Path) -> None:
    sinks = "".join(
        f'\n[[sinks]]\nname = "{name}"\ntype = "webhook"\nurl = "http://127.0.0.1:9/{name}"\n'
        for name in ("all", "pager")
    )
    unrouted = load_settings(write(tmp_path, BINANCE_ACCOUNT + sinks, "a.toml"), env={})
    assert [s.name for s in unrouted.sinks_for("main", "info")] == ["all", "pager"]

    routes = """
[[routes]]
sinks = ["all"]

[[routes]]
severities = ["critical"]
accounts = ["main"]
sinks = ["pager"]
"""
    routed = load_settings(write(tmp_path, BINANCE_ACCOUNT + sinks + routes, "b.toml"), env={})
    assert [s.name for s in routed.sinks_for("main", "warning")] == ["all"]
    assert [s.name for s in routed.sinks_for("main", "critical")] == ["all", "pager"]


# ---- the shipped configurations ----


def test_every_example_key_is_commented() -> None:
    lines = EXAMPLE.read_text().splitlines()
    section, seen = "", set()
    for index, line in enumerate(lines):
        text = line.strip()
        if text.startswith("["):
            section = re.sub(r'"[^"]*"', "*", text.strip("[]"))  # one entry per table kind
        elif text and not text.startswith("#") and "=" in text:
            key = (section, text.split("=")[0].strip())
            if key not in seen:  # a key's first appearance explains it, above or beside
                seen.add(key)
                assert "#" in text or lines[index - 1].strip().startswith("#"), f"line {index + 1}: {line}"


def test_the_example_mentions_every_setting() -> None:
    text = EXAMPLE.read_text()
    sections = (DaemonSettings, RulesSettings, TopUpSettings, AccountSettings, SinkSettings, RouteSettings)
    for section in sections:
        for name in section.model_fields:
            if name.endswith(("_env", "_file")):
                continue  # the <name>_env / <name>_file forms are explained once, at the top
            assert re.search(rf"\b{name}\b", text), f"{section.__name__}.{name} is not in the example"


def test_demo_config_points_one_account_at_the_simulator_with_live_topups() -> None:
    settings = load_settings(DEMO, env={})

    (account,) = settings.account_configs()
    assert account.exchange == "binanceusdm" and account.mode == "demo"
    urls = account.ccxt_config["urls"]
    assert all(url.startswith("http://127.0.0.1:") for url in urls["api"].values() if isinstance(url, str))
    topup = settings.topup_for(account.account_id)
    assert topup.enabled and not topup.dry_run
    (sink,) = settings.sinks_for(account.account_id, "critical")
    assert sink.type == "webhook" and sink.url is not None
    assert sink.url.get_secret_value().startswith("http://127.0.0.1:")
    assert settings.daemon.storage_path == DEMO.parent / "demo.sqlite"


@pytest.mark.parametrize("bind", ["127.0.0.1:9108", "127.8.0.1:1", "[::1]:9108", "localhost:9108"])
def test_loopback_addresses_need_no_opt_in(tmp_path: Path, bind: str) -> None:
    assert (
        load_settings(write(tmp_path, f'[daemon]\nhttp_bind = "{bind}"\n'), env={}).daemon.http_bind == bind
    )


def test_a_remote_http_bind_is_taken_when_explicitly_allowed(tmp_path: Path) -> None:
    config = write(tmp_path, '[daemon]\nhttp_bind = "0.0.0.0:9108"\nallow_remote_http = true\n')
    assert load_settings(config, env={}).daemon.http_host == "0.0.0.0"
    env = {"MARGINGUARD_DAEMON__HTTP_BIND": "0.0.0.0:9108"}
    with pytest.raises(SettingsError, match=r"^config error: daemon\.http_bind: 0\.0\.0\.0 is reachable"):
        load_settings(write(tmp_path, "", "plain.toml"), env=env)


def test_the_status_page_url_is_a_plain_web_address_stored_without_its_trailing_slash() -> None:
    def page(url: str) -> str | None:
        return settings_from_document({"daemon": {"status_page_url": url}}, env={}).daemon.status_page_url

    assert settings_from_document({}, env={}).daemon.status_page_url is None  # default: text-only messages
    assert page("https://marginguard.example.com/") == "https://marginguard.example.com"
    assert page("http://10.0.0.5:9108/desk/") == "http://10.0.0.5:9108/desk"
    assert page("") is None
    for wrong, said in [
        ("marginguard.example.com", "http:// or https://"),
        ("ftp://marginguard.example.com", "http:// or https://"),
        ("https://user:pass@marginguard.example.com", "no user:password@"),
        ("https://marginguard.example.com/?token=1", "query"),
    ]:
        with pytest.raises(SettingsError, match=re.escape("daemon.status_page_url")) as caught:
            page(wrong)
        assert said in str(caught.value)

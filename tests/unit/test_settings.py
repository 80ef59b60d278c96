"""Settings as an operator meets them: defaults, a TOML file, environment overrides, secret files, and
`marginguard check-config` naming the field of every mistake (exit 2) and never printing a secret."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from daemon.app.settings import SettingsError, load_settings, settings_from_document
from daemon.app.settings_models import (
    AccountSettings,
    DaemonSettings,
    RouteSettings,
    RulesSettings,
    SinkSettings,
    TopUpSettings,
)
from daemon.app.settings_view import effective_config, secret_values

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "marginguard.example.toml"
DEMO = REPO / "config" / "demo.toml"

API_KEY = "k3yAbCdEfGhIjKlMnOpQ7wxyz"
SECRET = "s3cr3t-ZYXWVUTSRQPONM"
PASSPHRASE = "Passphrase-0451"
SLACK_URL = "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXX"
BOT_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
HMAC_SECRET = "hmac-shared-secret-99"

BINANCE_ACCOUNT = """
[[accounts]]
id = "main"
exchange = "binanceusdm"
mode = "demo"
api_key = "key-0123456789"
secret = "secret-0123456789"
"""


def write(tmp_path: Path, text: str, name: str = "marginguard.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def check_config(
    config: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "daemon", "check-config", "--config", str(config), *extra],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
        timeout=60,
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

    absolute = write(tmp_path, '[daemon]\nstorage_path = "/var/lib/mg/journal.sqlite"\n', "abs.toml")
    assert load_settings(absolute, env={"STATE_DIRECTORY": str(state)}).daemon.storage_path == Path(
        "/var/lib/mg/journal.sqlite"
    )


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

    rules = settings.rules_for("main")
    assert rules.warning_distance == 0.2 and rules.critical_distance == 0.05
    eth = rules.for_symbol("ETH/USDT:USDT")
    assert (eth.warning_distance, eth.critical_distance) == (0.15, 0.08)
    assert rules.for_symbol("BTC/USDT:USDT").warning_distance == 0.07
    assert rules.for_symbol("SOL/USDT:USDT").warning_distance == 0.2
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


# ---- check-config: every mistake names its field and exits 2 ----

INVALID_CONFIGS = [
    (
        BINANCE_ACCOUNT.replace("binanceusdm", "binnance"),
        "accounts[0].exchange: unknown exchange 'binnance' (known: binanceusdm, bybit, okx, gate, hyperliquid)",
    ),
    (
        BINANCE_ACCOUNT.replace('"demo"', '"live"'),
        "accounts[0].allow_live: mode = 'live' trades with real money",
    ),
    (
        BINANCE_ACCOUNT.replace('"demo"', '"prod"'),
        "accounts[0].mode: input should be 'demo', 'testnet' or 'live'",
    ),
    (
        BINANCE_ACCOUNT.replace("binanceusdm", "okx"),
        "accounts[0].password: okx needs it: set password, password_env or password_file",
    ),
    (
        BINANCE_ACCOUNT.replace('secret = "', 'secret_env = "X"\nsecret = "'),
        "accounts[0].secret_env: give only one",
    ),
    (BINANCE_ACCOUNT + BINANCE_ACCOUNT, "accounts[1].id: duplicate account id 'main'"),
    # A mistyped secret is reported without being echoed.
    (
        BINANCE_ACCOUNT.replace('api_key = "key-0123456789"', "api_key = 987654321"),
        "accounts[0].api_key: input should be a valid string\n",
    ),
    (BINANCE_ACCOUNT.replace('"main"', '"main account"'), "accounts[0].id: use letters, digits"),
    (
        BINANCE_ACCOUNT + "[accounts.ccxt_config]\napiKey = 'k'\n",
        "accounts[0].ccxt_config.apiKey: put credentials",
    ),
    (
        BINANCE_ACCOUNT + "[accounts.rules]\ncritical_distance = 0.2\n",
        "accounts[0].rules.critical_distance: must be smaller than warning_distance",
    ),
    (
        BINANCE_ACCOUNT + "[accounts.topup]\ntrigger_distance = 0.3\n",
        "accounts[0].topup.target_distance: must be larger than trigger_distance",
    ),
    ("[rules]\ncritical_distance = 0.1\n", "rules.critical_distance: must be smaller than warning_distance"),
    (
        "[rules]\nwarning_margin_ratio = 0.9\n",
        "rules.critical_margin_ratio: must be larger than warning_margin_ratio",
    ),
    (
        '[rules.symbols."BTC/USDT:USDT"]\nwarning_distance = 0.04\n',
        'rules.symbols."BTC/USDT:USDT".critical_distance: must be smaller than warning_distance',
    ),
    ("[rules]\nwarning_distance = 1.5\n", "rules.warning_distance: input should be less than 1"),
    ("[rules]\nwarning_distance = 'far'\n", "rules.warning_distance: input should be a valid number"),
    ("[topup]\ntarget_distance = 0.04\n", "topup.target_distance: must be larger than trigger_distance"),
    ("[topup]\nenabled = true\n", "topup.max_per_action: required when top-up is enabled"),
    (
        "[topup]\nmax_per_action = 100.0\nmax_per_account_per_day = 50.0\n",
        "topup.max_per_action: must not exceed max_per_account_per_day",
    ),
    ("[daemon]\nhtp_bind = '127.0.0.1:1'\n", "daemon.htp_bind: unknown key"),
    ("[daemon]\nhttp_bind = 'localhost'\n", "daemon.http_bind: expected HOST:PORT"),
    ("[daemon]\nlog_format = 'xml'\n", "daemon.log_format: input should be 'auto', 'json' or 'console'"),
    ("[alerts]\nx = 1\n", "alerts: unknown key"),
    ('[sinks]\nname = "s"\n', "sinks: a list of tables: write [[sinks]], not [sinks]"),
    ('[[sinks]]\nname = "s"\ntype = "slack"\n', "sinks[0].url: required for slack"),
    ('[[sinks]]\nname = "s"\ntype = "email"\nurl = "http://x"\n', "sinks[0].type: input should be"),
    ('[[sinks]]\nname = "s"\ntype = "discord"\nurl = "hooks/abc"\n', "sinks[0].url: must be an http"),
    (
        '[[sinks]]\nname = "t"\ntype = "telegram"\nbot_token = "1:x"\n',
        "sinks[0].chat_id: required for telegram",
    ),
    (
        '[[sinks]]\nname = "w"\ntype = "slack"\nurl = "https://x"\nhmac_secret = "abc"\n',
        "sinks[0].hmac_secret: only webhook sinks sign",
    ),
    (
        '[[sinks]]\nname = "w"\ntype = "webhook"\nurl = "https://x"\n\n[[routes]]\nsinks = ["pager"]\n',
        "routes[0].sinks: unknown sink 'pager' (known: w)",
    ),
    (
        BINANCE_ACCOUNT + '\n[[sinks]]\nname = "w"\ntype = "webhook"\nurl = "https://x"\n'
        '\n[[routes]]\naccounts = ["mian"]\nsinks = ["w"]\n',
        "routes[0].accounts: unknown account 'mian'",
    ),
    (
        '[[sinks]]\nname = "w"\ntype = "webhook"\nurl = "https://x"\n\n[[routes]]\naccounts = []\nsinks = ["w"]\n',
        "routes[0].accounts: list should have at least 1 item",
    ),
    (
        '[[sinks]]\nname = "w"\ntype = "webhook"\nurl = "https://x"\n\n[[routes]]\nseverities = ["fatal"]\n'
        'sinks = ["w"]\n',
        "routes[0].severities[0]: input should be 'info', 'warning' or 'critical'",
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), INVALID_CONFIGS, ids=[e.split(":")[0] for _, e in INVALID_CONFIGS]
)
def test_check_config_names_the_field_of_each_mistake_and_exits_2(
    tmp_path: Path, text: str, expected: str
) -> None:
    result = check_config(write(tmp_path, text))

    assert result.returncode == 2, result.stdout
    assert result.stdout == ""
    assert result.stderr.startswith(f"config error: {expected}"), result.stderr
    assert result.stderr.count("\n") == 1  # one line


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"MARGINGUARD_RULES__WARNING_DISTANSE": "0.1"}, "config error: rules.warning_distanse: unknown key"),
        (
            {"MARGINGUARD_RULES__WARNING_DISTANCE": "0.01"},
            "config error: rules.critical_distance: must be smaller",
        ),
        (
            {"MARGINGUARD_ACCOUNTS__0__API_KEY": "k"},
            "config error: environment MARGINGUARD_ACCOUNTS__0__API_KEY: [[accounts]] entries cannot be set one",
        ),
        (
            {"MARGINGUARD_SECRETS_DIR": "/nonexistent/secrets"},
            "config error: secrets_dir: /nonexistent/secrets is not",
        ),
        ({"MARGINGUARD_SINKS": "[{name: x}]"}, "config error: environment MARGINGUARD_SINKS: not valid JSON"),
    ],
)
def test_check_config_reports_bad_environment_overrides(
    tmp_path: Path, env: dict[str, str], expected: str
) -> None:
    result = check_config(write(tmp_path, ""), env=env)

    assert result.returncode == 2
    assert result.stderr.startswith(expected), result.stderr


def test_toml_syntax_errors_carry_the_line_number(tmp_path: Path) -> None:
    config = write(tmp_path, "[daemon]\nlog_format = 'json'\nhttp_bind = 127.0.0.1:9108\n")

    result = check_config(config)

    assert result.returncode == 2
    assert result.stderr.startswith(f"config error: {config}: invalid TOML: ")
    assert "line 3" in result.stderr


def test_check_config_of_a_missing_file(tmp_path: Path) -> None:
    result = check_config(tmp_path / "absent.toml")

    assert result.returncode == 2
    assert (
        result.stderr == f"config error: {tmp_path / 'absent.toml'}: cannot read: No such file or directory\n"
    )


# ---- check-config: valid configurations, printed with every secret masked ----

EXAMPLE_ENV = {
    "BINANCE_API_KEY": API_KEY,
    "BINANCE_SECRET": SECRET,
    "OKX_API_KEY": "okx-key-0123456789",
    "OKX_SECRET": "okx-secret-0123456789",
    "OKX_PASSPHRASE": PASSPHRASE,
    "SLACK_WEBHOOK_URL": SLACK_URL,
    "TELEGRAM_BOT_TOKEN": BOT_TOKEN,
    "WEBHOOK_HMAC_SECRET": HMAC_SECRET,
}


def test_the_example_config_validates() -> None:
    result = check_config(EXAMPLE, "--json", env=EXAMPLE_ENV)

    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    assert [a["id"] for a in config["accounts"]] == ["binance-main", "okx-hedge"]
    assert config["accounts"][0]["api_key"] == "***wxyz"  # enough to tell keys apart, not to use one
    assert config["accounts"][0]["secret"] == "***"
    assert [s["url"] for s in config["sinks"] if s.get("url")] == ["***", "***"]
    for secret in EXAMPLE_ENV.values():
        assert secret not in result.stdout


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


def test_masked_output_never_contains_a_secret(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        f"""
[[accounts]]
id = "okx"
exchange = "okx"
mode = "demo"
api_key = "{API_KEY}"
secret = "{SECRET}"
password = "{PASSPHRASE}"

[accounts.ccxt_config.headers]
X-Auth-Token = "{HMAC_SECRET}-header"

[[sinks]]
name = "slack"
type = "slack"
url = "{SLACK_URL}"

[[sinks]]
name = "tg"
type = "telegram"
bot_token = "{BOT_TOKEN}"
chat_id = "@ops"

[[sinks]]
name = "hook"
type = "webhook"
url = "http://127.0.0.1:8080/alerts?token=abcdef"
hmac_secret = "{HMAC_SECRET}"
""",
    )
    secrets = [
        API_KEY,
        SECRET,
        PASSPHRASE,
        SLACK_URL,
        BOT_TOKEN,
        HMAC_SECRET,
        "token=abcdef",
        "hooks.slack.com",
    ]

    for args in ((), ("--json",)):
        result = check_config(config, *args)
        assert result.returncode == 0, result.stderr
        assert "***" in result.stdout
        for secret in secrets:
            assert secret not in result.stdout, (args, secret)
    shown = effective_config(load_settings(config, env={}))
    assert shown["accounts"][0]["api_key"] == "***wxyz"
    assert shown["accounts"][0]["ccxt_config"]["headers"]["X-Auth-Token"] == "***"


def test_printed_toml_reads_back_as_the_same_settings(tmp_path: Path) -> None:
    result = check_config(EXAMPLE, env=EXAMPLE_ENV)
    assert result.returncode == 0, result.stderr

    printed = tomllib.loads(result.stdout)

    expected = json.loads(check_config(EXAMPLE, "--json", env=EXAMPLE_ENV).stdout)
    assert printed["rules"] == expected["rules"]
    assert printed["accounts"][0]["rules"]["symbols"] == expected["accounts"][0]["rules"]["symbols"]
    assert printed["routes"] == expected["routes"]


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

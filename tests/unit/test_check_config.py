"""`marginguard check-config` as its users run it: every mistake named by its field on one stderr line
with exit 2, valid configurations printed (TOML or JSON) with every secret masked."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from daemon.app.settings import load_settings
from daemon.app.settings_view import effective_config
from tests.unit.settings_samples import (
    API_KEY,
    BINANCE_ACCOUNT,
    BOT_TOKEN,
    EXAMPLE,
    HMAC_SECRET,
    PASSPHRASE,
    SECRET,
    SLACK_URL,
    check_config,
    write,
)

# ---- check-config: every mistake names its field and exits 2 ----

INVALID_CONFIGS = [
    (
        BINANCE_ACCOUNT.replace("binanceusdm", "binnance"),
        "accounts[0].exchange: unknown exchange 'binnance'; did you mean 'binanceusdm'?",
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
    ("[rules]\nwarning_distance = 1.5\n", "rules.warning_distance: must be less than 1"),
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
    # ccxt's verbose mode prints each request with its API key straight to stdout.
    (
        BINANCE_ACCOUNT + "[accounts.ccxt_config]\nverbose = true\n",
        "accounts[0].ccxt_config.verbose: ccxt then",
    ),
    # Before: taken without a word, leaving /status and /metrics open to the network.
    ('[daemon]\nhttp_bind = "0.0.0.0:9108"\n', "daemon.http_bind: 0.0.0.0 is reachable from other machines"),
    ('[daemon]\nhttp_bind = "[::]:9108"\n', "daemon.http_bind: :: is reachable from other machines"),
    ('[daemon]\nhttp_bind = "monitor.lan:9108"\n', "daemon.http_bind: monitor.lan is reachable"),
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


def test_check_config_reports_every_mistake_at_once_with_the_name_it_was_meant_to_be(tmp_path: Path) -> None:
    text = (
        BINANCE_ACCOUNT.replace("binanceusdm", "okex").replace(
            'mode = "demo"', 'mode = "demo"\napi_secrt = "x"'
        )
        + '\n[daemon]\nhttp_bnd = "127.0.0.1:9108"\n'
    )
    result = check_config(write(tmp_path, text))
    assert result.returncode == 2 and result.stdout == ""
    assert sorted(result.stderr.splitlines()) == [
        "config error: accounts[0].api_secrt: unknown key (not a marginguard setting); did you mean 'secret'?",
        "config error: accounts[0].exchange: unknown exchange 'okex'; did you mean 'okx'?",
        "config error: daemon.http_bnd: unknown key (not a marginguard setting); did you mean 'http_bind'?",
    ]


def test_a_name_far_from_every_known_one_is_answered_with_the_known_ones(tmp_path: Path) -> None:
    result = check_config(write(tmp_path, BINANCE_ACCOUNT.replace("binanceusdm", "kraken")))
    assert result.stderr == (
        "config error: accounts[0].exchange: unknown exchange 'kraken' (known: binanceusdm, bybit, okx, gate, "
        "hyperliquid)\n"
    )


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
        # Before: a misspelt section, or a key without its section, was skipped and the default stayed.
        (
            {"MARGINGUARD_RULEZ__WARNING_DISTANCE": "0.2"},
            "config error: environment MARGINGUARD_RULEZ__WARNING_DISTANCE: unknown section 'rulez' (known: ",
        ),
        (
            {"marginguard_topup__enabled": "true", "MARGINGUARD_TOPUPP__ENABLED": "true"},
            "config error: environment MARGINGUARD_TOPUPP__ENABLED: unknown section 'topupp'",
        ),
        (
            {"MARGINGUARD_LOG_LEVEL": "debug"},
            "config error: environment MARGINGUARD_LOG_LEVEL: not a marginguard setting (write MARGINGUARD_<SECTION>",
        ),
        ({"MARGINGUARD_TOPUP__MAX_PER_ACTIN": "5"}, "config error: topup.max_per_actin: unknown key"),
    ],
)
def test_check_config_reports_bad_environment_overrides(
    tmp_path: Path, env: dict[str, str], expected: str
) -> None:
    result = check_config(write(tmp_path, ""), env=env)

    assert result.returncode == 2
    assert result.stderr.startswith(expected), result.stderr


def test_a_misspelt_section_in_the_secrets_directory_is_refused(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "marginguard_rulez__warning_distance").write_text("0.2\n")
    (secrets / "binance_key").write_text("not a setting: a credential some *_file key may read\n")

    result = check_config(write(tmp_path, ""), "--secrets-dir", str(secrets))

    assert result.returncode == 2
    assert result.stderr == (
        f"config error: secret file {secrets / 'marginguard_rulez__warning_distance'}: unknown section 'rulez' "
        "(known: daemon, accounts, rules, topup, sinks, routes, cluster)\n"
    )


def test_a_variable_named_by_an_env_key_is_not_a_stray_setting(tmp_path: Path) -> None:
    config = write(
        tmp_path, BINANCE_ACCOUNT.replace('api_key = "key-0123456789"', 'api_key_env = "MARGINGUARD_KEY"')
    )

    result = check_config(config, env={"MARGINGUARD_KEY": API_KEY})

    assert result.returncode == 0, result.stderr
    assert API_KEY not in result.stdout


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("journal.sqlite", "is a directory"),  # made a directory below
        ("plain-file/journal.sqlite", "plain-file is not a directory, so"),
        ("notes.txt", "is not an SQLite database"),
        ("/proc/marginguard/journal.sqlite", "cannot be created in /proc"),  # unwritable, even for root
    ],
)
def test_a_journal_path_that_cannot_be_written_is_refused_by_check_config(
    tmp_path: Path, where: str, expected: str
) -> None:
    # Before: check-config said "valid" and `run` crashed on its first write with a traceback.
    (tmp_path / "journal.sqlite").mkdir()
    (tmp_path / "plain-file").write_text("")
    (tmp_path / "notes.txt").write_text("my notes\n")
    config = write(tmp_path, f'[daemon]\nstorage_path = "{where}"\n')

    result = check_config(config)

    assert result.returncode == 2, result.stdout
    assert result.stderr.startswith("config error: daemon.storage_path: "), result.stderr
    assert expected in result.stderr and result.stderr.count("\n") == 1


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


def test_telegrams_api_address_is_shown_on_telegram_sinks_only() -> None:
    result = check_config(EXAMPLE, "--json", env=EXAMPLE_ENV)

    assert result.returncode == 0, result.stderr
    sinks = json.loads(result.stdout)["sinks"]
    assert {s["type"] for s in sinks} >= {"telegram", "slack"}
    for sink in sinks:
        assert ("base_url" in sink) == (sink["type"] == "telegram"), sink

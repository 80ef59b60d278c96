"""The shape of marginguard's configuration: one pydantic model per TOML section, each refusing unknown keys.

Validation that involves several fields raises `FieldProblem`, which names the offending field so that the
loader can report `accounts[0].allow_live: ...` rather than the whole account. Secrets are `SecretStr` and
may instead be given as `<name>_env` (an environment variable holding it) or `<name>_file` (a file holding
it); `daemon.app.settings` resolves those after validation.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

from daemon.app.settings_base import FieldProblem, Section, nearest
from daemon.app.settings_rules import AccountRules
from daemon.exchanges.config import EXCHANGE_IDS, Mode

LogFormat = Literal["auto", "json", "console"]
LogLevel = Literal["debug", "info", "warning", "error"]
SinkType = Literal["slack", "discord", "telegram", "webhook"]
SeverityName = Literal["info", "warning", "critical"]
SEVERITY_NAMES: tuple[SeverityName, ...] = ("info", "warning", "critical")

# Every number is finite: "inf" or "nan" in a ceiling or a duration would silently switch a safeguard off.
Fraction = Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)]
Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]
PositiveSeconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Amount = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Balance = Annotated[float, Field(ge=0, allow_inf_nan=False)]

# Which credentials each exchange cannot work without. Hyperliquid signs with a wallet key and can be watched
# with the (public) wallet address alone; a private key is only needed to add margin.
REQUIRED_CREDENTIALS: dict[str, tuple[str, ...]] = {
    "binanceusdm": ("api_key", "secret"),
    "bybit": ("api_key", "secret"),
    "okx": ("api_key", "secret", "password"),
    "gate": ("api_key", "secret"),
    "hyperliquid": ("wallet_address",),
}
ACCOUNT_SECRETS = ("api_key", "secret", "password", "private_key")
SINK_SECRETS = ("url", "bot_token", "hmac_secret")
# Credentials in `ccxt_config` would bypass masking and the *_env / *_file indirections.
CCXT_CREDENTIAL_KEYS = frozenset(
    {"apikey", "secret", "password", "uid", "login", "token", "privatekey", "walletaddress", "twofa"}
)
_ACCOUNT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def check_single_source(model: BaseModel, names: tuple[str, ...]) -> None:
    """Each secret comes from at most one place: inline, `<name>_env` or `<name>_file`."""
    for name in names:
        given = [f for f in (name, f"{name}_env", f"{name}_file") if getattr(model, f) is not None]
        if len(given) > 1:
            raise FieldProblem(given[1], f"give only one of {', '.join(given)}")


def has_secret(model: BaseModel, name: str) -> bool:
    return any(getattr(model, f) is not None for f in (name, f"{name}_env", f"{name}_file"))


def has_secret_source(model: BaseModel, name: str) -> bool:
    return any(getattr(model, f, None) is not None for f in (f"{name}_env", f"{name}_file"))


def is_loopback(host: str) -> bool:
    """Whether `host` can only be reached from this machine (a name other than localhost is not trusted to)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def empty_means_none(value: Any) -> Any:
    # TOML has no null: an empty string is how a per-account table switches an inherited value off.
    return None if value == "" else value


class DaemonSettings(Section):
    # Default: marginguard.sqlite in $STATE_DIRECTORY (systemd) or next to the config file.
    storage_path: Path = Path("marginguard.sqlite")
    # A PostgreSQL journal instead of the SQLite file, e.g. "postgresql://marginguard:PASSWORD@db:5432/marginguard".
    # Secret: it usually carries a password (masked in check-config, redacted from logs).
    journal_url: SecretStr | None = None
    http_bind: str = "127.0.0.1:9108"
    # /status and /metrics show accounts, positions and balances: off this machine only when asked for.
    allow_remote_http: bool = False
    log_format: LogFormat = "auto"
    log_level: LogLevel = "info"
    shutdown_timeout_s: PositiveSeconds = 10.0
    # Where people reach the status page (http_bind, or a reverse proxy in front of it), e.g.
    # "https://marginguard.example.com/". With it, Slack and webhook messages link to their incident chart
    # (<status_page_url>/incident/<number>.png); without it they are text only. Not a secret: messages carry it.
    status_page_url: str | None = None

    _no_page = field_validator("status_page_url", mode="before")(empty_means_none)
    _no_url = field_validator("journal_url", mode="before")(empty_means_none)

    @field_validator("journal_url")
    @classmethod
    def _postgres_url(cls, value: SecretStr | None) -> SecretStr | None:
        # The message never repeats the value: it may hold a password.
        if value is None:
            return None
        parts = urlsplit(value.get_secret_value())
        if parts.scheme not in ("postgresql", "postgres") or not parts.hostname:
            raise ValueError(
                "expected a PostgreSQL URL such as postgresql://USER:PASSWORD@HOST:5432/DATABASE"
                " (leave it out to keep the SQLite journal at storage_path)"
            )
        return value

    def journal_url_value(self) -> str | None:
        return None if self.journal_url is None else self.journal_url.get_secret_value()

    @field_validator("status_page_url")
    @classmethod
    def _page_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"expected an http:// or https:// address such as https://marginguard.example.com/, got {value!r}"
            )
        if (
            parts.username
            or parts.password
            or parts.query
            or parts.fragment
            or any(c.isspace() for c in value)
        ):
            raise ValueError(
                "must be a plain address: no user:password@, query (?), fragment (#) or spaces (every message would carry them)"
            )
        return value.rstrip("/")

    @field_validator("http_bind")
    @classmethod
    def _host_and_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"expected HOST:PORT such as 127.0.0.1:9108, got {value!r}")
        return value

    @model_validator(mode="after")
    def _local_unless_allowed(self) -> DaemonSettings:
        if not self.allow_remote_http and not is_loopback(self.http_host):
            raise FieldProblem(
                "http_bind",
                f"{self.http_host} is reachable from other machines and /status and /metrics would be open "
                "to them: bind 127.0.0.1, or set allow_remote_http = true to mean it",
            )
        return self

    @property
    def http_host(self) -> str:
        return self.http_bind.rpartition(":")[0].strip("[]")

    @property
    def http_port(self) -> int:
        return int(self.http_bind.rpartition(":")[2])


class TopUpOverrides(Section):
    """Top-up settings that replace the global `[topup]` ones for one account where given."""

    enabled: bool | None = None
    dry_run: bool | None = None
    trigger_distance: Fraction | None = None
    target_distance: Fraction | None = None
    max_per_action: Amount | None = None
    max_per_position_per_day: Amount | None = None
    max_per_account_per_day: Amount | None = None
    min_free_balance: Balance | None = None
    cooldown_s: Seconds | None = None
    max_attempts: Annotated[int, Field(ge=1)] | None = None
    cross_transfer_from: str | None = None

    _no_transfer = field_validator("cross_transfer_from", mode="before")(empty_means_none)


class TopUpSettings(Section):
    """Adding margin before liquidation. Amounts are in the position's settle currency (USDT, USDC...)."""

    enabled: bool = False
    dry_run: bool = False
    trigger_distance: Fraction = 0.05
    target_distance: Fraction = 0.15
    max_per_action: Amount | None = None
    max_per_position_per_day: Amount | None = None
    max_per_account_per_day: Amount | None = None
    min_free_balance: Balance = 0.0
    cooldown_s: Seconds = 300.0
    max_attempts: Annotated[int, Field(ge=1)] = 3
    cross_transfer_from: str | None = None

    _no_transfer = field_validator("cross_transfer_from", mode="before")(empty_means_none)

    @model_validator(mode="after")
    def _coherent(self) -> TopUpSettings:
        if self.target_distance <= self.trigger_distance:
            raise FieldProblem(
                "target_distance",
                f"must be larger than trigger_distance ({self.target_distance} <= {self.trigger_distance})",
            )
        if self.enabled:
            # Moving money without a ceiling is never what anyone meant.
            for name in ("max_per_action", "max_per_account_per_day"):
                if getattr(self, name) is None:
                    raise FieldProblem(
                        name, "required when top-up is enabled (a ceiling for the money moved)"
                    )
        caps = [
            ("max_per_action", self.max_per_action),
            ("max_per_position_per_day", self.max_per_position_per_day),
            ("max_per_account_per_day", self.max_per_account_per_day),
        ]
        known = [(name, value) for name, value in caps if value is not None]
        for (small_name, small), (large_name, large) in itertools.pairwise(known):
            if small > large:
                raise FieldProblem(small_name, f"must not exceed {large_name} ({small} > {large})")
        return self

    def overridden(self, overrides: TopUpOverrides | None) -> TopUpSettings:
        if overrides is None:
            return self
        given = {name: value for name, value in overrides if name in overrides.model_fields_set}
        return TopUpSettings.model_validate({**self.model_dump(), **given})


class AccountSettings(Section):
    id: str
    exchange: str
    mode: Mode
    api_key: SecretStr | None = None
    api_key_env: str | None = None
    api_key_file: Path | None = None
    secret: SecretStr | None = None
    secret_env: str | None = None
    secret_file: Path | None = None
    password: SecretStr | None = None
    password_env: str | None = None
    password_file: Path | None = None
    wallet_address: str | None = None
    private_key: SecretStr | None = None
    private_key_env: str | None = None
    private_key_file: Path | None = None
    allow_live: bool = False
    ccxt_config: dict[str, Any] = Field(default_factory=dict)
    symbols: list[str] = Field(default_factory=list)
    rules: AccountRules | None = None
    topup: TopUpOverrides | None = None

    @field_validator("id")
    @classmethod
    def _plain_id(cls, value: str) -> str:
        if not _ACCOUNT_ID.match(value):
            raise ValueError(f"use letters, digits, '_', '-' and '.' only, got {value!r}")
        return value

    @field_validator("exchange")
    @classmethod
    def _known_exchange(cls, value: str) -> str:
        if value not in EXCHANGE_IDS:
            hint = nearest(value, EXCHANGE_IDS) or f" (known: {', '.join(EXCHANGE_IDS)})"
            raise ValueError(f"unknown exchange {value!r}{hint}")
        return value

    @model_validator(mode="after")
    def _usable(self) -> AccountSettings:
        check_single_source(self, ACCOUNT_SECRETS)
        if self.mode == "live" and not self.allow_live:
            raise FieldProblem(
                "allow_live", "mode = 'live' trades with real money: set allow_live = true to confirm"
            )
        for name in REQUIRED_CREDENTIALS[self.exchange]:
            present = getattr(self, name) is not None if name == "wallet_address" else has_secret(self, name)
            if not present:
                alternatives = name if name == "wallet_address" else f"{name}, {name}_env or {name}_file"
                raise FieldProblem(name, f"{self.exchange} needs it: set {alternatives}")
        for key, value in self.ccxt_config.items():
            if key.lower() == "verbose" and value:
                raise FieldProblem(
                    f"ccxt_config.{key}",
                    "ccxt then prints every request with its API key to stdout, past marginguard's redaction; "
                    "set daemon.log_level = 'debug' instead (its request logs are redacted)",
                )
            if key.lower() in CCXT_CREDENTIAL_KEYS:
                raise FieldProblem(
                    f"ccxt_config.{key}",
                    "put credentials in api_key / secret / password / private_key (or their _env / _file "
                    "forms), where they are kept secret",
                )
        return self


class SinkSettings(Section):
    name: str
    type: SinkType
    url: SecretStr | None = None
    url_env: str | None = None
    url_file: Path | None = None
    base_url: str = "https://api.telegram.org"
    bot_token: SecretStr | None = None
    bot_token_env: str | None = None
    bot_token_file: Path | None = None
    chat_id: str | None = None
    hmac_secret: SecretStr | None = None
    hmac_secret_env: str | None = None
    hmac_secret_file: Path | None = None

    @field_validator("chat_id", mode="before")
    @classmethod
    def _chat_id_as_text(cls, value: Any) -> Any:
        # Telegram chat ids are numbers (negative for groups) or "@channel"; TOML users write either.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("url", "base_url")
    @classmethod
    def _http_url(cls, value: Any) -> Any:
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if text is not None and not re.match(r"^https?://[^/\s]+", text):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _complete_for_type(self) -> SinkSettings:
        check_single_source(self, SINK_SECRETS)
        if self.type == "telegram":
            if has_secret(self, "url"):
                raise FieldProblem("url", "telegram sinks use bot_token and chat_id, not url")
            if not has_secret(self, "bot_token"):
                raise FieldProblem("bot_token", "required for telegram: set bot_token, _env or _file")
            if self.chat_id is None:
                raise FieldProblem("chat_id", "required for telegram")
        else:
            if not has_secret(self, "url"):
                raise FieldProblem("url", f"required for {self.type}: set url, url_env or url_file")
            for name in ("bot_token", "chat_id", "base_url"):
                if name in self.model_fields_set or has_secret_source(self, name):
                    raise FieldProblem(name, "only telegram sinks use it")
        if self.type != "webhook" and has_secret(self, "hmac_secret"):
            raise FieldProblem("hmac_secret", "only webhook sinks sign their requests")
        return self


class RouteSettings(Section):
    """Which alerts go where: alerts of these severities, from these accounts ("*": all), to these sinks."""

    severities: list[SeverityName] = Field(default_factory=lambda: list(SEVERITY_NAMES), min_length=1)
    accounts: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    sinks: list[str] = Field(min_length=1)

    def matches(self, account_id: str, severity: str) -> bool:
        return severity in self.severities and ("*" in self.accounts or account_id in self.accounts)

"""marginguard's settings: a TOML file, overridden by secret files, overridden by the environment.

    settings = load_settings(Path("marginguard.toml"))

Precedence, highest first: environment variables `MARGINGUARD_<SECTION>__<KEY>` (e.g.
`MARGINGUARD_RULES__WARNING_DISTANCE=0.12`), files in the secrets directory named like those variables
(`--secrets-dir`, `$MARGINGUARD_SECRETS_DIR` or systemd's `$CREDENTIALS_DIRECTORY`), the TOML file, defaults.
List sections (`[[accounts]]`, `[[sinks]]`, `[[routes]]`) can only be replaced whole from the environment
(as JSON); single secrets come from `<name>_env` / `<name>_file` instead. Every problem surfaces as one
`SettingsError` naming the field: `config error: accounts[0].exchange: unknown exchange 'binnance' (...)`.
"""

from __future__ import annotations

import copy
import os
import re
import sys
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

import pydantic_settings
from pydantic import BaseModel, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, InitSettingsSource, SettingsConfigDict
from pydantic_settings.sources import EnvSettingsSource, NestedSecretsSettingsSource, SecretsSettingsSource
from pydantic_settings.sources.utils import parse_env_vars

from daemon.app.settings_base import FieldProblem
from daemon.app.settings_cluster import ROUND_TRIP_BUDGET_S, ClusterSettings
from daemon.app.settings_env import (
    ENV_PREFIX,
    refuse_indexed_list_variables,
    refuse_stray_variables,
    refuse_unknown_sections,
)
from daemon.app.settings_errors import SettingsError, describe
from daemon.app.settings_models import (
    ACCOUNT_SECRETS,
    SINK_SECRETS,
    AccountSettings,
    DaemonSettings,
    RouteSettings,
    SinkSettings,
    TopUpSettings,
)
from daemon.app.settings_paths import storage_problem
from daemon.app.settings_rules import RulesSettings, rule_set
from daemon.core.policy_rules import RuleSet
from daemon.exchanges.config import ExchangeAccount
from daemon.exchanges.quirks import quirks_for

__all__ = ["Settings", "SettingsError", "load_settings", "settings_from_document"]

M = TypeVar("M", bound=BaseModel)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True, case_sensitive=False
    )

    daemon: DaemonSettings = Field(default_factory=DaemonSettings)
    accounts: list[AccountSettings] = Field(default_factory=list)
    rules: RulesSettings = Field(default_factory=RulesSettings)
    topup: TopUpSettings = Field(default_factory=TopUpSettings)
    sinks: list[SinkSettings] = Field(default_factory=list)
    routes: list[RouteSettings] = Field(default_factory=list)
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        account_ids = _unique(self.accounts, "id", "accounts", "account id")
        sink_names = _unique(self.sinks, "name", "sinks", "sink name")
        for index, route in enumerate(self.routes):
            for name in route.sinks:
                if name not in sink_names:
                    known = ", ".join(sink_names) or "none defined"
                    raise FieldProblem(f"routes[{index}].sinks", f"unknown sink {name!r} (known: {known})")
            for account_id in route.accounts:
                if account_id != "*" and account_id not in account_ids:
                    raise FieldProblem(f"routes[{index}].accounts", f"unknown account {account_id!r}")
        # An account's overrides must still make sense once laid over the global sections.
        self.rule_set()
        self._cluster_consistent()
        for index, account in enumerate(self.accounts):
            try:
                self.topup.overridden(account.topup)
            except ValidationError as error:
                path, message = describe(error.errors()[0])
                raise FieldProblem(f"accounts[{index}].topup.{path}", message) from None
        return self

    def _cluster_consistent(self) -> None:
        if not self.cluster.enabled:
            return
        if self.daemon.journal_url is None:
            raise FieldProblem(
                "cluster.enabled",
                "instances share their accounts through a PostgreSQL journal: set daemon.journal_url",
            )
        room = self.cluster.action_room_s()
        for index, account in enumerate(self.accounts):
            topup = self.topup.overridden(account.topup)
            window = quirks_for(account.exchange).signed_window_s
            if topup.enabled and not topup.dry_run and window > room:
                raise FieldProblem(
                    f"accounts[{index}].topup",
                    f"{account.exchange} accepts a signed request up to {window:g} s after signing, more than a "
                    f"lease leaves room for ({room:g} s: lease_ttl_s - renew_interval_s - a round trip): a top-up "
                    "could land after another instance took the account over. Raise cluster.lease_ttl_s above "
                    f"{window + self.cluster.renew_interval_s + ROUND_TRIP_BUDGET_S:g}, or set topup.dry_run",
                )

    def account(self, account_id: str) -> AccountSettings:
        for account in self.accounts:
            if account.id == account_id:
                return account
        raise KeyError(account_id)

    def rule_set(self) -> RuleSet:
        """The alert thresholds of every account and symbol: `rule_set().resolve(account_id, symbol)`."""
        return rule_set(self.rules, [(account.id, account.rules) for account in self.accounts])

    def topup_for(self, account_id: str) -> TopUpSettings:
        """The account's top-up settings: global `[topup]` with its `topup` overrides on top."""
        return self.topup.overridden(self.account(account_id).topup)

    def sinks_for(self, account_id: str, severity: str) -> list[SinkSettings]:
        """Where an alert of this severity from this account goes. Without routes: every sink."""
        if not self.routes:
            return list(self.sinks)
        names = {name for route in self.routes if route.matches(account_id, severity) for name in route.sinks}
        return [sink for sink in self.sinks if sink.name in names]

    def account_configs(self) -> list[ExchangeAccount]:
        """What the exchange connector needs for each account, secrets in plain text (handle with care)."""
        return [exchange_account(account) for account in self.accounts]


# The top-level sections, in the order a configuration file usually has them.
SECTIONS: tuple[str, ...] = tuple(Settings.model_fields)


def _unique(items: list[Any], attribute: str, section: str, what: str) -> list[str]:
    seen: list[str] = []
    for index, item in enumerate(items):
        value = getattr(item, attribute)
        if value in seen:
            raise FieldProblem(f"{section}[{index}].{attribute}", f"duplicate {what} {value!r}")
        seen.append(value)
    return seen


def exchange_account(account: AccountSettings) -> ExchangeAccount:
    """The connector's view of one account (a copy: nothing the connector does can change the settings)."""
    return ExchangeAccount(
        account_id=account.id,
        exchange=account.exchange,
        mode=account.mode,
        api_key=plain(account.api_key),
        secret=plain(account.secret),
        password=plain(account.password),
        wallet_address=account.wallet_address,
        private_key=plain(account.private_key),
        allow_live=account.allow_live,
        ccxt_config=MappingProxyType(copy.deepcopy(account.ccxt_config)),
        symbols=tuple(account.symbols) or None,
    )


def plain(secret: SecretStr | None) -> str | None:
    return None if secret is None else secret.get_secret_value()


# ---- loading ----


def load_settings(
    path: Path | None, env: Mapping[str, str] | None = None, secrets_dir: Path | None = None
) -> Settings:
    """Read, merge and validate the configuration; resolve `*_env` / `*_file` secrets and relative paths.

    `env` stands in for `os.environ` (tests, or a supervisor passing a curated environment); relative paths
    are taken from the file's directory. Raises `SettingsError` for anything wrong, from a TOML syntax error
    to an unknown exchange.
    """
    document = read_toml(path) if path is not None else {}
    base_dir = path.resolve().parent if path is not None else Path.cwd()
    return settings_from_document(document, env, base_dir, secrets_dir)


def settings_from_document(
    document: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
    secrets_dir: Path | None = None,
) -> Settings:
    """`load_settings` for a configuration already parsed (or built in code): same sources, same checks."""
    environ: Mapping[str, str] = os.environ if env is None else env
    base_dir = Path.cwd() if base_dir is None else base_dir
    refuse_indexed_list_variables(environ)
    refuse_unknown_sections(((f"environment {name}", name) for name in environ), SECTIONS)
    if secrets_dir is None:
        named = environ.get(f"{ENV_PREFIX}SECRETS_DIR") or environ.get("CREDENTIALS_DIRECTORY")
        secrets_dir = Path(named) if named else None
    if secrets_dir is not None and not secrets_dir.is_dir():
        raise SettingsError("secrets_dir", f"{secrets_dir} is not a directory")
    if secrets_dir is not None:
        try:
            files = sorted(secrets_dir.iterdir())
        except OSError as error:
            raise SettingsError("secrets_dir", f"cannot read {secrets_dir}: {error.strerror}") from None
        refuse_unknown_sections(((f"secret file {path}", path.name) for path in files), SECTIONS)
    sources = _sources(dict(document), environ, secrets_dir)
    try:
        # pydantic-settings' own way to hand it ready-made sources; its __init__ signature is hidden from mypy.
        settings = Settings(_build_sources=(sources, {}))  # type: ignore[call-arg]
    except ValidationError as error:
        problems = tuple(describe(problem, Settings) for problem in error.errors())
        field_path, message = problems[0]
        raise SettingsError(field_path, message, more=len(problems) - 1, problems=problems) from None
    except pydantic_settings.SettingsError as error:
        # Raised by the sources themselves, e.g. a MARGINGUARD_ACCOUNTS value that is not JSON.
        field = re.search(r'field "(\w+)"', str(error))
        if field is None:
            raise SettingsError("environment", str(error)) from None
        variable = f"{ENV_PREFIX}{field.group(1).upper()}"
        raise SettingsError(f"environment {variable}", "not valid JSON for this section") from None
    refuse_stray_variables(environ, SECTIONS, _env_references(settings))
    return _resolve_paths(_resolve_secrets(settings, environ, base_dir), environ, base_dir)


def read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise SettingsError(str(path), f"cannot read: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise SettingsError(str(path), f"not UTF-8 text ({error.reason} at byte {error.start})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(str(path), f"invalid TOML: {error}") from None  # carries "(at line L, column C)"


class _MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' environment source, reading a given mapping instead of `os.environ`."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(
            self._environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str
        )


def _sources(
    document: dict[str, Any], environ: Mapping[str, str], secrets_dir: Path | None
) -> tuple[pydantic_settings.PydanticBaseSettingsSource, ...]:
    sources: list[pydantic_settings.PydanticBaseSettingsSource] = [_MappingEnvSource(Settings, environ)]
    if secrets_dir is not None:
        # Files named like the variables: `marginguard_rules__warning_distance` holds "0.12".
        sources.append(
            NestedSecretsSettingsSource(
                SecretsSettingsSource(Settings), secrets_dir=secrets_dir, secrets_dir_missing="error"
            )
        )
    sources.append(InitSettingsSource(Settings, init_kwargs=document))
    return tuple(sources)


def _env_references(settings: Settings) -> Iterator[str]:
    for model, names in [
        *((account, ACCOUNT_SECRETS) for account in settings.accounts),
        *((sink, SINK_SECRETS) for sink in settings.sinks),
    ]:
        for name in names:
            variable = getattr(model, f"{name}_env")
            if variable is not None:
                yield variable


def _resolve_secrets(settings: Settings, environ: Mapping[str, str], base_dir: Path) -> Settings:
    accounts = [
        _resolved(account, ACCOUNT_SECRETS, f"accounts[{index}]", environ, base_dir)
        for index, account in enumerate(settings.accounts)
    ]
    sinks = [
        _resolved(sink, SINK_SECRETS, f"sinks[{index}]", environ, base_dir)
        for index, sink in enumerate(settings.sinks)
    ]
    return settings.model_copy(update={"accounts": accounts, "sinks": sinks})


def _resolved(model: M, names: tuple[str, ...], path: str, environ: Mapping[str, str], base_dir: Path) -> M:
    updates: dict[str, Any] = {}
    for name in names:
        variable: str | None = getattr(model, f"{name}_env")
        file: Path | None = getattr(model, f"{name}_file")
        if variable is not None:
            value = environ.get(variable, "").strip()
            if not value:
                raise SettingsError(
                    f"{path}.{name}_env", f"environment variable {variable} is not set or empty"
                )
            updates[name] = SecretStr(value)
            where = f"{path}.{name}_env"
        elif file is not None:
            file = file.expanduser() if file.expanduser().is_absolute() else base_dir / file
            try:
                value = file.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as error:
                reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
                raise SettingsError(f"{path}.{name}_file", f"cannot read {file}: {reason}") from None
            if not value:
                raise SettingsError(f"{path}.{name}_file", f"{file} is empty")
            updates[name], updates[f"{name}_file"] = SecretStr(value), file
            where = f"{path}.{name}_file"
        else:
            continue
        if name == "url" and not re.match(r"^https?://[^/\s]+", value):
            raise SettingsError(where, "must hold an http:// or https:// URL")
    return model.model_copy(update=updates) if updates else model


def _resolve_paths(settings: Settings, environ: Mapping[str, str], base_dir: Path) -> Settings:
    storage = settings.daemon.storage_path.expanduser()
    if not storage.is_absolute():
        # systemd's StateDirectory= is where a service's durable files belong; else beside the config.
        state_dir = environ.get("STATE_DIRECTORY", "").split(":")[0]
        storage = (Path(state_dir) if state_dir else base_dir) / storage
    problem = storage_problem(storage)
    if problem is not None:
        raise SettingsError("daemon.storage_path", problem)
    daemon = settings.daemon.model_copy(update={"storage_path": storage})
    return settings.model_copy(update={"daemon": daemon})


def load_or_report(path: Path) -> Settings | None:
    """The settings for a command, or None once the one-line problem is printed to stderr (it then exits 2)."""
    try:
        return load_settings(path)
    except SettingsError as error:
        print(error, file=sys.stderr)
        return None

"""Builds the ccxt.pro client of one account: environment (demo / testnet / live), quirks, user overrides.

Order of precedence, lowest first: marginguard's defaults for the exchange (`Quirks.default_options`), the
account's credentials, the environment switch (ccxt's own `enable_demo_trading` / `set_sandbox_mode`), and
last the account's `ccxt_config`, so URL overrides (proxies, regional hosts, the simulator) and options from
the config always win.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import ccxt.pro

from daemon.exchanges.client_template import CREDENTIAL_KEYS, constructed
from daemon.exchanges.config import ExchangeAccount
from daemon.exchanges.quirks import Quirks, quirks_for
from daemon.exchanges.streams import tolerate_bad_frames

T = TypeVar("T")


class ConfigurationRefused(ValueError):
    """The account's settings are refused as they stand (live trading not allowed, unknown exchange):
    fix the configuration; nothing was sent to the exchange."""


def build_client(account: ExchangeAccount, quirks: Quirks | None = None) -> Any:
    """A new, unconnected `ccxt.pro.<exchange>` client for `account` (no request is made here).

    Refuses `mode = "live"` unless the account sets `allow_live = True`: real money is never touched by
    accident, e.g. when a demo key was pasted into a live config. Refuses a demo or testnet mode the
    exchange does not offer, for the same reason (the client would otherwise reach the production hosts).
    """
    if account.mode == "live" and not account.allow_live:
        raise ConfigurationRefused(
            f"account {account.account_id!r}: mode 'live' trades real money; set allow_live = true on this "
            "account to confirm, or use mode 'demo' or 'testnet'"
        )
    try:
        quirks = quirks or quirks_for(account.exchange)
    except ValueError as exc:
        raise ConfigurationRefused(f"account {account.account_id!r}: {exc}") from None
    if account.mode != "live" and account.mode not in quirks.modes:
        # Without a switch the client would talk to the production hosts: never by default.
        offered = ", ".join([*quirks.modes, "live"])
        raise ConfigurationRefused(
            f"account {account.account_id!r}: {account.exchange} has no {account.mode!r} environment in "
            f"marginguard (modes: {offered}); choose one of those"
        )
    exchange_class = getattr(ccxt.pro, account.exchange, None)
    if exchange_class is None:
        raise ConfigurationRefused(
            f"account {account.account_id!r}: ccxt.pro has no exchange {account.exchange!r}"
        )

    client = constructed(exchange_class, _base_config(account, quirks))
    settings = quirks.mode(account.mode)
    if settings.sandbox:
        client.set_sandbox_mode(True)
    if settings.demo_trading:
        client.enable_demo_trading(True)
    if settings.headers:
        client.headers = {**(client.headers or {}), **settings.headers}
    if settings.ws_urls:
        client.urls["api"]["ws"] = client.deep_extend(
            client.urls["api"].get("ws", {}), dict(settings.ws_urls)
        )
    apply_config(client, account.ccxt_config)
    # One unreadable frame costs a reconnect, not a deaf socket; so does a private session's end, where the
    # client has credentials to open one.
    tolerate_bad_frames(client, sessions=has_credentials(account))
    return client


Environment = tuple[str, str, str]


_BUILDER: ThreadPoolExecutor | None = None


async def built_off_the_loop(build: Callable[[], T]) -> T:
    """`build()` on one worker thread shared by the process: an account's client and what wraps it.

    ccxt's constructor is a few milliseconds of pure Python (its whole exchange description rebuilt per client).
    Thousands of runners starting together built theirs in one pass of the event loop, which held it for
    seconds (250 accounts: 3 s) while the listener, the sockets and the timers waited; taking turns on the loop
    instead made start-up crawl once marks flowed (each turn waits for a whole pass). On a thread, the loop
    keeps turning (the interpreter switches threads every few milliseconds) and the builds go on at their own
    pace. One thread: more would only take more of the interpreter from the loop. A client built here has no
    session, socket or event loop until its first request, made from the loop."""
    global _BUILDER
    if _BUILDER is None:
        _BUILDER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="marginguard-clients")
    return await asyncio.get_running_loop().run_in_executor(_BUILDER, build)


# The fields of `ExchangeAccount` that identify it to the exchange (with `CREDENTIAL_KEYS` in its ccxt config).
_CREDENTIAL_FIELDS = ("api_key", "secret", "password", "wallet_address", "private_key")


def has_credentials(account: ExchangeAccount) -> bool:
    """Whether a client for `account` can open private streams (what `public_account` takes away)."""
    return any(getattr(account, name) is not None for name in _CREDENTIAL_FIELDS) or any(
        key in CREDENTIAL_KEYS for key in account.ccxt_config
    )


def public_account(account: ExchangeAccount) -> ExchangeAccount:
    """`account` without anything that identifies it: the same exchange, mode and server (URL overrides,
    proxies, options, headers), no keys. What a client for public market data is built from."""
    no_keys: dict[str, Any] = dict.fromkeys(_CREDENTIAL_FIELDS)
    return dataclasses.replace(
        account,
        account_id=f"{account.exchange}-{account.mode}-public",
        **no_keys,
        ccxt_config={k: v for k, v in account.ccxt_config.items() if k not in CREDENTIAL_KEYS},
    )


def environment(account: ExchangeAccount) -> Environment:
    """Which server `account`'s public data comes from: exchange, mode and every non-credential override.

    Two accounts share market data (one mark-price hub) only when these are equal: a live account must never
    be judged on demo or testnet prices, nor an account behind a regional host on another host's. Settings
    that do not move the server (options, timeouts) split hubs too: needlessly, never wrongly. The key may hold
    header values: never log it."""
    config = json.dumps(_plain(public_account(account).ccxt_config), sort_keys=True, default=repr)
    return (account.exchange, account.mode, config)


def _base_config(account: ExchangeAccount, quirks: Quirks) -> dict[str, Any]:
    config: dict[str, Any] = {
        "enableRateLimit": True,
        # deep copy: ccxt mutates its options (caches) and the quirks' mappings are shared by every account.
        "options": copy.deepcopy(_plain(quirks.default_options)),
    }
    credentials = {
        "apiKey": account.api_key,
        "secret": account.secret,
        "password": account.password,
        "walletAddress": account.wallet_address,
        "privateKey": account.private_key,
    }
    config.update({key: value for key, value in credentials.items() if value is not None})
    return config


def apply_config(client: Any, config: Mapping[str, Any]) -> None:
    """Merge a ccxt constructor config into an existing client the way ccxt's constructor does: nested
    dicts (urls, options, headers, has) are deep-merged, other values replace the attribute."""
    for key, value in config.items():
        plain = _plain(value)
        current = getattr(client, key, None)
        if isinstance(plain, dict) and isinstance(current, dict):
            setattr(client, key, client.deep_extend(current, copy.deepcopy(plain)))
        else:
            setattr(client, key, copy.deepcopy(plain))


def _plain(value: Any) -> Any:
    """Mappings (e.g. read-only MappingProxyType) as plain dicts, recursively: ccxt expects dicts."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    return value


def share_markets(source: Any, target: Any) -> None:
    """Give `target` the market tables `source` loaded (same exchange), so it never calls load_markets.

    The tables are shared, not copied: one exchange's metadata is held once however many accounts use it.
    """
    if source.id != target.id:
        raise ValueError(f"cannot share {source.id} markets with a {target.id} client")
    if not source.markets:
        raise ValueError(f"{source.id}: load markets on the source client first")
    target.set_markets_from_exchange(source)

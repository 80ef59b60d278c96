"""An account's ccxt client loaded from a template is the client ccxt's constructor builds for it, attribute by
attribute, for every exchange marginguard supports; and clients loaded from one template share no state."""

from __future__ import annotations

import types
from typing import Any

import ccxt.pro
import pytest

from daemon.exchanges.client import _base_config
from daemon.exchanges.client_template import constructed
from daemon.exchanges.config import ExchangeAccount
from daemon.exchanges.quirks import QUIRKS_BY_EXCHANGE


def _account(exchange: str, key: str) -> ExchangeAccount:
    return ExchangeAccount(
        f"acct-{key}",
        exchange,
        api_key=f"key-{key}",
        secret=f"secret-{key}",
        password=f"pass-{key}",
        wallet_address="0x" + "ab" * 20,
        private_key="0x" + "cd" * 32,
    )


def _plain(value: Any, seen: dict[int, Any] | None = None) -> Any:
    """A value as data: containers by content, objects by their type and attributes, functions by identity."""
    seen = {} if seen is None else seen
    if isinstance(value, dict):
        return {key: _plain(item, seen) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return type(value)(_plain(item, seen) for item in value) if not isinstance(value, set) else value
    if value is None or isinstance(value, str | int | float | bool | bytes):
        return value
    if isinstance(value, types.FunctionType | types.BuiltinFunctionType | type | types.ModuleType):
        return value
    if id(value) in seen:
        return ("seen", type(value))
    seen[id(value)] = True
    attributes = getattr(value, "__dict__", None)
    if attributes is None:
        return ("opaque", type(value), repr(value))
    return (type(value), {k: _plain(v, seen) for k, v in attributes.items() if k != "origin"})


@pytest.mark.parametrize("exchange", sorted(QUIRKS_BY_EXCHANGE))
def test_a_client_from_the_template_is_the_one_the_constructor_builds(exchange: str) -> None:
    account = _account(exchange, "one")
    config = _base_config(account, QUIRKS_BY_EXCHANGE[exchange])
    exchange_class = getattr(ccxt.pro, exchange)
    constructed(exchange_class, _base_config(_account(exchange, "template"), QUIRKS_BY_EXCHANGE[exchange]))
    loaded = constructed(exchange_class, config)
    built = exchange_class(config)
    assert type(loaded) is exchange_class
    assert _plain(loaded) == _plain(built)
    assert loaded.apiKey == "key-one" and loaded.secret == "secret-one"


@pytest.mark.parametrize("exchange", sorted(QUIRKS_BY_EXCHANGE))
def test_clients_from_one_template_share_nothing(exchange: str) -> None:
    quirks = QUIRKS_BY_EXCHANGE[exchange]
    exchange_class = getattr(ccxt.pro, exchange)
    first = constructed(exchange_class, _base_config(_account(exchange, "a"), quirks))
    second = constructed(exchange_class, _base_config(_account(exchange, "b"), quirks))
    assert (first.apiKey, second.apiKey) == ("key-a", "key-b")
    assert first.origin != second.origin
    first.options["marginguard-test"] = 1
    first.headers["X-Test"] = "1"
    first.tickers["X/Y"] = {"markPrice": 1.0}
    assert "marginguard-test" not in second.options
    assert "X-Test" not in second.headers and "X/Y" not in second.tickers
    for name, value in vars(first).items():
        if isinstance(value, dict | list) and value:
            assert value is not vars(second)[name], name

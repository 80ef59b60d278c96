"""The client factory: live money refused by default, each environment's switch applied, config overrides
win, and a client built for the simulator talks to nothing but loopback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from daemon.exchanges.client import (
    ConfigurationRefused,
    build_client,
    has_credentials,
    public_account,
    share_markets,
)
from daemon.exchanges.config import ExchangeAccount
from daemon.sim.server import SimServer

KEYS = {"api_key": "demo-key-0123456789", "secret": "demo-secret-0123456789"}


def account(exchange: str, mode: str = "demo", **fields: Any) -> ExchangeAccount:
    return ExchangeAccount(account_id="acct-1", exchange=exchange, mode=mode, **{**KEYS, **fields})  # type: ignore[arg-type]


def urls_in(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for item in value.values():
            yield from urls_in(item)
    elif isinstance(value, str):
        yield value


async def close(client: Any) -> None:
    await client.close()


# ---- live money ----


@pytest.mark.parametrize("exchange", ["binanceusdm", "bybit", "okx"])
def test_live_mode_is_refused_without_allow_live_and_the_message_names_the_field(exchange: str) -> None:
    with pytest.raises(ConfigurationRefused, match="allow_live") as refused:
        build_client(account(exchange, mode="live"))
    assert "acct-1" in str(refused.value)


async def test_live_mode_with_allow_live_uses_the_exchange_production_hosts() -> None:
    client = build_client(account("binanceusdm", mode="live", allow_live=True))
    try:
        assert client.urls["api"]["fapiPrivate"] == "https://fapi.binance.com/fapi/v1"
        assert not client.options.get("enableDemoTrading")
    finally:
        await close(client)


@pytest.mark.parametrize("exchange", ["gate", "hyperliquid"])
def test_a_demo_mode_the_exchange_does_not_offer_is_refused_rather_than_going_live(exchange: str) -> None:
    with pytest.raises(ConfigurationRefused, match="no 'demo' environment") as refused:
        build_client(account(exchange, mode="demo"))
    assert "testnet" in str(refused.value)


def test_unknown_exchange_is_refused_with_the_supported_list() -> None:
    with pytest.raises(ConfigurationRefused, match="binanceusdm"):
        build_client(account("kraken"))


# ---- environments ----


async def test_binance_demo_points_rest_at_demo_fapi() -> None:
    client = build_client(account("binanceusdm"))
    try:
        assert client.options["enableDemoTrading"] is True
        assert client.urls["api"]["fapiPrivate"].startswith("https://demo-fapi.binance.com/")
        assert client.options["fetchCurrencies"] is False  # no call to the spot host on load_markets
    finally:
        await close(client)


async def test_bybit_demo_points_private_rest_and_stream_at_demo_hosts() -> None:
    client = build_client(account("bybit"))
    try:
        assert client.options["enableDemoTrading"] is True
        assert client.urls["api"]["private"].startswith("https://api-demo.")
        assert client.urls["api"]["ws"]["private"]["contract"].startswith("wss://stream-demo.")
        assert client.options["fetchMarkets"]["types"] == ["linear"]
    finally:
        await close(client)


async def test_okx_demo_sends_the_simulated_trading_header_and_uses_the_paper_stream() -> None:
    client = build_client(account("okx", password="passphrase"))
    try:
        assert client.headers["x-simulated-trading"] == "1"
        assert "wspap" in client.urls["api"]["ws"]
        assert client.password == "passphrase"
    finally:
        await close(client)


@pytest.mark.parametrize(
    ("exchange", "host"),
    [("binanceusdm", "binancefuture.com"), ("bybit", "api-testnet."), ("okx", "okx.com")],
)
async def test_testnet_mode_switches_ccxt_into_sandbox(exchange: str, host: str) -> None:
    client = build_client(account(exchange, mode="testnet"))
    try:
        assert client.isSandboxModeEnabled
        assert any(host in url for url in urls_in(client.urls["api"]))
    finally:
        await close(client)


async def test_ccxt_config_wins_over_quirks_defaults_and_environment() -> None:
    overrides = {
        "urls": {"api": {"fapiPrivate": "http://127.0.0.1:9/fapi/v1"}},
        "options": {"fetchCurrencies": True, "recvWindow": 7000},
        "timeout": 1234,
    }
    client = build_client(account("binanceusdm", ccxt_config=overrides))
    try:
        assert client.urls["api"]["fapiPrivate"] == "http://127.0.0.1:9/fapi/v1"
        assert client.urls["api"]["fapiPublic"].startswith("https://demo-fapi.")  # the rest of demo stays
        assert client.options["fetchCurrencies"] is True
        assert client.options["recvWindow"] == 7000
        assert client.options["defaultType"] == "swap"  # a default the config did not touch
        assert client.timeout == 1234
    finally:
        await close(client)


async def test_clients_do_not_share_mutable_options() -> None:
    first, second = build_client(account("bybit")), build_client(account("bybit"))
    try:
        first.options["fetchMarkets"]["types"].append("spot")
        assert second.options["fetchMarkets"]["types"] == ["linear"]
    finally:
        await close(first)
        await close(second)


def test_account_repr_masks_every_secret() -> None:
    shown = repr(
        account(
            "okx",
            password="my-passphrase",
            private_key="0xdeadbeefdeadbeef",
            ccxt_config={"secret": "config-secret-value", "timeout": 5},
        )
    )
    for secret in ("demo-key-0123456789", "demo-secret-0123456789", "my-passphrase", "0xdeadbeefdeadbeef"):
        assert secret not in shown
    assert "config-secret-value" not in shown
    assert "timeout" in shown and "acct-1" in shown


# ---- against the simulator: nothing leaves loopback ----


@pytest.mark.integration
@pytest.mark.parametrize("dialect", ["binance", "bybit", "okx"])
async def test_default_client_on_the_simulator_talks_only_to_loopback(dialect: str) -> None:
    async with SimServer(dialect, mark_interval_s=None) as sim:
        client = build_client(ExchangeAccount("acct-1", sim.ccxt_id, ccxt_config=sim.ccxt_config()))
        try:
            await client.load_markets()
            balance = await client.fetch_balance()
            await client.fetch_positions()
        finally:
            await close(client)
        assert balance["USDT"]["total"] is not None
        assert sim.engine.request_log, "the simulator saw no request"
        assert {entry["remote"] for entry in sim.engine.request_log} == {"127.0.0.1"}
        # Every host the client could still reach (REST and websocket) is the simulator's.
        elsewhere = [
            url
            for url in urls_in(client.urls["api"])
            if not url.startswith(("http://127.0.0.1", "ws://127.0.0.1"))
        ]
        assert elsewhere == []


@pytest.mark.integration
async def test_shared_markets_spare_the_second_client_its_load_markets() -> None:
    async with SimServer("bybit", mark_interval_s=None) as sim:
        config = sim.ccxt_config()
        source = build_client(ExchangeAccount("first", "bybit", ccxt_config=config))
        target = build_client(ExchangeAccount("second", "bybit", ccxt_config=config))
        try:
            await source.load_markets()
            loads = sum(e["path"] == "/v5/market/instruments-info" for e in sim.engine.request_log)
            share_markets(source, target)
            markets = await target.load_markets()
            assert markets["BTC/USDT:USDT"] is source.markets["BTC/USDT:USDT"]
            assert sum(e["path"] == "/v5/market/instruments-info" for e in sim.engine.request_log) == loads
        finally:
            await close(source)
            await close(target)


async def test_sharing_markets_between_different_exchanges_is_refused() -> None:
    binance, okx = build_client(account("binanceusdm")), build_client(account("okx"))
    try:
        with pytest.raises(ValueError, match="cannot share"):
            share_markets(binance, okx)
    finally:
        await close(binance)
        await close(okx)


def test_only_a_client_with_credentials_watches_for_the_end_of_a_private_session() -> None:
    """A private session's end (Binance's `listenKeyExpired`) fails the socket so the feed opens a new one; a
    client for public data alone (the market hub's, every mark) has no session, so its frames skip that look."""
    keyed = account("binanceusdm")
    assert has_credentials(keyed)
    assert not has_credentials(public_account(keyed))
    assert has_credentials(account("binanceusdm", api_key=None, secret=None, ccxt_config={"apiKey": "k"}))

"""ccxt exceptions -> marginguard's typed errors: what the caller does next (retry, wait, stop, alert)."""

from __future__ import annotations

from typing import Any

import ccxt
import pytest

from daemon.exchanges.client import build_client
from daemon.exchanges.config import ExchangeAccount
from daemon.exchanges.errors import (
    AuthenticationFailed,
    ExchangeError,
    ExchangeUnavailable,
    InvalidRequest,
    PermissionDenied,
    RateLimited,
    TransientError,
    retry_after_seconds,
    translate,
)
from daemon.sim.server import SimServer

MAPPING: list[tuple[type[BaseException], type[ExchangeError]]] = [
    (ccxt.RateLimitExceeded, RateLimited),
    (ccxt.DDoSProtection, RateLimited),
    (ccxt.AuthenticationError, AuthenticationFailed),
    (ccxt.AccountSuspended, AuthenticationFailed),
    (ccxt.PermissionDenied, PermissionDenied),
    (ccxt.AccountNotEnabled, PermissionDenied),
    (ccxt.RestrictedLocation, PermissionDenied),
    (ccxt.InsufficientFunds, InvalidRequest),
    (ccxt.BadRequest, InvalidRequest),
    (ccxt.BadSymbol, InvalidRequest),
    (ccxt.ArgumentsRequired, InvalidRequest),
    (ccxt.OperationRejected, InvalidRequest),
    (ccxt.MarginModeAlreadySet, InvalidRequest),
    (ccxt.InvalidOrder, InvalidRequest),
    (ccxt.NotSupported, InvalidRequest),
    (ccxt.InvalidNonce, TransientError),
    (ccxt.RequestTimeout, TransientError),
    (ccxt.NetworkError, TransientError),
    (ccxt.BadResponse, TransientError),
    (ccxt.NullResponse, TransientError),
    (ccxt.ExchangeNotAvailable, ExchangeUnavailable),
    (ccxt.OnMaintenance, ExchangeUnavailable),
    (ccxt.OperationFailed, TransientError),  # Binance -1001 on a 500: the exchange failed, not the request
]


@pytest.mark.parametrize(("ccxt_error", "ours"), MAPPING, ids=lambda c: c.__name__)
def test_each_ccxt_exception_maps_to_the_error_that_says_what_to_do(
    ccxt_error: type[BaseException], ours: type[ExchangeError]
) -> None:
    original = ccxt_error("binanceusdm something happened")
    translated = translate(original)
    assert type(translated) is ours
    assert translated.cause is original
    assert "something happened" in str(translated)


def test_the_tree_groups_what_is_retried() -> None:
    assert issubclass(RateLimited, TransientError) and issubclass(ExchangeUnavailable, TransientError)
    for final in (AuthenticationFailed, PermissionDenied, InvalidRequest):
        assert not issubclass(final, TransientError)
    assert all(issubclass(ours, ExchangeError) for _, ours in MAPPING)


def test_an_unclassified_refusal_with_the_exchange_answer_is_an_invalid_request() -> None:
    refusal = ccxt.ExchangeError(
        'okx {"code":"59300","data":[],"msg":"Margin call failed. Position does not exist."}'
    )
    assert type(translate(refusal)) is InvalidRequest


def test_an_unclassified_failure_without_an_answer_stays_a_plain_exchange_error() -> None:
    assert type(translate(ccxt.ExchangeError("binanceusdm setMarkets() markets not set"))) is ExchangeError
    assert type(translate(ValueError("unexpected"))) is ExchangeError


def test_python_timeouts_and_connection_errors_are_transient() -> None:
    assert type(translate(TimeoutError())) is TransientError
    assert type(translate(ConnectionResetError("reset by peer"))) is TransientError


def test_a_request_s_query_string_is_not_part_of_what_the_error_says() -> None:
    """A stream's "down" detail is built from the error and reaches the receivers' stale-data alert: a signed
    request's timestamp and signature there are noise (seen in a restarted exchange's 503)."""
    raw = ccxt.ExchangeNotAvailable(
        "binanceusdm GET http://127.0.0.1:1/fapi/v3/positionRisk?timestamp=1796595104942&recvWindow=10000"
        "&signature=c310a6854f73d7ca 503 Service Unavailable: restarting"
    )
    error = translate(raw)
    assert isinstance(error, ExchangeUnavailable)
    assert "signature" not in str(error) and "timestamp" not in str(error)
    assert "/fapi/v3/positionRisk 503 Service Unavailable: restarting" in str(error)
    assert error.cause is raw  # the original, whole, stays with it for the logs


def test_an_error_already_translated_passes_through() -> None:
    error = RateLimited("slow down", retry_after=3.0)
    assert translate(error) is error


# ---- how long to wait ----


def test_retry_after_header_wins() -> None:
    error = translate(
        ccxt.RateLimitExceeded("binanceusdm 429 Too Many Requests"), headers={"Retry-After": "60"}
    )
    assert isinstance(error, RateLimited) and error.retry_after == 60.0


def test_retry_after_header_is_found_whatever_its_case_and_in_http_date_form() -> None:
    assert retry_after_seconds(ccxt.DDoSProtection("x"), {"retry-after": "2.5"}) == 2.5
    headers = {"Retry-After": "Wed, 25 Nov 2026 12:00:30 GMT"}
    now_ms = 1795608000000  # 2026-11-25 12:00:00 UTC
    assert retry_after_seconds(ccxt.DDoSProtection("x"), headers, now_ms) == pytest.approx(30.0)
    assert retry_after_seconds(ccxt.DDoSProtection("x"), headers) is None  # a date needs the current time


def test_retry_after_from_the_answer_body_or_message() -> None:
    assert retry_after_seconds(ccxt.RateLimitExceeded('hyperliquid {"error":"rate","retry_after": 4}')) == 4.0
    assert (
        retry_after_seconds(ccxt.RateLimitExceeded("gate Too many requests, retry after 12 seconds")) == 12.0
    )


def test_binance_ban_until_a_timestamp_becomes_a_delay() -> None:
    banned = ccxt.DDoSProtection(
        'binanceusdm {"code":-1003,"msg":"Way too many requests; IP(127.0.0.1) banned until 1700000120000."}'
    )
    error = translate(banned, now_ms=1700000000000)
    assert isinstance(error, RateLimited) and error.retry_after == 120.0


def test_a_rate_limit_that_does_not_say_how_long_leaves_it_to_the_backoff() -> None:
    error = translate(ccxt.RateLimitExceeded('bybit {"retCode":10006,"retMsg":"Too many visits!"}'))
    assert isinstance(error, RateLimited) and error.retry_after is None


# ---- through a real client against the simulator ----


async def _fetch_balance_under(dialect: str, status: int) -> tuple[BaseException, Any]:
    async with SimServer(dialect, mark_interval_s=None) as sim:
        client = build_client(ExchangeAccount("acct-1", sim.ccxt_id, ccxt_config=sim.ccxt_config()))
        try:
            await client.load_markets()
            sim.faults.set("http_status", status=status, count=1)
            with pytest.raises(ccxt.BaseError) as raised:
                await client.fetch_balance()
            return raised.value, client.last_response_headers
        finally:
            await client.close()


@pytest.mark.integration
async def test_binance_429_becomes_rate_limited_with_the_servers_retry_after() -> None:
    raised, headers = await _fetch_balance_under("binance", 429)
    error = translate(raised, headers)
    assert isinstance(error, RateLimited) and error.retry_after == 60.0


@pytest.mark.integration
async def test_a_503_from_the_exchange_is_unavailable_not_a_refusal() -> None:
    raised, headers = await _fetch_balance_under("okx", 503)
    assert isinstance(translate(raised, headers), ExchangeUnavailable)


@pytest.mark.parametrize(
    "answer",
    [
        'bybit {"retCode":10016,"retMsg":"System error. Please try again later.","result":{}}',
        'binanceusdm {"code":-1008,"msg":"Server is currently overloaded with other requests. Please try again"}',
    ],
)
def test_an_exchanges_own_failure_left_unclassified_by_ccxt_is_passing_not_a_refusal(answer: str) -> None:
    # Read as a refusal, a read was never retried and an add-margin that may have landed was told failed.
    error = translate(ccxt.ExchangeError(answer))
    assert isinstance(error, ExchangeUnavailable)


def test_an_unclassified_refusal_stays_a_refusal() -> None:
    answer = 'okx {"code":"59300","msg":"Margin trading is not supported.","data":[]}'
    assert isinstance(translate(ccxt.ExchangeError(answer)), InvalidRequest)

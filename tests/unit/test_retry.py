"""The one retry path: fatal errors at once, passing ones retried on the capped schedule, never sooner than the
exchange asked, attempts bounded."""

from __future__ import annotations

import ccxt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.core.backoff import Backoff
from daemon.exchanges.errors import AuthenticationFailed, InvalidRequest, RateLimited, TransientError
from daemon.exchanges.retry import Retry, read, wait_after


class _Flaky:
    """Fails with the given exceptions in turn, then answers."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "answer"


def _recording_retry(backoff: Backoff | None = None) -> tuple[Retry, list[float]]:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    return Retry(backoff or Backoff(), draws=lambda: 1.0, sleep=sleep), waits


@pytest.mark.asyncio
async def test_passing_errors_are_retried_until_the_exchange_answers() -> None:
    retry, waits = _recording_retry(Backoff(initial=0.5, factor=2.0, cap=30.0))
    call = _Flaky(ccxt.RequestTimeout("t"), ccxt.ExchangeNotAvailable("503"), ccxt.NetworkError("reset"))
    assert await read(call, retry=retry) == "answer"
    assert call.calls == 4
    assert waits == [0.5, 1.0, 2.0]


@pytest.mark.asyncio
async def test_a_refused_key_or_request_is_raised_at_once_typed() -> None:
    retry, waits = _recording_retry()
    with pytest.raises(AuthenticationFailed):
        await read(_Flaky(ccxt.AuthenticationError("bad key")), retry=retry)
    with pytest.raises(InvalidRequest):
        await read(_Flaky(ccxt.InsufficientFunds("no")), retry=retry)
    assert waits == []


@pytest.mark.asyncio
async def test_attempts_bound_the_retries_and_the_last_error_is_raised_typed() -> None:
    retry, waits = _recording_retry()
    call = _Flaky(*(ccxt.RequestTimeout(f"t{i}") for i in range(5)))
    with pytest.raises(TransientError, match="t2"):
        await read(call, retry=retry, attempts=3)
    assert call.calls == 3 and len(waits) == 2


@pytest.mark.asyncio
async def test_a_rate_limit_waits_at_least_what_the_exchange_asked() -> None:
    retry, waits = _recording_retry(Backoff(initial=0.5, cap=1.0))
    call = _Flaky(ccxt.RateLimitExceeded('binanceusdm {"code":-1003,"retry_after":7}'))
    assert await read(call, retry=retry) == "answer"
    assert waits == [7.0]


@given(
    failures=st.integers(min_value=0, max_value=60),
    draw=st.floats(min_value=0.0, max_value=0.999),
    asked=st.one_of(st.none(), st.floats(min_value=0.0, max_value=600.0)),
)
def test_every_wait_is_capped_floored_and_honours_the_exchange(
    failures: int, draw: float, asked: float | None
) -> None:
    backoff = Backoff()
    retry = Retry(backoff, draws=lambda: draw)
    retry.failures = failures
    error = RateLimited("slow down", retry_after=asked)
    wait = retry.next_wait(error)
    assert backoff.floor <= wait
    assert wait <= max(backoff.cap, asked or 0.0)
    if asked is not None:
        assert wait >= asked
    assert wait_after(TransientError("t"), 1.5) == 1.5

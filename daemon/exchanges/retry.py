"""The one retry-and-translate path for every exchange read marginguard makes.

Every ccxt call goes through here (feeds, market data, records, the runner's reads): a ccxt exception is
translated once into the project's typed errors (`daemon.exchanges.errors`, with the response's `Retry-After`),
then either given up on (refused keys, a refused request: retrying unchanged cannot help) or waited out on the
capped, jittered `Backoff` schedule — and never sooner than the exchange asked for.

Actions (add margin, transfer) are never retried here: a request whose answer was lost may have landed, so its
outcome is settled against the exchange's records by the caller (see `daemon.app.executor`).

    retry = Retry(backoff)
    rows = await read(lambda: client.fetch_positions(), client=client, retry=retry, attempts=5)

Watch loops that run forever use a `Retry` directly: `await retry.pause(error)` after a failure, `retry.reset()`
after a success.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, TypeVar

from daemon.core.backoff import Backoff
from daemon.exchanges.errors import (
    AuthenticationFailed,
    ExchangeError,
    InvalidRequest,
    PermissionDenied,
    RateLimited,
    translate,
)

T = TypeVar("T")

Sleep = Callable[[float], Awaitable[None]]


def translated(exc: BaseException, client: Any = None) -> ExchangeError:
    """The typed error for `exc`, with the rate-limit wait the client's last response asked for."""
    headers = getattr(client, "last_response_headers", None) if client is not None else None
    return translate(exc, headers if isinstance(headers, Mapping) else None, int(time.time() * 1000))


def is_fatal(error: ExchangeError) -> bool:
    """Errors that retrying unchanged cannot cure: refused keys, missing permissions, refused requests."""
    return isinstance(error, AuthenticationFailed | PermissionDenied | InvalidRequest)


def wait_after(error: ExchangeError, backoff_delay: float) -> float:
    """The wait before the next try: the backoff's, and never less than the exchange asked for."""
    if isinstance(error, RateLimited) and error.retry_after is not None:
        return max(backoff_delay, error.retry_after)
    return backoff_delay


class Retry:
    """One caller's retry schedule: capped, jittered delays that grow with each failure and restart on success."""

    def __init__(
        self,
        backoff: Backoff | None = None,
        draws: Callable[[], float] = random.random,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.backoff = backoff or Backoff()
        self._draws = draws
        self._sleep = sleep
        self.failures = 0

    def reset(self) -> None:
        self.failures = 0

    def next_wait(self, error: ExchangeError) -> float:
        wait = wait_after(error, self.backoff.delay(self.failures, self._draws()))
        self.failures += 1
        return wait

    async def pause(self, error: ExchangeError) -> None:
        """Wait before the next try after `error`."""
        await self._sleep(self.next_wait(error))


async def read(
    call: Callable[[], Awaitable[T]],
    *,
    client: Any = None,
    retry: Retry | None = None,
    attempts: int | None = None,
    on_error: Callable[[ExchangeError], None] | None = None,
) -> T:
    """`await call()`, retried on passing errors until it answers or `attempts` are spent.

    Raises the typed error: at once when it is fatal (`is_fatal`), else the last one when the attempts are
    spent. `on_error` hears every failure (to report a stream DOWN, say) before the wait. `CancelledError`
    always propagates: a read is never retried past its caller's cancellation.
    """
    retry = retry or Retry()
    tries = 0
    while True:
        try:
            result = await call()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = translated(exc, client)
            tries += 1
            if on_error is not None:
                on_error(error)
            if is_fatal(error) or (attempts is not None and tries >= attempts):
                raise error from exc
            await retry.pause(error)
            continue
        retry.reset()
        return result


class Reader(Protocol):
    """What the per-account gateway hands to the code that reads the exchange for it (records, the actuator's
    look-ups): `await read(lambda: client.fetch_positions([symbol]))` runs the call through the account's one
    retry-and-translate path and raises only typed errors."""

    async def __call__(self, call: Callable[[], Awaitable[T]]) -> T: ...

"""`ExchangeGateway`: one account's only door to its exchange.

It owns the account's ccxt client (built with `daemon.exchanges.client.build_client`) and every call made on
the account's behalf goes through it, so that each foreign exception is translated once, at this boundary, into
the typed errors of `daemon.exchanges.errors`:

- reads (positions, balance, the exchange's records, the look-ups an action needs) go through the one
  retry-and-translate path (`daemon.exchanges.retry.read`): a fatal error (refused keys, a refused request) is
  raised at once, a passing one (timeout, 5xx, 429) is retried on a capped, jittered schedule, never sooner than
  the exchange's `Retry-After`, for at most `GatewaySettings.read_attempts` tries;
- actions (add margin, transfer: `daemon.exchanges.actuator`) are sent exactly once and never retried: a refusal
  is raised as such; any other failure after the request went out is a `TransientError` whose outcome is unknown
  (the request may have landed), which the top-up executor settles against `records` before deciding again.

    async with ExchangeGateway(account) as gateway:
        rows = await gateway.fetch_positions()
        free = await gateway.free_balance("USDT")
        leg = await gateway.records.leg_margin("BTC/USDT:USDT", Side.LONG)

The streaming feed keeps its own loops over `gateway.client` (websocket watches are not one-shot reads).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar

from daemon.core.backoff import Backoff
from daemon.core.types import Side
from daemon.exchanges.actuator import ActionResult, Actuator
from daemon.exchanges.client import build_client
from daemon.exchanges.config import ExchangeAccount
from daemon.exchanges.errors import ExchangeError, TransientError
from daemon.exchanges.parse import number
from daemon.exchanges.quirks import Quirks, quirks_for
from daemon.exchanges.records import AccountRecords
from daemon.exchanges.retry import Retry, Sleep, read
from daemon.exchanges.venue_records import VenueRecords

T = TypeVar("T")

CLOSE_DEADLINE_S = 5.0


@dataclass(frozen=True)
class GatewaySettings:
    """How hard a read tries before its caller hears the error.

    A few quick tries within a deadline: every caller of a read asks again on its own schedule (the runner on
    its next tick, the executor's records after 2, 4, 8 ... s), and the account's alerts wait while a read
    does, so a read that hangs (each try up to ccxt's own timeout) must not hold them up for long.
    """

    read_attempts: int = 3
    read_deadline_s: float = 12.0
    backoff: Backoff = field(default_factory=lambda: Backoff(initial=0.5, cap=4.0))


class ExchangeGateway:
    def __init__(
        self,
        account: ExchangeAccount,
        *,
        dry_run: bool = False,
        settings: GatewaySettings | None = None,
        quirks: Quirks | None = None,
        client: Any = None,
        draws: Callable[[], float] = random.random,
        sleep: Sleep = asyncio.sleep,
        records_symbols: Callable[[], Iterable[str]] = tuple,
    ) -> None:
        """`client` defaults to `build_client(account)` (raises `ConfigurationRefused` for a refused account);
        `draws` and `sleep` drive the retry schedule (tests make it fast)."""
        self.account = account
        self.quirks = quirks or quirks_for(account.exchange)
        self.client = client if client is not None else build_client(account, self.quirks)
        self.settings = settings or GatewaySettings()
        self._draws = draws
        self._sleep = sleep
        self.failed_reads = 0  # reads that gave up (for logs and tests)
        self.actuator = Actuator(self.client, self.quirks, dry_run, read=self.read)
        # The exchange's own records of the account (liquidations, margin history, a leg's margin), read through
        # this gateway. `records_symbols` names the symbols a venue wants named (Binance's margin history).
        self.records: AccountRecords = VenueRecords(
            self.client, self.quirks, read=self.read, symbols=records_symbols
        )

    @property
    def account_id(self) -> str:
        return self.account.account_id

    # ---- reads: retried, translated ----

    async def read(self, call: Callable[[], Awaitable[T]]) -> T:
        """`await call()` through the one retry-and-translate path; raises only typed `ExchangeError`s."""
        retry = Retry(self.settings.backoff, self._draws, self._sleep)
        deadline = self.settings.read_deadline_s
        try:
            async with asyncio.timeout(deadline):
                return await read(call, client=self.client, retry=retry, attempts=self.settings.read_attempts)
        except ExchangeError:
            self.failed_reads += 1
            raise
        except TimeoutError as exc:  # the deadline's own: `read` turns a call's timeouts into typed errors
            self.failed_reads += 1
            raise TransientError(f"no answer within {deadline:g} s", exc) from exc

    async def fetch_positions(self, symbols: Sequence[str] | None = None) -> list[dict[str, Any]]:
        wanted = list(symbols) if symbols is not None else None
        rows: list[dict[str, Any]] = await self.read(lambda: self.client.fetch_positions(wanted))
        return rows

    async def fetch_balance(self, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        given = dict(params or {})
        balance: dict[str, Any] = await self.read(lambda: self.client.fetch_balance(given))
        return balance

    async def free_balance(self, asset: str, wallet: str | None = None) -> float | None:
        """What of `asset` is free to move (in `wallet`, ccxt's account type, e.g. "funding"; default: the
        futures wallet), or None when the exchange does not say. Raises a typed `ExchangeError` when it cannot
        be read: unknown, never zero and never plenty."""
        balance = await self.fetch_balance({"type": wallet} if wallet else None)
        free = balance.get("free")
        return number(free.get(asset)) if isinstance(free, Mapping) else None

    # ---- actions: sent once, never retried ----

    async def add_isolated_margin(
        self, symbol: str, side: Side, amount: float, tag: str, *, hedged: bool | None = None
    ) -> ActionResult:
        return await self.actuator.add_isolated_margin(symbol, side, amount, tag, hedged=hedged)

    async def transfer_to_futures(self, asset: str, amount: float, tag: str) -> ActionResult:
        return await self.actuator.transfer_to_futures(asset, amount, tag)

    # ---- life cycle ----

    async def close(self) -> None:
        """Close the client's connections (its sockets too); never raises, never takes long."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.client.close(), CLOSE_DEADLINE_S)

    async def __aenter__(self) -> ExchangeGateway:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

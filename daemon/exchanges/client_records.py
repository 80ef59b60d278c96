"""`AccountRecords` read straight from an account's ccxt client, each read through the `read` the account's
gateway gives (its one retry-and-translate path): the gateway's stand-in until the venue records
(`daemon.exchanges.venue_records`), which read margin histories and liquidation records, replace it.

Only what settling a top-up needs: a fresh REST read of one leg's margin, parsed exactly as the account's picture
parses it (so the two compare like with like). It keeps no margin history and reads no liquidation records: it
answers None there, which the caller treats as "this venue keeps none".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from daemon.core.types import Side
from daemon.exchanges.parse import facts_from_positions
from daemon.exchanges.records import LiquidationRecord, MarginChange
from daemon.exchanges.retry import Reader, translated

T = TypeVar("T")


class ClientRecords:
    def __init__(self, client: Any, read: Reader | None = None) -> None:
        """`read` defaults to one attempt with the error translated."""
        self.client = client
        self._read: Reader = read or self._read_once

    async def position_margin(self, symbol: str, side: Side) -> float | None:
        rows = await self._read(lambda: self.client.fetch_positions([symbol]))
        for facts in facts_from_positions(rows):
            if facts.symbol == symbol and facts.side is side and facts.contracts != 0.0:
                return facts.isolated_margin
        return None

    async def margin_changes(self, since_ms: int) -> Sequence[MarginChange] | None:
        return None

    async def liquidations(self, since_ms: int) -> Sequence[LiquidationRecord] | None:
        return None

    async def _read_once(self, call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await call()
        except Exception as exc:
            raise translated(exc, self.client) from exc

"""`AccountRecords` read straight from an account's ccxt client: the runner's stand-in until the per-account
exchange gateway (which implements the same port through its one retry-and-translate path) replaces it.

Only what settling a top-up needs: a fresh REST read of one leg's margin, parsed exactly as the account's picture
parses it (so the two compare like with like). It keeps no margin history and reads no liquidation records: it
answers None there, which the caller treats as "this venue keeps none".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from daemon.core.types import Side
from daemon.exchanges.errors import translate
from daemon.exchanges.parse import facts_from_positions
from daemon.exchanges.records import LiquidationRecord, MarginChange


class ClientRecords:
    def __init__(self, client: Any) -> None:
        self.client = client

    async def position_margin(self, symbol: str, side: Side) -> float | None:
        try:
            rows = await self.client.fetch_positions([symbol])
        except Exception as exc:
            raise translate(exc, getattr(self.client, "last_response_headers", None)) from exc
        for facts in facts_from_positions(rows):
            if facts.symbol == symbol and facts.side is side and facts.contracts != 0.0:
                return facts.isolated_margin
        return None

    async def margin_changes(self, since_ms: int) -> Sequence[MarginChange] | None:
        return None

    async def liquidations(self, since_ms: int) -> Sequence[LiquidationRecord] | None:
        return None

"""The exchange's own records of an account, read when marginguard must not trust its in-memory picture.

Two questions need the exchange's authoritative answer rather than the streamed picture:
- did an add-margin (or transfer) whose answer was lost actually land? (`leg_margin`, `margin_changes`)
- was a vanished position liquidated, or closed by its owner? (`liquidations`)

`AccountRecords` is the port the runner asks; the per-account exchange gateway implements it over ccxt (REST
reads, each through the one retry-and-translate path). A method answers None when the venue keeps no such
record (the caller falls back to what it has), and raises a typed `ExchangeError` when the exchange could not be
asked (the caller keeps the question open and asks again later: an unanswered question is never "no").
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from daemon.core.types import Side

MarginChangeKind = Literal["add", "reduce", "transfer_in", "transfer_out"]


@dataclass(frozen=True, slots=True)
class MarginChange:
    """One change of an isolated leg's margin (or of the futures wallet, for transfers) on the exchange's books.

    `amount` is positive for margin added (or funds moved in), negative for margin removed (or moved out).
    `side` is None where the venue does not say which leg (one-way accounts).
    """

    symbol: str | None
    side: Side | None
    amount: float
    asset: str
    ts_ms: int
    kind: MarginChangeKind


@dataclass(frozen=True, slots=True)
class LiquidationRecord:
    """A liquidation on the exchange's books: the leg, the size closed, the price, when."""

    symbol: str
    side: Side
    contracts: float
    price: float | None
    ts_ms: int
    source: str  # what said so, e.g. "autoclose order", "BustTrade execution", "liquidation bill"


@dataclass(frozen=True, slots=True)
class LegMargin:
    """An open leg as a fresh REST read gives it: its size, and its isolated margin (None: the exchange gives
    none for it)."""

    contracts: float
    margin: float | None


class AccountRecords(Protocol):
    async def leg_margin(self, symbol: str, side: Side) -> LegMargin | None:
        """The leg's size and isolated margin by a fresh REST read; None when the leg is not open."""
        ...

    async def margin_changes(self, since_ms: int) -> Sequence[MarginChange] | None:
        """Margin changes since `since_ms`, oldest first; None when the venue keeps no such history."""
        ...

    async def liquidations(
        self, since_ms: int, symbols: Collection[str] = ()
    ) -> Sequence[LiquidationRecord] | None:
        """Liquidations since `since_ms`, oldest first; None when the venue keeps no such record. `symbols`: the
        symbols asked about, where naming them makes the read cheaper (records of others may still come)."""
        ...

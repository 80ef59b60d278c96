"""What the exchange adapters tell the core: facts about positions, marks, balances and stream health.

Feeds translate ccxt's structures into these events; `daemon.core.state.apply` folds them into an account's
state. Every optional field is None when the source did not say (a thin websocket push), and a None never
overwrites a known value.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from daemon.core.types import ContractType, MarginMode, Side, Tier
from daemon.core.values import value


@dataclass(frozen=True, slots=True)
class PositionFacts:
    """What one source said about one position leg. `contracts == 0` means the leg is closed."""

    symbol: str
    side: Side
    contracts: float
    entry_price: float | None = None
    mark_price: float | None = None
    contract_size: float | None = None
    contract_type: ContractType | None = None
    margin_mode: MarginMode | None = None
    leverage: float | None = None
    isolated_margin: float | None = None
    exchange_liquidation_price: float | None = None  # the exchange's own figure, kept beside the model's


@dataclass(frozen=True, slots=True)
class PositionSnapshot:
    """A complete list of the account's open legs (a REST snapshot): legs absent from it are closed."""

    positions: tuple[PositionFacts, ...]
    ts_ms: int


@dataclass(frozen=True, slots=True)
class PositionUpdate:
    """A push about some legs (possibly thin): merged onto what is known; absent legs are untouched."""

    positions: tuple[PositionFacts, ...]
    ts_ms: int


@value
class MarkPrice:
    symbol: str
    price: float
    ts_ms: int


@dataclass(frozen=True, slots=True)
class BalanceUpdate:
    """The cross collateral (wallet balance in the settle currency, without isolated margins)."""

    wallet_balance: float
    ts_ms: int


@dataclass(frozen=True, slots=True)
class MarketRules:
    """Per-symbol metadata from the exchange: contract size and type, maintenance tiers, taker fee."""

    symbol: str
    contract_size: float
    contract_type: ContractType
    tiers: tuple[Tier, ...]
    taker_fee_rate: float = 0.0
    max_leverage: float | None = None


class Freshness(enum.Enum):
    FRESH = "fresh"
    STALE = "stale"  # connected or not, no data within the stream's threshold: the picture may be wrong
    DOWN = "down"  # the stream failed and is being reconnected


@dataclass(frozen=True, slots=True)
class StreamHealth:
    """A stream's freshness changed. `refused` marks the exchange refusing the account's key or its permissions:
    the feed has stopped for good (retrying would not help) and a person must act. `silent_since_ms` is when a
    STALE or DOWN stream last carried data, where the feed knows it (None: at `ts_ms` for DOWN; for STALE, the
    feed has already waited out the stream's `stale_after_s`)."""

    stream: str  # e.g. "positions", "balance", "mark:BTC/USDT:USDT"
    freshness: Freshness
    ts_ms: int
    detail: str = ""
    refused: bool = False
    silent_since_ms: int | None = None


@dataclass(frozen=True, slots=True)
class StreamLeft:
    """The account stopped watching a stream (a mark stream of a symbol it no longer holds): whatever the stream
    last said is forgotten, so a stream opened for the symbol later starts with nothing said, not with an
    outage that ended for this account when it stopped listening."""

    stream: str


@dataclass(frozen=True, slots=True)
class LegLiquidated:
    """The exchange's own records say it liquidated this leg: `contracts` closed at `price` (None: the record
    gives none) at `ts_ms`. `source` names the record (a forced order, a bust execution, a history row)."""

    symbol: str
    side: Side
    contracts: float
    price: float | None
    ts_ms: int
    source: str


class GoneCause(enum.Enum):
    OWNER = (
        "owner"  # the exchange's records were read and hold no liquidation of the leg: its owner closed it
    )
    UNKNOWN = "unknown"  # the records could not be read in time: whether it was liquidated is not known


@dataclass(frozen=True, slots=True)
class LegGone:
    """What the exchange's records say about a leg that left the picture, when they hold no liquidation of it.
    `detail` says why the cause is unknown (the error that kept the records from being read)."""

    symbol: str
    side: Side
    cause: GoneCause
    ts_ms: int
    detail: str = ""


Event = (
    PositionSnapshot
    | PositionUpdate
    | MarkPrice
    | BalanceUpdate
    | MarketRules
    | StreamHealth
    | StreamLeft
    | LegLiquidated
    | LegGone
)

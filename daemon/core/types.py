"""The margin model's vocabulary: positions, maintenance tiers, accounts and the risk figures derived from them.

Everything here is a frozen value: the core never mutates what it is given, so the shell can share snapshots
between tasks without locks. Prices and amounts are floats in the settle currency (USDT for linear contracts,
the coin for inverse ones); `None` always means "not known", never "zero" or "safe".
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from daemon.core.values import value


class Side(enum.Enum):
    LONG = "long"
    SHORT = "short"

    # A leg's key is (symbol, side), looked up several times per leg at every mark. Enum's own __hash__ is a
    # Python function (hash of the name); members are singletons compared by identity, so identity's C hash
    # is as right and several times cheaper.
    __hash__ = object.__hash__

    @property
    def sign(self) -> int:
        """+1 for a long, -1 for a short: the sign of the position's PnL as the price rises."""
        return 1 if self is Side.LONG else -1


class MarginMode(enum.Enum):
    ISOLATED = "isolated"
    CROSS = "cross"


class ContractType(enum.Enum):
    LINEAR = "linear"  # margined and settled in the quote currency; PnL = q * (P - EP)
    INVERSE = "inverse"  # margined and settled in the coin; PnL = q * (1/EP - 1/P) in coin


class PositionMode(enum.Enum):
    ONE_WAY = "one-way"
    HEDGE = "hedge"


@dataclass(frozen=True, slots=True)
class Tier:
    """One maintenance bracket: from `min_notional` (inclusive) upwards, until the next tier's minimum.

    `maintenance_amount` is Binance's "cum" and Bybit's "deduction": subtracted from notional * mmr so that
    the maintenance margin is continuous across bracket boundaries. `min_notional` is measured in the unit
    the exchange family sizes its brackets in (see `MarginFamily.tier_basis`).
    """

    min_notional: float
    mmr: float
    maintenance_amount: float = 0.0
    max_leverage: float | None = None


@value
class Position:
    """One position leg. In hedge mode a symbol may have a long and a short leg at once.

    `contracts` is always positive; `side` carries the direction. For linear contracts `contract_size` is
    base units per contract; for inverse ones it is the quote (USD) value of one contract.
    """

    symbol: str
    side: Side
    contracts: float
    contract_size: float
    entry_price: float
    mark_price: float
    margin_mode: MarginMode
    contract_type: ContractType = ContractType.LINEAR
    leverage: float | None = None
    isolated_margin: float | None = None
    tiers: tuple[Tier, ...] = ()
    taker_fee_rate: float = 0.0
    max_leverage: float | None = None

    @property
    def quantity(self) -> float:
        """Base units (linear) or quote value (inverse) held: contracts times contract size."""
        return self.contracts * self.contract_size


@dataclass(frozen=True, slots=True)
class Account:
    """One exchange account's margin picture.

    `wallet_balance` is the cross collateral in the settle currency (wallet balance excluding the margin
    locked in isolated positions). It may be None when every position is isolated.
    """

    exchange: str
    positions: tuple[Position, ...]
    wallet_balance: float | None = None
    settle_currency: str = "USDT"


@value
class PositionRisk:
    """What the model says about one position leg.

    `liquidation_price` is None when no such price exists (the note says why) or cannot be known.
    `distance_to_liquidation` is the fraction of the mark price the market must move against the position
    to reach the liquidation price: positive while safe, 0 or negative once at or past it.
    `margin_ratio` is maintenance margin over margin balance (1.0 means liquidation), the Binance and Bybit
    convention; None when the margin balance is not positive.
    """

    symbol: str
    side: Side
    liquidation_price: float | None
    bankruptcy_price: float | None
    maintenance_margin: float
    margin_ratio: float | None
    distance_to_liquidation: float | None
    note: str | None = None


@value
class AccountRisk:
    """Model output for a whole account: each leg in input order, plus account totals.

    `margin_balance` is cross collateral plus every position's unrealised PnL plus the isolated margins;
    `maintenance_margin` sums every leg; `margin_ratio` is their quotient (None when the balance is not
    positive). `cross_margin_ratio` is the same figure for the cross part alone, which is what decides a
    cross liquidation.
    """

    positions: tuple[PositionRisk, ...]
    margin_balance: float
    maintenance_margin: float
    margin_ratio: float | None
    cross_margin_ratio: float | None = None
    notes: tuple[str, ...] = field(default=())

"""The simulator's state and event types, shared by the engine, the server and every dialect.

`daemon.sim.engine` re-exports all of them; import from there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from daemon.core.types import MarginMode, Side

SETTLE = "USDT"


class EngineError(Exception):
    """A request the simulated exchange refuses. `kind` is what dialects map to their error codes."""

    KINDS = frozenset(
        {
            "not_found",
            "no_position",
            "not_isolated",
            "insufficient_balance",
            "margin_mode_already_set",
            "leverage_too_high",
            "position_open",
            "invalid",
        }
    )

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


@dataclass(slots=True)
class SimPosition:
    symbol: str
    side: Side
    contracts: float
    entry_price: float
    margin_mode: MarginMode
    leverage: float
    isolated_margin: float = 0.0
    position_side: str = "BOTH"  # "BOTH" in one-way mode, "LONG"/"SHORT" in hedge mode
    update_time_ms: int = 0


@dataclass(slots=True)
class SimAccount:
    api_key: str
    secret: str
    passphrase: str = ""
    wallet: dict[str, float] = field(default_factory=lambda: {SETTLE: 10_000.0})
    hedge_mode: bool = False
    leverage: dict[str, float] = field(default_factory=dict)
    margin_mode: dict[str, MarginMode] = field(default_factory=dict)
    positions: list[SimPosition] = field(default_factory=list)
    realized_pnl: float = 0.0
    fees_paid: float = 0.0
    funding_paid: float = 0.0  # funding settled, net: positive paid, negative received
    insurance_covered: float = 0.0  # liquidation deficits the exchange absorbed instead of the account

    def leverage_for(self, symbol: str) -> float:
        return self.leverage.get(symbol, 20.0)

    def margin_mode_for(self, symbol: str) -> MarginMode:
        return self.margin_mode.get(symbol, MarginMode.CROSS)

    def position_side_for(self, side: Side) -> str:
        if not self.hedge_mode:
            return "BOTH"
        return "LONG" if side is Side.LONG else "SHORT"


# ---- events (what dialects turn into websocket pushes) ----


@dataclass(frozen=True, slots=True)
class MarkChanged:
    symbol: str
    mark: float
    index: float
    ts_ms: int


@dataclass(frozen=True, slots=True)
class PositionChanged:
    """`position` is a snapshot, or None when the leg was closed (then `symbol`/`side` name it)."""

    api_key: str
    position: SimPosition | None
    # "open" | "increase" | "reduce" | "close" | "set" | "margin" | "leverage" | "liquidation" | "funding"
    # (an isolated leg's margin paid or received funding); a one-way flip is a "close" followed by an "open".
    reason: str
    symbol: str
    side: Side
    position_side: str
    ts_ms: int


@dataclass(frozen=True, slots=True)
class BalanceChanged:
    api_key: str
    asset: str
    wallet: float  # cross wallet after the change
    # "deposit" | "withdraw" | "fee" | "realized_pnl" | "isolated_margin" | "liquidation" | "set" | "funding"
    reason: str
    ts_ms: int


@dataclass(frozen=True, slots=True)
class MarginCall:
    api_key: str
    symbols: tuple[str, ...]
    margin_ratio: float
    ts_ms: int


@dataclass(frozen=True, slots=True)
class Liquidated:
    api_key: str
    symbol: str
    side: Side
    contracts: float
    price: float  # the bankruptcy price it was closed at
    loss: float  # positive: what the account lost on the close
    ts_ms: int


Event = MarkChanged | PositionChanged | BalanceChanged | MarginCall | Liquidated


@dataclass(frozen=True, slots=True)
class AccountSummary:
    """Exchange-style totals of one account in the settle currency."""

    wallet_balance: float  # cross wallet + isolated margins
    cross_wallet: float
    unrealized_pnl: float
    margin_balance: float  # wallet_balance + unrealized PnL
    position_initial_margin: float
    maintenance_margin: float
    available_balance: float
    margin_ratio: float | None

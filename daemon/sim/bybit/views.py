"""Reads the engine and turns one account's state into Bybit rows (positions, wallet, tickers).

The liquidation and bankruptcy prices and the maintenance margin are the simulator's oracle's
(`engine.risk(api_key)`, Bybit's published rules written apart from marginguard's model), rounded to the
instrument's tick as Bybit rounds its `liqPrice`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from daemon.core.types import MarginMode, PositionRisk, Side
from daemon.sim.bybit.payloads import (
    CoinFigures,
    PositionFigures,
    TickerStats,
    position_row,
    ticker_row,
    unified_account_row,
)
from daemon.sim.engine import SETTLE, Engine, SimAccount, SimPosition
from daemon.sim.markets import Market

FUNDING_PERIOD_MS = 8 * 3600 * 1000


def position_idx(account: SimAccount, side: Side | None) -> int:
    """0 in one-way mode; 1 (long leg) / 2 (short leg) in hedge mode."""
    if not account.hedge_mode or side is None:
        return 0
    return 1 if side is Side.LONG else 2


def unified_margin_mode(account: SimAccount) -> str:
    """Unified accounts have one margin mode; the engine keeps one per symbol, so any isolated one wins."""
    modes = set(account.margin_mode.values()) | {p.margin_mode for p in account.positions}
    return "ISOLATED_MARGIN" if MarginMode.ISOLATED in modes else "REGULAR_MARGIN"


def side_of_idx(account: SimAccount, idx: int) -> Side | None:
    """The leg a request's positionIdx names (None: the one-way leg, whichever side it is)."""
    if not account.hedge_mode:
        return None
    return Side.LONG if idx == 1 else Side.SHORT


@dataclass(slots=True)
class SessionState:
    """What the dialect remembers beyond the engine: a push sequence and per-symbol price statistics."""

    seq: int = 1_000_000
    stats: dict[str, list[float]] = field(default_factory=dict)  # symbol -> [open, high, low, last mark]

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def observe(self, symbol: str, mark: float) -> None:
        row = self.stats.get(symbol)
        if row is None:
            self.stats[symbol] = [mark, mark, mark, mark]
        else:
            row[1] = max(row[1], mark)
            row[2] = min(row[2], mark)
            row[3] = mark


def _initial_margin(engine: Engine, pos: SimPosition, leg: PositionRisk | None) -> float:
    """Bybit's position IM: value at entry over leverage plus the taker fee to close at bankruptcy."""
    market = engine.markets[pos.symbol]
    value = pos.contracts * market.contract_size * pos.entry_price
    close_price = leg.bankruptcy_price if leg is not None and leg.bankruptcy_price else pos.entry_price
    return value / pos.leverage + pos.contracts * market.contract_size * close_price * market.taker_fee


def position_figures(
    engine: Engine, account: SimAccount, pos: SimPosition, leg: PositionRisk | None, seq: int
) -> PositionFigures:
    market = engine.markets[pos.symbol]
    initial = _initial_margin(engine, pos, leg)
    return PositionFigures(
        market=market,
        position_idx=position_idx(account, pos.side),
        side=pos.side,
        size=pos.contracts,
        entry_price=pos.entry_price,
        mark=engine.marks[pos.symbol],
        leverage=pos.leverage,
        margin_mode=pos.margin_mode,
        position_balance=pos.isolated_margin if pos.margin_mode is MarginMode.ISOLATED else initial,
        initial_margin=initial,
        maintenance_margin=leg.maintenance_margin if leg is not None else 0.0,
        unrealised_pnl=engine.unrealized_pnl(pos),
        liquidation_price=leg.liquidation_price if leg is not None else None,
        bankruptcy_price=leg.bankruptcy_price if leg is not None else None,
        created_ms=pos.update_time_ms,
        updated_ms=pos.update_time_ms,
        seq=seq,
    )


def empty_figures(
    engine: Engine, account: SimAccount, market: Market, side: Side | None, seq: int, updated_ms: int
) -> PositionFigures:
    """The row Bybit shows for a symbol without a position (or a leg that was just closed): size 0."""
    return PositionFigures(
        market=market,
        position_idx=position_idx(account, side),
        side=None,
        size=0.0,
        entry_price=0.0,
        mark=engine.marks[market.symbol],
        leverage=account.leverage_for(market.symbol),
        margin_mode=account.margin_mode_for(market.symbol),
        position_balance=0.0,
        initial_margin=0.0,
        maintenance_margin=0.0,
        unrealised_pnl=0.0,
        liquidation_price=None,
        bankruptcy_price=None,
        created_ms=updated_ms,
        updated_ms=updated_ms,
        seq=seq,
    )


def position_rows(
    engine: Engine, api_key: str, seq: int, websocket: bool = False, symbol: str | None = None
) -> list[dict[str, Any]]:
    """Rows of every open leg of the account (of one symbol when given), in the engine's order."""
    account = engine.account(api_key)
    if not account.positions:
        return []
    risk = engine.risk(api_key)
    rows = []
    for pos, leg in zip(account.positions, risk.positions, strict=True):
        if symbol is None or pos.symbol == symbol:
            rows.append(position_row(position_figures(engine, account, pos, leg, seq), websocket))
    return rows


def wallet_row(engine: Engine, api_key: str) -> dict[str, Any]:
    """The UNIFIED account: wallet balance including isolated margins, equity, IM and MM per coin."""
    account = engine.account(api_key)
    risk = engine.risk(api_key) if account.positions else None
    legs = list(zip(account.positions, risk.positions, strict=True)) if risk is not None else []
    coins = []
    for asset, balance in sorted(account.wallet.items()):
        if asset == SETTLE:
            isolated = sum(
                p.isolated_margin for p in account.positions if p.margin_mode is MarginMode.ISOLATED
            )
            coins.append(
                CoinFigures(
                    coin=asset,
                    wallet_balance=balance + isolated,
                    unrealised_pnl=sum(engine.unrealized_pnl(p) for p in account.positions),
                    position_im=sum(_initial_margin(engine, p, leg) for p, leg in legs),
                    position_mm=sum(leg.maintenance_margin for _, leg in legs),
                    usd_price=1.0,
                    cum_realised_pnl=account.realized_pnl,
                )
            )
        else:
            market = engine.markets.get(f"{asset}{SETTLE}")
            coins.append(
                CoinFigures(
                    coin=asset,
                    wallet_balance=balance,
                    unrealised_pnl=0.0,
                    position_im=0.0,
                    position_mm=0.0,
                    usd_price=engine.marks[market.symbol] if market is not None else None,
                    cum_realised_pnl=0.0,
                )
            )
    return unified_account_row(coins, isolated_mode=unified_margin_mode(account) == "ISOLATED_MARGIN")


def ticker_stats(engine: Engine, session: SessionState, symbol: str) -> TickerStats:
    mark = engine.marks[symbol]
    open_price, high, low, _ = session.stats.get(symbol, [mark, mark, mark, mark])
    open_interest = sum(
        pos.contracts
        for account in engine.accounts.values()
        for pos in account.positions
        if pos.symbol == symbol and pos.side is Side.LONG
    )
    return TickerStats(
        open_price=open_price, high=max(high, mark), low=min(low, mark), open_interest=open_interest
    )


def next_funding_ms(now_ms: int) -> int:
    return (now_ms // FUNDING_PERIOD_MS + 1) * FUNDING_PERIOD_MS


def ticker(engine: Engine, session: SessionState, symbol: str) -> dict[str, Any]:
    market = engine.markets[symbol]
    return ticker_row(
        market,
        engine.marks[symbol],
        engine.index_price(symbol),
        engine.funding_rate(symbol),
        ticker_stats(engine, session, symbol),
        next_funding_ms(engine.now_ms()),
    )

"""Read the engine's state for one account and hand it to the OKX payload builders.

Kept apart from `payloads` so the builders stay pure functions of plain figures, and apart from the REST
and websocket handlers so both answer from exactly the same reading of the state.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from daemon.core.types import AccountRisk, MarginMode, Side
from daemon.sim.engine import SETTLE, Engine, SimAccount, SimPosition
from daemon.sim.okx.account_payloads import (
    CurrencyFigures,
    LegFigures,
    balance_row,
    closed_position_row,
    position_row,
)
from daemon.sim.okx.payloads import Row, inst_id, stable_id


def uid_of(api_key: str) -> str:
    """The account's OKX uid: a stable digit string derived from its key."""
    return stable_id("uid", api_key)


def _risk(engine: Engine, account: SimAccount) -> AccountRisk | None:
    return engine.risk(account.api_key) if account.positions else None


OpenedAt = Callable[[str, str, Side], int | None]  # (api key, symbol, side) -> when the leg was opened


def _leg(
    engine: Engine,
    account: SimAccount,
    pos: SimPosition,
    risk: AccountRisk,
    index: int,
    opened_at: OpenedAt | None,
) -> LegFigures:
    return LegFigures(
        market=engine.markets[pos.symbol],
        side=pos.side,
        contracts=pos.contracts,
        entry_price=pos.entry_price,
        mark=engine.marks[pos.symbol],
        index=engine.index_price(pos.symbol),
        leverage=pos.leverage,
        margin_mode=pos.margin_mode,
        isolated_margin=pos.isolated_margin,
        hedge_mode=account.hedge_mode,
        risk=risk.positions[index],
        update_time_ms=pos.update_time_ms,
        opened_ms=opened_at(account.api_key, pos.symbol, pos.side) if opened_at is not None else None,
    )


def position_rows(
    engine: Engine,
    account: SimAccount,
    inst_ids: Collection[str] | None = None,
    opened_at: OpenedAt | None = None,
) -> list[Row]:
    """Every open leg of the account as OKX position rows, optionally only for some instruments."""
    risk = _risk(engine, account)
    if risk is None:
        return []
    rows = []
    for index, pos in enumerate(account.positions):
        if inst_ids and inst_id(engine.markets[pos.symbol]) not in inst_ids:
            continue
        rows.append(position_row(_leg(engine, account, pos, risk, index, opened_at), account.api_key))
    return rows


def position_row_for(
    engine: Engine, account: SimAccount, symbol: str, side: Side, opened_at: OpenedAt | None = None
) -> Row | None:
    """The row of one open leg, or None when it is not open (any more)."""
    index = next(
        (i for i, pos in enumerate(account.positions) if pos.symbol == symbol and pos.side is side), None
    )
    risk = _risk(engine, account)
    if index is None or risk is None:
        return None
    leg = _leg(engine, account, account.positions[index], risk, index, opened_at)
    return position_row(leg, account.api_key)


def flat_position_row(engine: Engine, account: SimAccount, symbol: str, side: Side, ts_ms: int) -> Row:
    """The pos "0" row OKX pushes once a leg has been closed or liquidated."""
    return closed_position_row(
        engine.markets[symbol],
        account.api_key,
        side,
        account.hedge_mode,
        account.margin_mode_for(symbol),
        account.leverage_for(symbol),
        ts_ms,
    )


def cash_balances(account: SimAccount) -> dict[str, float]:
    """OKX's cashBal per currency: the cross wallet plus the margin held by isolated positions."""
    isolated = sum(pos.isolated_margin for pos in account.positions if pos.margin_mode is MarginMode.ISOLATED)
    return {
        asset: amount + (isolated if asset == SETTLE else 0.0) for asset, amount in account.wallet.items()
    }


def _settle_figures(engine: Engine, account: SimAccount, ts_ms: int) -> CurrencyFigures:
    risk = _risk(engine, account)
    isolated_margin = isolated_upl = cross_upl = cross_initial = cross_maintenance = notional = 0.0
    for index, pos in enumerate(account.positions):
        market = engine.markets[pos.symbol]
        leg_notional = engine.notional(pos)
        upl = engine.unrealized_pnl(pos)
        notional += leg_notional
        if pos.margin_mode is MarginMode.ISOLATED:
            isolated_margin += pos.isolated_margin
            isolated_upl += upl
        else:
            cross_upl += upl
            cross_initial += leg_notional / pos.leverage
            if risk is not None:
                # OKX reports the closing fee apart from mmr; the model's requirement includes it.
                requirement = risk.positions[index].maintenance_margin
                cross_maintenance += max(0.0, requirement - leg_notional * market.taker_fee)
    latest = max((pos.update_time_ms for pos in account.positions), default=ts_ms)
    return CurrencyFigures(
        ccy=SETTLE,
        cross_wallet=account.wallet.get(SETTLE, 0.0),
        isolated_margin=isolated_margin,
        isolated_upl=isolated_upl,
        cross_upl=cross_upl,
        cross_initial_margin=cross_initial,
        cross_maintenance=cross_maintenance,
        cross_margin_ratio=risk.cross_margin_ratio if risk is not None else None,
        notional=notional,
        update_time_ms=latest,
    )


def balance_data(engine: Engine, account: SimAccount, currencies: Collection[str] | None = None) -> Row:
    """GET /api/v5/account/balance's single data element (also the `account` channel's), for `currencies`."""
    ts_ms = engine.now_ms()
    figures = []
    for asset in sorted(account.wallet):
        if currencies and asset not in currencies:
            continue
        if asset == SETTLE:
            figures.append(_settle_figures(engine, account, ts_ms))
        else:
            figures.append(
                CurrencyFigures(
                    asset,
                    account.wallet[asset],
                    0.0,
                    0.0,
                    0.0,
                    0.0,
                    0.0,
                    None,
                    0.0,
                    ts_ms,
                    usd_price=engine.marks.get(f"{asset}{SETTLE}"),  # coins are valued at their swap's mark
                )
            )
    return balance_row(figures, ts_ms)

"""OKX v5 account payloads: positions, balances, `balance_and_position` elements and account config.

The simulated account is a single-currency margin account (`acctLv` "2"): requirements are reported per
currency in `details`, and the account-level `imr`/`mmr`/`mgnRatio` are "" as OKX leaves them there.
All builders are pure functions of plain figures (see `daemon.sim.okx.views` for reading the engine).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from daemon.core.types import MarginMode, PositionRisk, Side
from daemon.sim.markets import Market
from daemon.sim.okx.payloads import INST_TYPE, Row, inst_id, okx_number, stable_id

ACCOUNT_LEVEL = "2"  # single-currency margin


def pos_side(side: Side, hedge_mode: bool) -> str:
    """OKX's posSide: "net" in one-way (net) mode, "long"/"short" in long/short mode."""
    if not hedge_mode:
        return "net"
    return "long" if side is Side.LONG else "short"


def mgn_mode(mode: MarginMode) -> str:
    return "isolated" if mode is MarginMode.ISOLATED else "cross"


@dataclass(frozen=True, slots=True)
class LegFigures:
    """What one open leg needs from the engine and the model to be written as an OKX position."""

    market: Market
    side: Side
    contracts: float
    entry_price: float
    mark: float
    index: float
    leverage: float
    margin_mode: MarginMode
    isolated_margin: float
    hedge_mode: bool
    risk: PositionRisk
    update_time_ms: int
    opened_ms: int | None = None  # when the leg was opened, if known


def _inverse_ratio(ratio: float | None) -> float | None:
    """OKX's mgnRatio is margin balance over requirement (liquidation at 1); the model's is the inverse."""
    if ratio is None or ratio <= 0:
        return None
    return 1.0 / ratio


def position_row(leg: LegFigures, api_key: str) -> Row:
    """One row of GET /api/v5/account/positions and of the `positions` channel."""
    market = leg.market
    quantity = leg.contracts * market.contract_size
    notional = quantity * leg.mark
    upl = leg.side.sign * quantity * (leg.mark - leg.entry_price)
    upl_last = upl
    opening_margin = quantity * leg.entry_price / leg.leverage
    fee = -quantity * leg.entry_price * market.taker_fee
    # The model's requirement counts the taker fee to close; OKX reports that fee apart from `mmr`.
    maintenance = max(0.0, leg.risk.maintenance_margin - notional * market.taker_fee)
    isolated = leg.margin_mode is MarginMode.ISOLATED
    signed = leg.contracts if leg.hedge_mode or leg.side is Side.LONG else -leg.contracts
    break_even = (
        leg.entry_price * (1 + leg.side.sign * market.taker_fee) / (1 - leg.side.sign * market.taker_fee)
    )
    side_name = pos_side(leg.side, leg.hedge_mode)
    return {
        "adl": "1",
        "availPos": okx_number(leg.contracts) if leg.hedge_mode else "",
        "avgPx": okx_number(leg.entry_price),
        "baseBal": "",
        "baseBorrowed": "",
        "baseInterest": "",
        "bePx": okx_number(break_even),
        "bizRefId": "",
        "bizRefType": "",
        "cTime": str(leg.opened_ms if leg.opened_ms is not None else leg.update_time_ms),
        "ccy": market.settle,
        "clSpotInUseAmt": "",
        "closeOrderAlgo": [],
        "deltaBS": "",
        "deltaPA": "",
        "fee": okx_number(fee),
        "fundingFee": "0",
        "gammaBS": "",
        "gammaPA": "",
        "hedgedPos": "",
        "idxPx": okx_number(leg.index),
        "imr": "" if isolated else okx_number(notional / leg.leverage),
        "instId": inst_id(market),
        "instType": INST_TYPE,
        "interest": "",
        "last": okx_number(leg.mark),
        "lever": okx_number(leg.leverage),
        "liab": "",
        "liabCcy": "",
        "liqPenalty": "0",
        "liqPx": okx_number(leg.risk.liquidation_price),
        "margin": okx_number(leg.isolated_margin) if isolated else "",
        "markPx": okx_number(leg.mark),
        "maxSpotInUseAmt": "",
        "mgnMode": mgn_mode(leg.margin_mode),
        "mgnRatio": okx_number(_inverse_ratio(leg.risk.margin_ratio)),
        "mmr": okx_number(maintenance),
        "nonSettleAvgPx": "",
        "notionalUsd": okx_number(notional),
        "optVal": "",
        "pendingCloseOrdLiabVal": "",
        "pnl": "0",
        "pos": okx_number(signed),
        "posCcy": "",
        "posId": stable_id(api_key, market.symbol, side_name),
        "posSide": side_name,
        "quoteBal": "",
        "quoteBorrowed": "",
        "quoteInterest": "",
        "realizedPnl": okx_number(fee),
        "settledPnl": "",
        "spotInUseAmt": "",
        "spotInUseCcy": "",
        "thetaBS": "",
        "thetaPA": "",
        "tradeId": "",
        "uTime": str(leg.update_time_ms),
        "upl": okx_number(upl),
        "uplLastPx": okx_number(upl_last),
        "uplRatio": okx_number(upl / opening_margin if opening_margin else None),
        "uplRatioLastPx": okx_number(upl_last / opening_margin if opening_margin else None),
        "usdPx": "",
        "vegaBS": "",
        "vegaPA": "",
    }


def closed_position_row(
    market: Market,
    api_key: str,
    side: Side,
    hedge_mode: bool,
    margin_mode: MarginMode,
    leverage: float,
    ts_ms: int,
) -> Row:
    """The push OKX sends when a leg goes flat (closed or liquidated): the same row with pos "0"."""
    side_name = pos_side(side, hedge_mode)
    empty = dict.fromkeys(
        (
            "avgPx",
            "bePx",
            "idxPx",
            "imr",
            "liqPx",
            "margin",
            "markPx",
            "mgnRatio",
            "mmr",
            "notionalUsd",
            "upl",
        ),
        "",
    )
    return {
        **empty,
        "adl": "",
        "availPos": "0" if hedge_mode else "",
        "cTime": str(ts_ms),
        "ccy": market.settle,
        "instId": inst_id(market),
        "instType": INST_TYPE,
        "last": "",
        "lever": okx_number(leverage),
        "mgnMode": mgn_mode(margin_mode),
        "pos": "0",
        "posCcy": "",
        "posId": stable_id(api_key, market.symbol, side_name),
        "posSide": side_name,
        "uTime": str(ts_ms),
        "uplRatio": "",
    }


def balance_and_position_data(
    event_type: str, cash_balances: dict[str, float], positions: list[Row], ts_ms: int
) -> Row:
    """One element of the `balance_and_position` channel: cash balances and the positions after the event.

    `positions` are full position rows; this channel carries only a few of their fields.
    """
    keep = ("posId", "tradeId", "instId", "instType", "mgnMode", "posSide", "pos", "ccy", "posCcy", "avgPx")
    return {
        "pTime": str(ts_ms),
        "eventType": event_type,
        "balData": [
            {"ccy": ccy, "cashBal": okx_number(cash), "uTime": str(ts_ms)}
            for ccy, cash in sorted(cash_balances.items())
        ],
        "posData": [
            {
                **{name: row.get(name, "") for name in keep},
                "baseBal": "",
                "quoteBal": "",
                "nonSettleAvgPx": "",
                "settledPnl": "",
                "uTime": row.get("uTime", str(ts_ms)),
            }
            for row in positions
        ],
        "trades": [{"instId": row["instId"], "tradeId": row.get("tradeId", "")} for row in positions],
    }


@dataclass(frozen=True, slots=True)
class CurrencyFigures:
    """One currency's balance picture (all in that currency)."""

    ccy: str
    cross_wallet: float
    isolated_margin: float
    isolated_upl: float
    cross_upl: float
    cross_initial_margin: float
    cross_maintenance: float  # without the closing fee
    cross_margin_ratio: float | None  # the model's requirement / balance
    notional: float
    update_time_ms: int
    usd_price: float | None = 1.0  # one unit in USD (USDT counts as 1); None when the simulator has no price


def balance_detail(figures: CurrencyFigures) -> Row:
    cash = figures.cross_wallet + figures.isolated_margin
    upl = figures.isolated_upl + figures.cross_upl
    equity = cash + upl
    frozen = figures.isolated_margin + figures.cross_initial_margin
    available = max(0.0, cash - frozen)
    available_equity = max(
        0.0, figures.cross_wallet + min(figures.cross_upl, 0.0) - figures.cross_initial_margin
    )
    has_cross = figures.cross_initial_margin > 0
    return {
        "accAvgPx": "",
        "availBal": okx_number(available),
        "availEq": okx_number(available_equity),
        "borrowFroz": "",
        "cashBal": okx_number(cash),
        "ccy": figures.ccy,
        "clSpotInUseAmt": "",
        "colBorrAutoConversion": "0",
        "collateralEnabled": False,
        "collateralRestrict": False,
        "crossLiab": "",
        "disEq": okx_number(equity * figures.usd_price if figures.usd_price is not None else None),
        "eq": okx_number(equity),
        "eqUsd": okx_number(equity * figures.usd_price if figures.usd_price is not None else None),
        "fixedBal": "0",
        "frozenBal": okx_number(frozen),
        "imr": okx_number(figures.cross_initial_margin) if has_cross else "",
        "interest": "",
        "isoEq": okx_number(figures.isolated_margin + figures.isolated_upl),
        "isoLiab": "",
        "isoUpl": okx_number(figures.isolated_upl),
        "liab": "",
        "maxLoan": "",
        "maxSpotInUse": "",
        "mgnRatio": okx_number(_inverse_ratio(figures.cross_margin_ratio)) if has_cross else "",
        "mmr": okx_number(figures.cross_maintenance) if has_cross else "",
        "notionalLever": okx_number(figures.notional / equity if equity > 0 and figures.notional else None),
        "openAvgPx": "",
        "ordFrozen": "0",
        "rewardBal": "",
        "smtSyncEq": "0",
        "spotBal": "",
        "spotCopyTradingEq": "0",
        "spotInUseAmt": "",
        "spotIsoBal": "0",
        "spotUpl": "",
        "spotUplRatio": "",
        "stgyEq": "0",
        "totalPnl": "",
        "totalPnlRatio": "",
        "twap": "0",
        "uTime": str(figures.update_time_ms),
        "upl": okx_number(upl),
        "uplLiab": "",
    }


def balance_row(currencies: Iterable[CurrencyFigures], ts_ms: int) -> Row:
    """The one element of GET /api/v5/account/balance's data, also the `account` channel's data."""
    details = [balance_detail(figures) for figures in currencies]
    total_equity = sum(float(detail["eqUsd"]) for detail in details if detail["eqUsd"])
    iso_equity = sum(float(detail["isoEq"]) for detail in details)
    upl = sum(float(detail["upl"]) for detail in details)
    return {
        "adjEq": "",
        "availEq": "",
        "borrowFroz": "",
        "details": details,
        "imr": "",
        "isoEq": okx_number(iso_equity),
        "mgnRatio": "",
        "mmr": "",
        "notionalUsd": "",
        "notionalUsdForBorrow": "",
        "notionalUsdForFutures": "",
        "notionalUsdForOption": "",
        "notionalUsdForSwap": "",
        "ordFroz": "",
        "totalEq": okx_number(total_equity),
        "uTime": str(ts_ms),
        "upl": okx_number(upl),
    }


def account_config(uid: str, hedge_mode: bool, label: str) -> Row:
    """GET /api/v5/account/config: account level, position mode and permissions."""
    return {
        "acctLv": ACCOUNT_LEVEL,
        "autoLoan": False,
        "ctIsoMode": "automatic",
        "enableSpotBorrow": False,
        "greeksType": "PA",
        "ip": "",
        "kycLv": "2",
        "label": label,
        "level": "Lv1",
        "levelTmp": "",
        "liquidationGear": "-1",
        "mainUid": uid,
        "mgnIsoMode": "automatic",
        "opAuth": "0",
        "perm": "read_only,trade",
        "posMode": "long_short_mode" if hedge_mode else "net_mode",
        "roleType": "0",
        "spotBorrowAutoRepay": False,
        "spotOffsetType": "",
        "spotRoleType": "0",
        "spotTraderInsts": [],
        "traderInsts": [],
        "uid": uid,
    }

"""OKX v5 payloads built from the simulator's state, in the exchange's own field names and types.

Everything OKX sends is a string (numbers included); a figure that does not apply is "" (for example
`liqPx` and `margin` of a cross position), never "0". Shapes follow ccxt's recorded OKX responses
(`ts/src/test/static/response/okx.json`) and the field lists of OKX's v5 documentation.

The simulated account is a single-currency margin account (`acctLv` "2"): requirements are reported per
currency in `details`, and the account-level `imr`/`mmr`/`mgnRatio` are "" as OKX leaves them there.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from daemon.core.types import MarginMode, PositionRisk, Side
from daemon.sim.markets import Market

INST_TYPE = "SWAP"
ACCOUNT_LEVEL = "2"  # single-currency margin
LIST_TIME_MS = "1573557408000"

Row = dict[str, Any]


def okx_number(value: float | None) -> str:
    """A float as OKX writes numbers: a plain decimal string without exponent or float noise; None -> ""."""
    if value is None:
        return ""
    text = format(Decimal(f"{value:.15g}"), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def envelope(data: list[Any], code: str = "0", msg: str = "") -> Row:
    """OKX's REST answer: {"code", "msg", "data"}; `code` "0" is success."""
    return {"code": code, "data": data, "msg": msg}


def inst_id(market: Market) -> str:
    return f"{market.base}-{market.quote}-SWAP"


def inst_family(market: Market) -> str:
    return f"{market.base}-{market.quote}"


def stable_id(*parts: str) -> str:
    """An 18-digit numeric id derived from `parts`: OKX ids (uid, posId) are long digit strings."""
    digest = hashlib.sha256("|".join(parts).encode()).hexdigest()
    return str(int(digest[:15], 16) % 10**18).rjust(18, "1")


def instrument(market: Market) -> Row:
    """One row of GET /api/v5/public/instruments?instType=SWAP."""
    return {
        "alias": "",
        "baseCcy": "",
        "category": "1",
        "ctMult": "1",
        "ctType": "linear",
        "ctVal": okx_number(market.contract_size),
        "ctValCcy": market.base,
        "expTime": "",
        "instFamily": inst_family(market),
        "instId": inst_id(market),
        "instType": INST_TYPE,
        "lever": okx_number(market.max_leverage),
        "listTime": LIST_TIME_MS,
        "lotSz": okx_number(market.qty_step),
        "maxIcebergSz": "100000000",
        "maxLmtAmt": "20000000",
        "maxLmtSz": "100000000",
        "maxMktAmt": "",
        "maxMktSz": "12000",
        "maxStopSz": "12000",
        "maxTriggerSz": "100000000",
        "maxTwapSz": "100000000",
        "minSz": okx_number(market.min_qty),
        "optType": "",
        "quoteCcy": "",
        "ruleType": "normal",
        "settleCcy": market.settle,
        "state": "live",
        "stk": "",
        "tickSz": okx_number(market.price_tick),
        "uly": inst_family(market),
    }


def mark_price_row(market: Market, mark: float, ts_ms: int) -> Row:
    """One row of GET /api/v5/public/mark-price, and the data of a `mark-price` channel push."""
    return {"instId": inst_id(market), "instType": INST_TYPE, "markPx": okx_number(mark), "ts": str(ts_ms)}


@dataclass(frozen=True, slots=True)
class ContractTier:
    """One OKX bracket, sized in contracts as OKX's position-tiers endpoint sizes swap brackets."""

    tier: int
    min_contracts: float
    max_contracts: float
    mmr: float
    max_leverage: float


def contract_tiers(market: Market) -> list[ContractTier]:
    """The market's brackets in contracts, exactly as the engine's margin model uses them.

    OKX fixes swap brackets in contracts, whatever the price; the simulator's tables are in notional and
    `Market.core_tiers(in_contracts=True)` converts them once at the listed mark. Each bracket ends where
    the next begins; the last one ends at the table's last notional cap, converted the same way.
    """
    core = market.core_tiers(in_contracts=True)
    last_cap = float(round(market.tiers[-1].max_notional / (market.contract_size * market.mark)))
    caps = [tier.min_notional for tier in core[1:]] + [last_cap]
    return [
        ContractTier(
            tier=number,
            min_contracts=tier.min_notional,
            max_contracts=cap,
            mmr=tier.mmr,
            max_leverage=tier.max_leverage or market.max_leverage,
        )
        for number, (tier, cap) in enumerate(zip(core, caps, strict=True), start=1)
    ]


def position_tiers(market: Market) -> list[Row]:
    """GET /api/v5/public/position-tiers?instType=SWAP&instFamily=...: the swap brackets in contracts."""
    return [
        {
            "baseMaxLoan": "",
            "imr": okx_number(1.0 / tier.max_leverage),
            "instFamily": inst_family(market),
            "instId": "",
            "maxLever": okx_number(tier.max_leverage),
            "maxSz": okx_number(tier.max_contracts),
            "minSz": okx_number(tier.min_contracts),
            "mmr": okx_number(tier.mmr),
            "optMgnFactor": "0",
            "quoteMaxLoan": "",
            "tier": str(tier.tier),
            "uly": inst_family(market),
        }
        for tier in contract_tiers(market)
    ]


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
        "cTime": str(leg.update_time_ms),
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
        "disEq": okx_number(equity),
        "eq": okx_number(equity),
        "eqUsd": okx_number(equity),
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
    total_equity = sum(float(detail["eqUsd"]) for detail in details)
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


def currency_rows(codes: Iterable[str]) -> list[Row]:
    """GET /api/v5/asset/currencies: one chain per currency is enough for ccxt's currency table."""
    return [
        {
            "burningFeeRate": "",
            "canDep": True,
            "canInternal": True,
            "canWd": True,
            "ccy": code,
            "chain": f"{code}-ERC20",
            "ctAddr": "",
            "depEstOpenTime": "",
            "depQuotaFixed": "",
            "depQuoteDailyLayer2": "",
            "fee": "1",
            "logoLink": "",
            "mainNet": False,
            "maxFee": "1",
            "maxFeeForCtAddr": "",
            "maxWd": "10000000",
            "minDep": "0.00000001",
            "minDepArrivalConfirm": "64",
            "minFee": "1",
            "minFeeForCtAddr": "",
            "minInternal": "0.0001",
            "minWd": "2",
            "minWdUnlockConfirm": "96",
            "name": code,
            "needTag": False,
            "usedDepQuotaFixed": "",
            "usedWdQuota": "0",
            "wdEstOpenTime": "",
            "wdQuota": "10000000",
            "wdTickSz": "6",
        }
        for code in sorted(set(codes))
    ]

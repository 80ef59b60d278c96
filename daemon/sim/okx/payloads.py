"""OKX v5 wire conventions and public payloads (instruments, mark prices, position tiers, currencies).

Everything OKX sends is a string (numbers included); a figure that does not apply is "" (for example
`liqPx` and `margin` of a cross position), never "0". Shapes follow ccxt's recorded OKX responses
(`ts/src/test/static/response/okx.json`) and the field lists of OKX's v5 documentation. Account payloads
(positions, balances) are in `daemon.sim.okx.account_payloads`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from daemon.sim.markets import Market

INST_TYPE = "SWAP"

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

"""Exchange families as data: how each one measures maintenance margin and picks its bracket.

Every family liquidates when an account's (or isolated position's) margin balance falls to its maintenance
requirement. They differ only in how that requirement is measured, so each family is a handful of switches
read by one shared solver, never an `if exchange == ...` branch.

Formulas implemented (q = contracts × contract size, EP = entry, P = price, side = +1 long / −1 short):

binance (USD-M linear, COIN-M inverse) — Binance "How to calculate liquidation price" FAQ:
    margin balance = WB + side·q·(P − EP)            requirement = q·P·mmr − cum
    with the bracket of the notional AT the liquidation price. Isolated: WB = the position's isolated margin;
    cross: WB = wallet, and the other symbols' maintenance and PnL enter at their marks (TMM1, UPNL1).
    Inverse: PnL = side·q·(1/EP − 1/P) coin, requirement = (q/P)·mmr − cum.
bybit (linear and inverse) — Bybit help centre, isolated and legacy inverse cross pages:
    requirement = position value at ENTRY × mmr − deduction, plus the fee to close at the bankruptcy price
    (taker rate × q × bankruptcy price) when a taker rate is given. Linear isolated without fee:
    LP = EP − side·(IM − MM)/q.
okx — OKX help centre "Tiered maintenance margin ratio rules": margin ratio = (margin + PnL) /
    (q·P·(mmr + taker)), liquidation at 100 %; brackets by position size in contracts (OKX's tiers, as ccxt
    returns them, are in contracts). Isolated: LP = (EP − side·margin/q) / (1 − side·(mmr + taker)).
gate — the same formula as OKX, with brackets by notional at the price.
hyperliquid — Hyperliquid docs: maintenance = half the initial margin at max leverage, i.e.
    mmr = 1/(2·max_leverage) of the notional at the price: LP = P − side·avail/q/(1 − side·mmr).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class TierBasis(enum.Enum):
    NOTIONAL_AT_PRICE = "notional_at_price"  # bracket of q·P (linear) or q/P (inverse) at the price examined
    NOTIONAL_AT_ENTRY = "notional_at_entry"  # bracket of the position value at entry (fixed)
    CONTRACTS = "contracts"  # bracket of the number of contracts (fixed)


@dataclass(frozen=True, slots=True)
class MarginFamily:
    """The switches that make one exchange family's margin rules.

    maintenance_at_entry: the requirement is measured on the position value at entry, so it does not move
        with the price (Bybit).
    fee_in_requirement: the taker fee to close at the price is part of the requirement (OKX, Gate).
    fee_at_bankruptcy: the taker fee to close at the bankruptcy price is part of the requirement (Bybit).
    mmr_from_max_leverage: without a tier table, mmr = 1 / (2 · max leverage) (Hyperliquid).
    bracket_deductions: brackets carry a maintenance amount that keeps the requirement continuous (Binance's
        "cum", Bybit's deduction); a table given without them gets them derived. OKX publishes none: its
        requirement is size × rate in every bracket.
    """

    name: str
    tier_basis: TierBasis
    maintenance_at_entry: bool = False
    fee_in_requirement: bool = False
    fee_at_bankruptcy: bool = False
    mmr_from_max_leverage: bool = False
    bracket_deductions: bool = True


FAMILIES: dict[str, MarginFamily] = {
    "binance": MarginFamily("binance", TierBasis.NOTIONAL_AT_PRICE),
    "bybit": MarginFamily(
        "bybit", TierBasis.NOTIONAL_AT_ENTRY, maintenance_at_entry=True, fee_at_bankruptcy=True
    ),
    "okx": MarginFamily("okx", TierBasis.CONTRACTS, fee_in_requirement=True, bracket_deductions=False),
    "gate": MarginFamily("gate", TierBasis.NOTIONAL_AT_PRICE, fee_in_requirement=True),
    "hyperliquid": MarginFamily("hyperliquid", TierBasis.NOTIONAL_AT_PRICE, mmr_from_max_leverage=True),
}


def family_for(name: str) -> MarginFamily:
    """The family called `name`; a ValueError lists the known ones otherwise."""
    try:
        return FAMILIES[name]
    except KeyError:
        known = ", ".join(sorted(FAMILIES))
        raise ValueError(f"unknown exchange family {name!r} (known: {known})") from None

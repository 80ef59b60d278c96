"""OKX perpetual swaps (USDT-margined linear and coin-margined inverse; isolated and single-currency cross).

Published rule — OKX help centre, "Tiered maintenance margin ratio rules" and the isolated-margin pages:

    margin ratio = (margin balance + PnL) / (face value × |contracts| × mark × (tier MMR + taker fee rate))

liquidation at 100 %; coin-margined: the same with ÷ mark (notional in coin). Cross, single currency:
(balance + PnL − other requirements − fees) / (maintenance margin + liquidation fees), i.e. the same sum over
the account's cross positions. Tiers are set by position SIZE IN CONTRACTS (the position-tiers endpoint
publishes minSz/maxSz), so the bracket does not move with the price, and OKX publishes no deduction: the
requirement is size × price × (mmr + taker) in every tier. Liquidation price:
LP = (EP − side·margin/q) / (1 − side·(mmr + taker)) for an isolated linear position.
"""

from __future__ import annotations

from decimal import Decimal

from daemon.sim.oracle.inputs import Leg
from daemon.sim.oracle.numbers import ZERO, Line
from daemon.sim.oracle.rules import MarginRules, Pieces, constant


class Okx(MarginRules):
    name = "okx"
    rule = "margin + PnL = q·P·(tier MMR + taker), tier by size in contracts, no deduction (OKX help centre)"
    brackets_in_contracts = True

    def requirement(self, leg: Leg, fee_u: Decimal) -> Pieces:
        bracket = leg.brackets.at(leg.contracts)
        return constant(Line(ZERO, leg.quantity * (bracket.mmr + leg.taker)))

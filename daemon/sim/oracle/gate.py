"""Gate.io futures (linear).

Rule — Gate's liquidation-price formula as freqtrade implements it (freqtrade
`exchange.py::dry_run_liquidation_price`, Gate branch) and as Gate's help centre states it:

    LP = (EP − side·margin/size) / (1 − side·(MMR + taker))

i.e. margin + PnL = size × P × (MMR + taker fee), the risk-limit tier being that of the position value at P.
"""

from __future__ import annotations

from decimal import Decimal

from daemon.sim.oracle.inputs import Leg
from daemon.sim.oracle.rules import MarginRules, Pieces, brackets_along_price


class Gate(MarginRules):
    name = "gate"
    rule = "margin + PnL = q·P·(MMR + taker), tier of the value at P (Gate; freqtrade's Gate formula)"

    def requirement(self, leg: Leg, fee_u: Decimal) -> Pieces:
        return brackets_along_price(leg, extra_rate=leg.taker)

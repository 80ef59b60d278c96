"""Hyperliquid perpetuals (linear, USDC).

Published rule — Hyperliquid docs, "Liquidations": maintenance margin is half of the initial margin at the
asset's maximum leverage, i.e. mmr = 1 / (2 × max leverage) of the notional at the mark, and

    LP = P − side × available margin / size / (1 − side × mmr)

(available = margin − maintenance at the entry), which is margin + PnL(LP) = size × LP × mmr. Without a
maximum leverage the leg's bracket table gives the rate.
"""

from __future__ import annotations

from decimal import Decimal

from daemon.sim.oracle.inputs import Leg
from daemon.sim.oracle.numbers import ONE, ZERO, Line
from daemon.sim.oracle.rules import MarginRules, Pieces, brackets_along_price, constant


class Hyperliquid(MarginRules):
    name = "hyperliquid"
    rule = "margin + PnL = q·P/(2·max leverage) (Hyperliquid docs, Liquidations)"

    def requirement(self, leg: Leg, fee_u: Decimal) -> Pieces:
        if leg.max_leverage is not None and leg.max_leverage > 0:
            mmr = ONE / (2 * leg.max_leverage)
            return constant(Line(ZERO, leg.quantity * mmr))
        return brackets_along_price(leg)

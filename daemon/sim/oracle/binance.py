"""Binance futures: USDⓈ-M (linear) and COIN-M (inverse).

Published rule — Binance FAQ "How to Calculate Liquidation Price of USDⓈ-M Futures Contracts"
(https://www.binance.com/en/support/faq/b3c689c1f50a44cabb3a84e663b81d93):

    WB − TMM1 + UPNL1 + cum − side·Q·EP = Q·MMR·LP − side·Q·LP

that is, margin balance (WB + PnL at LP) = maintenance margin (Q·LP·MMR − cum), with MMR and cum those of the
bracket holding the notional AT the liquidation price. Isolated: WB is the position's isolated wallet and
TMM1 = UPNL1 = 0. Cross: WB is the cross wallet, TMM1 and UPNL1 the OTHER symbols' maintenance margin and
unrealised PnL at their marks. Hedge mode adds one term per leg (cumB + cumL + cumS, Position1LONG·EP1LONG …):
the legs of one symbol move with one price and so share one liquidation price, each in its own bracket.

COIN-M — FAQ "How to Calculate Liquidation Price of COIN-M Futures"
(https://www.binance.com/en/support/faq/ceccfcfb4e3a45e3b48b0b1bb1a8ae46):

    LP = (Q·MMR + side·Q) / ((WB + cum)/CS + side·Q/EP)     (Q in contracts of CS USD)

the same balance in coin: PnL = side·Q·CS·(1/EP − 1/P), maintenance = (Q·CS/P)·MMR − cum, bracket of the
coin notional Q·CS/LP.
"""

from __future__ import annotations

from decimal import Decimal

from daemon.sim.oracle.inputs import Leg
from daemon.sim.oracle.rules import MarginRules, Pieces, brackets_along_price


class Binance(MarginRules):
    name = "binance"
    rule = "margin balance = Σ(notional at P × MMR − cum), bracket of the notional at P (Binance FAQ b3c689c1, ceccfcfb)"

    def requirement(self, leg: Leg, fee_u: Decimal) -> Pieces:
        return brackets_along_price(leg)  # no fee in Binance's maintenance margin

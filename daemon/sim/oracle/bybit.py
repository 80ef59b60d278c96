"""Bybit derivatives (USDT perpetual and inverse; isolated, and cross in the unified account).

Published rules followed:
- "Maintenance Margin (USDT Contract)" / "(Inverse Contract)": the maintenance margin rate is that of the risk
  limit tier of the position value, with Position Value = quantity × average ENTRY price (quantity / entry
  for inverse), and Maintenance Margin = Position Value × MMR − Maintenance Margin Deduction, the deduction
  being chained over the tiers (Bybit "Margin Parameters": deduction_n = limit_{n−1}·(mmr_n − mmr_{n−1}) +
  deduction_{n−1}).
- "How to calculate Liquidation Price (Inverse Contract)"
  (https://help.bybit.com/hc/en-us/articles/360039261334): the requirement also holds the fee to close at the
  BANKRUPTCY price, quantity × taker / BP (coin), with BP from the account balance alone:
  BP = (1 + taker)·Q / (Q/EP + balance) for a long; the USDT pages state the same fee as
  BP × quantity × taker. Isolated: the balance is the position margin
  ("Liquidation Price (USDT Contract)": LP = EP − (IM − MM)/size − extra margin/size for a long).
So the requirement is fixed while the position is unchanged, and LP solves
margin (+ other symbols' equity, cross) + PnL(LP) = Position Value at entry × MMR − deduction + fee at BP.

Newer unified-account pages (2026, "Liquidation Price Calculation under Isolated Mode (UTA)") measure the
position value at the mark; the oracle follows the entry-price pages above, as the simulator's Bybit dialect
publishes its tiers that way.
"""

from __future__ import annotations

from decimal import Decimal

from daemon.sim.oracle.inputs import Leg
from daemon.sim.oracle.numbers import ZERO, Line
from daemon.sim.oracle.rules import MarginRules, Pieces, constant


class Bybit(MarginRules):
    name = "bybit"
    rule = "position value at ENTRY × MMR − deduction + taker fee to close at the bankruptcy price (Bybit help centre)"
    requirement_follows_wallet = True

    def requirement(self, leg: Leg, fee_u: Decimal) -> Pieces:
        value_at_entry = leg.quantity * leg.u(leg.entry)  # q·EP USDT, or q/EP coin
        bracket = leg.brackets.at(value_at_entry)
        fee_to_close = leg.taker * leg.quantity * fee_u  # q·BP·taker, or q/BP·taker coin
        return constant(Line(value_at_entry * bracket.mmr - bracket.deduction + fee_to_close))

    def closing_fee(self, leg: Leg) -> Line:
        return Line(ZERO, leg.taker * leg.quantity)

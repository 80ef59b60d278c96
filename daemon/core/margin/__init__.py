"""The margin model: maintenance margin, liquidation and bankruptcy prices, margin ratio and distance.

Public entry points:
- `evaluate_account(account)` -> `AccountRisk`: every leg's figures and the account totals.
- `family_for(name)` -> `MarginFamily`: the rules of one exchange family (binance, bybit, okx, gate,
  hyperliquid).
"""

from daemon.core.margin.account import evaluate_account, leg_requirement_at_mark
from daemon.core.margin.families import FAMILIES, MarginFamily, family_for

__all__ = ["FAMILIES", "MarginFamily", "evaluate_account", "family_for", "leg_requirement_at_mark"]

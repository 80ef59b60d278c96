"""The simulator's independent margin oracle: each venue's published margin and liquidation rules, in Decimal.

It shares no code with marginguard's own model (`daemon.core` types only), so a test in which the daemon
agrees with the simulator compares two implementations written apart. Entry points:
- `evaluate(rules_for("binance"), Holdings(legs, wallet))` -> `Verdict` (`.risk` is a core `AccountRisk`);
- `rules_for(name)` / `FAMILIES`: the venues (binance, bybit, okx, gate, hyperliquid), one module each.
"""

from daemon.sim.oracle.account import GroupVerdict, Verdict, evaluate, with_wallet
from daemon.sim.oracle.inputs import Bracket, Brackets, Holdings, Leg
from daemon.sim.oracle.registry import FAMILIES, rules_for
from daemon.sim.oracle.rules import MarginRules

__all__ = [
    "FAMILIES",
    "Bracket",
    "Brackets",
    "GroupVerdict",
    "Holdings",
    "Leg",
    "MarginRules",
    "Verdict",
    "evaluate",
    "rules_for",
    "with_wallet",
]

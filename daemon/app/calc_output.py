"""What `marginguard calc` prints: JSON for tools, an aligned table for people at a terminal.

Figures that do not exist (no liquidation price for a 1x long) or cannot be computed are JSON `null`, never
0 and never NaN/Infinity, which most JSON readers reject.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

from daemon.app.calc_answer import AccountAnswer
from daemon.app.calc_compare import ModeComparison, ModeOutcome

JsonObject = dict[str, object]


def finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def risk_as_json(risk: AccountAnswer) -> JsonObject:
    positions: list[JsonObject] = []
    for leg in risk.positions:
        entry: JsonObject = {
            "symbol": leg.symbol,
            "side": leg.side.value,
            "liquidation_price": finite(leg.liquidation_price),
            "bankruptcy_price": finite(leg.bankruptcy_price),
            "maintenance_margin": finite(leg.maintenance_margin),
            "margin_ratio": finite(leg.margin_ratio),
            "distance_to_liquidation": finite(leg.distance_to_liquidation),
        }
        if leg.note:
            entry["note"] = leg.note
        positions.append(entry)
    return {
        "positions": positions,
        "account": {
            "margin_balance": finite(risk.margin_balance),
            "maintenance_margin": finite(risk.maintenance_margin),
            "margin_ratio": finite(risk.margin_ratio),
        },
    }


def outcome_as_json(outcome: ModeOutcome) -> JsonObject:
    entry: JsonObject = {
        "liquidation_price": finite(outcome.liquidation_price),
        "distance_to_liquidation": finite(outcome.distance_to_liquidation),
    }
    if outcome.note:
        entry["note"] = outcome.note
    return entry


def comparison_as_json(comparison: ModeComparison) -> JsonObject:
    # At risk: under isolated margin a position can lose its own margin; under cross, the whole shared wallet.
    document: JsonObject = {
        "cross_wallet_balance": finite(comparison.cross_wallet_balance),
        "positions": [
            {
                "symbol": leg.symbol,
                "side": leg.side.value,
                "mark_price": finite(leg.mark_price),
                "isolated": {
                    "margin": finite(leg.isolated_margin),
                    "at_risk": finite(leg.isolated_margin),
                    **outcome_as_json(leg.isolated),
                },
                "cross": {"at_risk": finite(comparison.cross_wallet_balance), **outcome_as_json(leg.cross)},
            }
            for leg in comparison.positions
        ],
    }
    if comparison.isolated_unfunded:
        document["isolated_unfunded"] = comparison.isolated_unfunded
    return document


def dumps(document: JsonObject, pretty: bool) -> str:
    # allow_nan=False: a non-finite number that slipped past `finite` fails loudly instead of printing NaN.
    if pretty:
        return json.dumps(document, indent=2, allow_nan=False)
    return json.dumps(document, separators=(",", ":"), allow_nan=False)


def amount(value: float | None) -> str:
    """Readable figure: thousands separators for large ones, significant digits for tiny ones (SHIB-like)."""
    if value is None or not math.isfinite(value):
        return "-"
    if abs(value) >= 1.0:
        return f"{value:,.2f}"
    return f"{value:.6g}"


def percent(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.1%}"


def aligned(rows: Sequence[Sequence[str]], right_from: int) -> list[str]:
    """Columns padded to their widest cell; text columns left-aligned, figures right-aligned."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [
            cell.rjust(width) if column >= right_from else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def comparison_table(comparison: ModeComparison) -> str:
    header = ["SYMBOL", "SIDE", "MARK", "ISO MARGIN", "ISO LIQ", "ISO DIST", "CROSS LIQ", "CROSS DIST"]
    rows = [header]
    notes: list[str] = []
    for leg in comparison.positions:
        rows.append(
            [
                leg.symbol,
                leg.side.value,
                amount(leg.mark_price),
                amount(leg.isolated_margin),
                amount(leg.isolated.liquidation_price),
                percent(leg.isolated.distance_to_liquidation),
                amount(leg.cross.liquidation_price),
                percent(leg.cross.distance_to_liquidation),
            ]
        )
        for mode, outcome in (("isolated", leg.isolated), ("cross", leg.cross)):
            if outcome.note:
                notes.append(f"{leg.symbol} {leg.side.value}, {mode}: {outcome.note}")
    title = (
        f"{comparison.exchange}: isolated margin vs cross margin "
        f"(cross wallet {amount(comparison.cross_wallet_balance)} = wallet balance + isolated margins)"
    )
    footer = [
        "DIST = how far the mark may move against the position before it is liquidated.",
        f"AT RISK: isolated, each position's own margin (ISO MARGIN); cross, the whole shared wallet "
        f"({amount(comparison.cross_wallet_balance)}).",
    ]
    if comparison.isolated_unfunded:
        footer.append(f"Isolated: {comparison.isolated_unfunded}.")
    return "\n".join([title, "", *aligned(rows, right_from=2), "", *footer, *notes])


def risk_table(risk: AccountAnswer, exchange: str) -> str:
    """The account's figures for a person: one row per position, the account's totals, then any notes."""
    rows = [["SYMBOL", "SIDE", "LIQ PRICE", "DIST", "MAINT MARGIN", "MARGIN RATIO"]]
    notes: list[str] = []
    for leg in risk.positions:
        rows.append(
            [
                leg.symbol,
                leg.side.value,
                amount(leg.liquidation_price),
                percent(leg.distance_to_liquidation),
                amount(leg.maintenance_margin),
                percent(leg.margin_ratio),
            ]
        )
        if leg.note:
            notes.append(f"{leg.symbol} {leg.side.value}: {leg.note}")
    totals = (
        f"account: margin balance {amount(risk.margin_balance)}, maintenance margin "
        f"{amount(risk.maintenance_margin)}, margin ratio {percent(risk.margin_ratio)}"
    )
    footer = ["DIST = how far the mark may move against the position before it is liquidated (- : never)."]
    return "\n".join([f"{exchange}:", "", *aligned(rows, right_from=2), "", totals, *footer, *notes])

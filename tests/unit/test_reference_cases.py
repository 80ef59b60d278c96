"""Every published reference case, answered by `marginguard calc --jsonl` exactly as a user would run it.

The cases (tests/data/liquidation_cases.json, each with its `source`) come from exchange documentation and
freqtrade's test suite. All of them go through ONE calc process, one document per line, so this also checks
that a batch answers every line in order.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).resolve().parent.parent / "data"
CASES: list[dict[str, Any]] = json.loads((DATA / "liquidation_cases.json").read_text())
FREQTRADE_TIERS: dict[str, Any] = json.loads((DATA / "freqtrade_leverage_tiers.json").read_text())
REPO = Path(__file__).resolve().parents[2]

# The tier a look-up lands in does not depend on the collateral; any comfortable wallet will do.
AMPLE_WALLET = 1e12


def leg_from_other_position(case: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """An `other_positions` / `hedge_legs` entry: another cross leg of the same account, at its own mark."""
    return {
        "symbol": other["symbol"],
        "contract_type": case["contract_type"],
        "margin_mode": "cross",
        "side": "long" if other["side"] == 1 else "short",
        "contracts": other["qty"],
        "entry_price": other["entry"],
        "mark_price": other["mark"],
        "mmr": other["mmr"],
        "maintenance_amount": other["cum"],
    }


def contracts_of(case: dict[str, Any]) -> float:
    """Base units for linear cases; inverse "contracts"/"usd_contracts" are already contracts."""
    if case["quantity_unit"] == "base":
        return float(case["quantity"]) / float(case["contract_size"])
    return float(case["quantity"])


def liquidation_document(case: dict[str, Any]) -> dict[str, Any]:
    position: dict[str, Any] = {
        "symbol": case.get("symbol", case["id"]),
        "contract_type": case["contract_type"],
        "margin_mode": case["margin_mode"],
        "side": case["side"],
        "contracts": contracts_of(case),
        "contract_size": case["contract_size"],
        "entry_price": case["entry_price"],
        "mark_price": case["mark_price"] or case["entry_price"],
        "mmr": case["mmr"],
        "maintenance_amount": case["maintenance_amount"],
    }
    for optional in ("leverage", "taker_fee_rate", "max_leverage"):
        if case.get(optional) is not None:
            position[optional] = case[optional]
    document: dict[str, Any] = {"exchange": case["exchange"], "positions": [position]}
    if case["margin_mode"] == "isolated":
        if case["wallet_balance"] is not None:  # else calc derives it from the leverage
            position["isolated_margin"] = case["wallet_balance"]
    else:
        document["wallet_balance"] = case["wallet_balance"]
    others = [*(case["other_positions"] or []), *(case["hedge_legs"] or [])]
    document["positions"].extend(leg_from_other_position(case, other) for other in others)
    return document


def tier_rows(case: dict[str, Any]) -> list[dict[str, float]]:
    """The case's bracket rows; freqtrade's fixture tables (ADA/ZEC) carry their own maintenance amounts."""
    if case.get("tiers"):
        return [{"min_notional": floor, "mmr": mmr} for floor, mmr in case["tiers"]]
    return [
        {
            "min_notional": row["minNotional"],
            "mmr": row["maintenanceMarginRate"],
            "maintenance_amount": row["maintAmt"],
        }
        for row in FREQTRADE_TIERS[case["symbol"]]
    ]


def tier_lookup_document(case: dict[str, Any]) -> dict[str, Any]:
    # contract_size 1 and price 1: contracts = notional for linear (q·P), for inverse (q/P, in coin) and for
    # OKX, whose brackets count contracts.
    return {
        "exchange": case["exchange"],
        "wallet_balance": AMPLE_WALLET,
        "positions": [
            {
                "symbol": case["symbol"],
                "contract_type": case["contract_type"],
                "margin_mode": "cross",
                "side": "long",
                "contracts": case["notional"],
                "contract_size": 1,
                "entry_price": 1.0,
                "mark_price": 1.0,
                "tiers": tier_rows(case),
            }
        ],
    }


def maintenance_document(case: dict[str, Any]) -> dict[str, Any]:
    mark = case["mark_price"]
    return {
        "exchange": case["exchange"],
        "wallet_balance": AMPLE_WALLET,
        "positions": [
            {
                "symbol": case["id"],
                "contract_type": case["contract_type"],
                "margin_mode": "cross",
                "side": case["side"],
                "contracts": contracts_of(case),
                "contract_size": case["contract_size"],
                "entry_price": case.get("entry_price") or mark,
                "mark_price": mark,
                "mmr": case["mmr"],
                "maintenance_amount": case["maintenance_amount"],
            }
        ],
    }


def calc_document(case: dict[str, Any]) -> dict[str, Any]:
    if case["kind"] == "tier_lookup":
        return tier_lookup_document(case)
    if case["kind"] == "maintenance_margin":
        return maintenance_document(case)
    return liquidation_document(case)  # liquidation_price and bankruptcy_price


def expectations(case: dict[str, Any]) -> list[tuple[str, float]]:
    """(output field of positions[0], expected value) pairs the case asserts."""
    if case["kind"] == "tier_lookup":
        amount = case.get("expected_maintenance_amount") or 0.0
        return [("maintenance_margin", case["notional"] * case["expected_mmr"] - amount)]
    if case["kind"] == "maintenance_margin":
        return [("maintenance_margin", case["expected_maintenance_margin"])]
    checks = []
    if case["kind"] == "liquidation_price":
        checks.append(("liquidation_price", case["expected_liquidation_price"]))
    if case.get("expected_bankruptcy_price") is not None:
        checks.append(("bankruptcy_price", case["expected_bankruptcy_price"]))
    return checks


def within(actual: float, expected: float, tolerance: float, tolerance_type: str) -> bool:
    allowed = tolerance * abs(expected) if tolerance_type == "rel" else tolerance
    return abs(actual - expected) <= allowed


@pytest.fixture(scope="module")
def answers() -> dict[str, dict[str, Any]]:
    """Run every case through one `calc --jsonl` process; the answers, by case id."""
    stdin = "".join(json.dumps(calc_document(case)) + "\n" for case in CASES)
    completed = subprocess.run(
        [sys.executable, "-m", "daemon", "calc", "--jsonl"],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    lines = completed.stdout.splitlines()
    assert len(lines) == len(CASES), completed.stderr
    return {case["id"]: json.loads(line) for case, line in zip(CASES, lines, strict=True)}


def test_every_case_has_something_to_check() -> None:
    assert all(expectations(case) for case in CASES)


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_reference_case(case: dict[str, Any], answers: dict[str, dict[str, Any]]) -> None:
    answer = answers[case["id"]]
    assert "error" not in answer, answer["error"]
    leg = answer["positions"][0]
    for field, expected in expectations(case):
        actual = leg[field]
        assert actual is not None, f"{field} is null ({leg.get('note')}); expected {expected}"
        assert within(actual, expected, case["tolerance"], case["tolerance_type"]), (
            f"{field}: got {actual}, expected {expected} ± {case['tolerance']} ({case['tolerance_type']}); "
            f"source: {case['source']}"
        )

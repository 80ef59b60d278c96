"""`marginguard calc` as its users meet it: run as a program, fed by file or stdin, read by eye or by scripts."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from daemon.app.cli import main

REPO = Path(__file__).resolve().parents[2]

# Binance USD-M, two isolated longs with a spare cross wallet. BTC: margin 3,200 on 0.5 BTC from 64,000, flat
# 0.4 % rate, so WB + q·(LP − EP) = q·LP·mmr gives LP = (0.5·64,000 − 3,200) / (0.5·0.996) = 57,831.33.
BTC_LONG: dict[str, Any] = {
    "symbol": "BTC/USDT:USDT",
    "margin_mode": "isolated",
    "side": "long",
    "contracts": 0.5,
    "entry_price": 64000.0,
    "mark_price": 62500.0,
    "isolated_margin": 3200.0,
    "mmr": 0.004,
}
ETH_LONG: dict[str, Any] = {
    "symbol": "ETH/USDT:USDT",
    "margin_mode": "isolated",
    "side": "long",
    "contracts": 10,
    "entry_price": 3000.0,
    "mark_price": 3050.0,
    "leverage": 10,
    "mmr": 0.005,
}
ACCOUNT: dict[str, Any] = {"exchange": "binance", "wallet_balance": 1000.0, "positions": [BTC_LONG, ETH_LONG]}
BTC_LIQUIDATION = (0.5 * 64000.0 - 3200.0) / (0.5 * (1 - 0.004))


def run_calc(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "daemon", "calc", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=30,
        check=False,
    )


def write(tmp_path: Path, document: object) -> str:
    path = tmp_path / "account.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return str(path)


def with_position_field(index: int, field: str, value: object) -> dict[str, Any]:
    positions = [dict(position) for position in ACCOUNT["positions"]]
    if value is None:
        positions[index].pop(field, None)
    else:
        positions[index][field] = value
    return {**ACCOUNT, "positions": positions}


def test_one_document_from_a_file(tmp_path: Path) -> None:
    completed = run_calc(write(tmp_path, ACCOUNT))

    assert completed.returncode == 0, completed.stderr
    answer = json.loads(completed.stdout)
    assert [leg["symbol"] for leg in answer["positions"]] == ["BTC/USDT:USDT", "ETH/USDT:USDT"]
    btc = answer["positions"][0]
    assert btc["liquidation_price"] == pytest.approx(BTC_LIQUIDATION)
    assert btc["bankruptcy_price"] == pytest.approx(57600.0)  # 64,000 − 3,200 / 0.5
    assert btc["maintenance_margin"] == pytest.approx(0.5 * 62500.0 * 0.004)
    assert btc["distance_to_liquidation"] == pytest.approx((62500.0 - BTC_LIQUIDATION) / 62500.0)
    assert set(answer["account"]) == {"margin_balance", "maintenance_margin", "margin_ratio"}


def test_stdin_gives_the_same_answer_as_a_file(tmp_path: Path) -> None:
    from_file = run_calc(write(tmp_path, ACCOUNT))
    from_stdin = run_calc(stdin=json.dumps(ACCOUNT))
    from_dash = run_calc("-", stdin=json.dumps(ACCOUNT))

    assert from_stdin.returncode == from_dash.returncode == 0
    assert json.loads(from_stdin.stdout) == json.loads(from_file.stdout) == json.loads(from_dash.stdout)


def test_jsonl_answers_every_line_in_order_and_marks_the_bad_one() -> None:
    eth_only = {**ACCOUNT, "positions": [ETH_LONG]}
    bad = with_position_field(1, "entry_price", "3000")
    btc_only = {**ACCOUNT, "positions": [BTC_LONG]}
    stdin = "\n".join(json.dumps(document) for document in (eth_only, bad, btc_only)) + "\n"

    completed = run_calc("--jsonl", stdin=stdin)

    assert completed.returncode == 2
    lines = [json.loads(line) for line in completed.stdout.splitlines()]
    assert len(lines) == 3
    assert lines[0]["positions"][0]["symbol"] == "ETH/USDT:USDT"
    assert lines[1] == {"error": "positions[1].entry_price: must be a number"}
    assert lines[2]["positions"][0]["liquidation_price"] == pytest.approx(BTC_LIQUIDATION)
    assert completed.stderr.strip() == "marginguard calc: line 2: positions[1].entry_price: must be a number"


BAD_INPUTS = [
    ("invalid JSON", '{"exchange": "binance",', "document: invalid JSON"),
    ("not an object", "[1, 2]", "document: must be a JSON object"),
    ("unknown exchange", {**ACCOUNT, "exchange": "bitmex"}, "exchange: must be one of"),
    ("missing field", with_position_field(1, "entry_price", None), "positions[1].entry_price: required"),
    (
        "non-numeric",
        with_position_field(1, "entry_price", "3000"),
        "positions[1].entry_price: must be a number",
    ),
    (
        "boolean as number",
        with_position_field(0, "contracts", True),
        "positions[0].contracts: must be a number",
    ),
    ("zero size", with_position_field(0, "contracts", 0), "positions[0].contracts: must be greater than 0"),
    (
        "negative size",
        with_position_field(0, "contracts", -1),
        "positions[0].contracts: must be greater than 0",
    ),
    (
        "negative price",
        with_position_field(1, "mark_price", -5),
        "positions[1].mark_price: must be greater than 0",
    ),
    ("bad side", with_position_field(0, "side", "buy"), "positions[0].side: must be one of long, short"),
    ("misspelt field", with_position_field(0, "mark", 60000), "positions[0].mark: unknown field"),
    (
        "isolated without margin or leverage",
        with_position_field(1, "leverage", None),
        "positions[1].isolated_margin: required for an isolated position without leverage",
    ),
    (
        "cross without wallet",
        {"exchange": "binance", "positions": [{**ETH_LONG, "margin_mode": "cross"}]},
        "wallet_balance: required when any position uses cross margin",
    ),
    (
        "linear mixed with inverse",
        with_position_field(1, "contract_type", "inverse"),
        "positions[1].contract_type: cannot mix linear and inverse",
    ),
]


@pytest.mark.parametrize(
    ("document", "message"), [case[1:] for case in BAD_INPUTS], ids=[case[0] for case in BAD_INPUTS]
)
def test_bad_input_names_its_field_on_one_line_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], document: object, message: str
) -> None:
    exit_code = main(["calc", write(tmp_path, document)])

    captured = capsys.readouterr()
    assert exit_code == 2
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith(f"marginguard calc: {message}")


def test_a_missing_file_is_reported_not_raised(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    exit_code = main(["calc", str(tmp_path / "nowhere.json")])

    assert exit_code == 2
    assert "nowhere.json: cannot read" in capsys.readouterr().err


def test_a_1x_isolated_long_has_no_liquidation_price_null_not_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one_x = {**ETH_LONG, "leverage": 1}
    exit_code = main(["calc", write(tmp_path, {"exchange": "binance", "positions": [one_x]})])

    leg = json.loads(capsys.readouterr().out)["positions"][0]
    assert exit_code == 0
    assert leg["liquidation_price"] is None
    assert leg["distance_to_liquidation"] is None
    assert leg["note"]


def test_compare_modes_shows_cross_drawing_on_the_shared_wallet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exit_code = main(["calc", "--compare-modes", write(tmp_path, ACCOUNT)])

    assert exit_code == 0
    answer = json.loads(capsys.readouterr().out)
    eth_initial_margin = 10 * 3000.0 / 10
    assert answer["cross_wallet_balance"] == pytest.approx(1000.0 + 3200.0 + eth_initial_margin)
    btc, eth = answer["positions"]
    assert (btc["symbol"], btc["side"], btc["mark_price"]) == ("BTC/USDT:USDT", "long", 62500.0)
    assert btc["isolated"]["margin"] == 3200.0
    assert eth["isolated"]["margin"] == pytest.approx(eth_initial_margin)
    assert btc["isolated"]["liquidation_price"] == pytest.approx(BTC_LIQUIDATION)
    # At risk: each position's own margin when isolated; the whole shared wallet when cross.
    assert (btc["isolated"]["at_risk"], btc["cross"]["at_risk"]) == (3200.0, answer["cross_wallet_balance"])
    assert "isolated_unfunded" not in answer  # both are isolated already: nothing to fund
    for leg in (btc, eth):
        # Sharing the wallet and the other position's spare margin, a long survives a deeper fall.
        assert leg["cross"]["liquidation_price"] < leg["isolated"]["liquidation_price"]
        assert leg["cross"]["distance_to_liquidation"] > leg["isolated"]["distance_to_liquidation"]


def test_compare_modes_a_short_is_safer_higher_up_under_cross(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    short = {**ETH_LONG, "side": "short"}
    main(["calc", "--compare-modes", write(tmp_path, {**ACCOUNT, "positions": [BTC_LONG, short]})])

    eth = json.loads(capsys.readouterr().out)["positions"][1]
    assert eth["cross"]["liquidation_price"] > eth["isolated"]["liquidation_price"] > eth["mark_price"]


def test_compare_modes_on_a_terminal_is_an_aligned_table(tmp_path: Path) -> None:
    path = write(tmp_path, ACCOUNT)
    table = run_on_terminal(["calc", "--compare-modes", path])
    as_json = run_on_terminal(["calc", "--compare-modes", "--json", path])

    lines = table.splitlines()
    header = next(line for line in lines if line.startswith("SYMBOL"))
    rows = [line for line in lines if line.startswith(("BTC/", "ETH/"))]
    assert "ISO LIQ" in header and "CROSS LIQ" in header
    assert len(rows) == 2
    assert "57,831.33" in rows[0]
    assert len({len(line) for line in (header, *rows)}) == 1  # right-aligned figures: equal widths
    assert json.loads(as_json)["cross_wallet_balance"] == pytest.approx(7200.0)


def test_calc_on_a_terminal_is_a_table_of_the_same_figures_as_its_json(tmp_path: Path) -> None:
    path = write(tmp_path, ACCOUNT)
    table = run_on_terminal(["calc", path])
    as_json = json.loads(run_on_terminal(["calc", "--json", path]))
    piped = run_calc(path)

    assert json.loads(piped.stdout) == as_json  # piped: JSON, as with --json
    lines = table.splitlines()
    header = next(line for line in lines if line.startswith("SYMBOL"))
    rows = {line.split()[0]: line.split() for line in lines if line.startswith(("BTC/", "ETH/"))}
    assert header.split() == ["SYMBOL", "SIDE", "LIQ", "PRICE", "DIST", "MAINT", "MARGIN", "MARGIN", "RATIO"]
    for position in as_json["positions"]:
        row = rows[position["symbol"]]
        assert row[1] == position["side"]
        assert row[2] == f"{position['liquidation_price']:,.2f}"
        assert row[3] == f"{position['distance_to_liquidation']:.1%}"
    assert f"{BTC_LIQUIDATION:,.2f}" == rows["BTC/USDT:USDT"][2]
    assert any(line.startswith("account: margin balance") for line in lines)


def run_on_terminal(args: list[str]) -> str:
    """Run marginguard with stdout on a pseudo-terminal, as a person at a shell would."""
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "daemon", *args], stdout=terminal, stderr=subprocess.PIPE, cwd=REPO
        )
        os.close(terminal)
        chunks = []
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the terminal closes once the process has exited
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert process.wait(timeout=30) == 0
    finally:
        os.close(controller)
    return b"".join(chunks).decode().replace("\r\n", "\n")


def test_calc_never_imports_ccxt_and_answers_quickly(tmp_path: Path) -> None:
    path = write(tmp_path, ACCOUNT)
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "daemon", "calc", "--compare-modes", path],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=30,
        check=True,
    )
    elapsed = time.perf_counter() - started

    imported = {line.rsplit("|", 1)[-1].strip() for line in completed.stderr.splitlines() if "|" in line}
    assert "daemon.core.margin" in imported  # the import log is really there
    assert not {name for name in imported if name.split(".")[0] in {"ccxt", "aiohttp", "websockets"}}
    assert elapsed < 2.0  # interpreter start-up included; typically ~0.1 s


def test_hyperliquid_needs_only_the_max_leverage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    position = {
        "symbol": "ETH",
        "margin_mode": "isolated",
        "side": "long",
        "contracts": 1,
        "entry_price": 350.0,
    }
    by_max_leverage = {
        "exchange": "hyperliquid",
        "positions": [{**position, "leverage": 7, "max_leverage": 10}],
    }
    by_rate = {"exchange": "hyperliquid", "positions": [{**position, "leverage": 7, "mmr": 1 / (2 * 10)}]}

    main(["calc", write(tmp_path, by_max_leverage)])
    first = json.loads(capsys.readouterr().out)
    main(["calc", write(tmp_path, by_rate)])
    second = json.loads(capsys.readouterr().out)

    assert first["positions"][0]["liquidation_price"] == pytest.approx(315.7894736842105)
    assert first == second


def test_compare_modes_says_when_a_cross_position_has_no_isolated_margin_to_compare(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cross_without_leverage = {**ETH_LONG, "margin_mode": "cross"}
    cross_without_leverage.pop("leverage")
    main(["calc", "--compare-modes", write(tmp_path, {**ACCOUNT, "positions": [cross_without_leverage]})])

    eth = json.loads(capsys.readouterr().out)["positions"][0]
    assert eth["isolated"] == {
        "margin": None,
        "at_risk": None,  # unknown, never 0
        "liquidation_price": None,
        "distance_to_liquidation": None,
        "note": "isolated margin unknown: give leverage or isolated_margin",
    }
    assert eth["cross"]["liquidation_price"] is not None


def test_compare_modes_says_when_the_wallet_cannot_fund_the_isolated_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A cross position made isolated takes its initial margin out of the wallet: with a wallet smaller than
    that, the isolated version is not available, and the comparison says so rather than showing it as a choice."""
    cross_eth = {**ETH_LONG, "margin_mode": "cross"}  # 10 ETH at 3,000, 10x: 3,000 of margin needed
    main(
        [
            "calc",
            "--compare-modes",
            write(tmp_path, {**ACCOUNT, "wallet_balance": 500.0, "positions": [cross_eth]}),
        ]
    )
    answer = json.loads(capsys.readouterr().out)
    assert answer["isolated_unfunded"] == (
        "the wallet (500.00) cannot fund the isolated version: its cross positions would need 3,000.00 of "
        "isolated margin at their leverage"
    )

"""`marginguard calc` against whatever a person or a tool feeds it: never a traceback, one line naming the
problem for bad input, every other line of `--jsonl` still answered, and figures too large to compute reported
as unknown, never as "the margin covers any move". A question that needs no maintenance rate is answered
without one."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.app.calc_answer import CROSS_RATE_UNKNOWN, OVERFLOW, RATE_UNKNOWN, overflows
from daemon.app.calc_command import answer_document, answer_lines
from daemon.app.calc_input import parse_document

REPO = Path(__file__).resolve().parents[2]
EXAMPLE: dict[str, Any] = json.loads((REPO / "config" / "example_account.json").read_text())
SAFE = "covers any move"

json_leaves = st.none() | st.booleans() | st.text(max_size=8) | st.floats() | st.integers(-(10**400), 10**400)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
magnitudes = st.sampled_from([1e-300, 1e-9, 1.0, 1e9, 1e154, 1e200, 1e300, 1.7e308, 10**309, 2**1100])


def calc(text: str | bytes, compare: bool = False) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of one document, through the command's own function."""
    out, err = io.StringIO(), io.StringIO()
    previous, sys.stderr = sys.stderr, err
    try:
        code = answer_document(text, out, compare, table=False)
    finally:
        sys.stderr = previous
    return code, out.getvalue(), err.getvalue()


def assert_answered_or_refused(code: int, out: str, err: str) -> None:
    if code == 0:
        assert err == ""
        json.loads(out)  # valid JSON, no NaN or Infinity
    else:
        assert code == 2 and out == ""
        assert err.startswith("marginguard calc: ") and err.count("\n") == 1, err
        assert "Traceback" not in err


def mutated(path: list[str | int], value: Any) -> dict[str, Any]:
    document = json.loads(json.dumps(EXAMPLE))
    target: Any = document
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return document


position_fields = st.sampled_from([*sorted(EXAMPLE["positions"][0]), "mmr", "isolated_margin", "mark"])
paths = st.one_of(
    st.tuples(st.just("positions"), st.integers(0, 1), position_fields).map(list),
    st.sampled_from([["exchange"], ["wallet_balance"], ["positions"], ["extra"]]),
    st.tuples(
        st.just("positions"),
        st.just(0),
        st.just("tiers"),
        st.integers(0, 3),
        st.sampled_from(["mmr", "min_notional"]),
    ).map(list),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=300), compare=st.booleans())
def test_any_bytes_are_answered_or_refused_in_one_line(data: bytes, compare: bool) -> None:
    assert_answered_or_refused(*calc(data, compare))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=paths, value=json_values | magnitudes, compare=st.booleans())
def test_any_field_set_to_any_json_value_is_answered_or_refused_in_one_line(
    path: list[str | int], value: Any, compare: bool
) -> None:
    assert_answered_or_refused(*calc(json.dumps(mutated(path, value)), compare))


@settings(max_examples=300, deadline=None)
@given(
    contracts=magnitudes,
    price=magnitudes,
    margin=magnitudes,
    side=st.sampled_from(["long", "short"]),
    mode=st.sampled_from(["isolated", "cross"]),
)
def test_figures_too_large_to_compute_are_unknown_never_safe(
    contracts: float, price: float, margin: float, side: str, mode: str
) -> None:
    position = {
        "symbol": "BTC/USDT:USDT",
        "side": side,
        "margin_mode": mode,
        "contracts": contracts,
        "entry_price": price,
        "isolated_margin": margin,
        "mmr": 0.005,
    }
    if mode == "cross":
        del position["isolated_margin"]
    document = {"exchange": "binance", "wallet_balance": margin, "positions": [position]}
    code, out, err = calc(json.dumps(document))
    assert_answered_or_refused(code, out, err)
    if code != 0:
        assert "too large to compute with" in err  # an integer beyond any float
        return
    (leg,) = json.loads(out)["positions"]
    parsed = parse_document(document)
    if overflows(parsed.account.positions[0], parsed.own_margins[0]):
        assert leg.get("note") == OVERFLOW and leg["liquidation_price"] is None
        assert leg["bankruptcy_price"] is None and leg["maintenance_margin"] is None
    if SAFE in (leg.get("note") or ""):
        # Only a long whose margin (its own, or the cross wallet) covers its whole notional has no liquidation.
        assert side == "long" and margin >= contracts * price * (1 - 1e-9)


def test_the_inputs_that_used_to_crash_are_one_line_each() -> None:
    cases = {
        b"\xff\xfe{}": "marginguard calc: document: not UTF-8 text (byte 0xff at offset 0)\n",
        "[" * 100_000: "marginguard calc: document: nested too deeply to be an account document\n",
        json.dumps(mutated(["positions", 0, "contracts"], 10**400)): (
            "marginguard calc: positions[0].contracts: too large to compute with\n"
        ),
    }
    for text, expected in cases.items():
        assert calc(text) == (2, "", expected)


def test_an_overflowing_position_is_unknown_not_covered() -> None:
    # Before: "no liquidation price: the margin covers any move of this price".
    huge = {
        "symbol": "X",
        "side": "long",
        "contracts": 1e200,
        "entry_price": 1e200,
        "mmr": 0.01,
        "leverage": 1,
    }
    code, out, _ = calc(
        json.dumps({"exchange": "binance", "positions": [{**huge, "margin_mode": "isolated"}]})
    )
    (leg,) = json.loads(out)["positions"]
    assert code == 0 and leg["note"] == OVERFLOW and leg["liquidation_price"] is None
    assert SAFE not in out
    code, out, _ = calc(
        json.dumps({"exchange": "binance", "positions": [{**huge, "margin_mode": "isolated"}]}), True
    )
    assert code == 0 and SAFE not in out and OVERFLOW in out


def test_one_bad_line_does_not_end_a_jsonl_run() -> None:
    good = json.dumps(EXAMPLE).encode()
    lines = [
        good,
        b"\xc3\x28 not utf-8",
        b"[" * 50_000,
        json.dumps(mutated(["wallet_balance"], 10**400)).encode(),
        json.dumps(mutated(["positions", 0, "contracts"], 1e306)).encode(),  # x 64,000: beyond 1.8e308
        good,
    ]
    out, err = io.StringIO(), io.StringIO()
    previous, sys.stderr = sys.stderr, err
    try:
        code = answer_lines(io.BytesIO(b"\n".join(lines) + b"\n"), out, compare=False)
    finally:
        sys.stderr = previous
    answers = [json.loads(line) for line in out.getvalue().splitlines()]
    assert code == 2 and len(answers) == 6
    assert answers[0] == answers[5] and "positions" in answers[0]
    assert [a.get("error", "")[:40] for a in answers[1:4]] == [
        "document: not UTF-8 text (byte 0xc3 at o",
        "document: nested too deeply to be an acc",
        "wallet_balance: too large to compute wit",
    ]
    assert answers[4]["positions"][0]["note"] == OVERFLOW
    assert err.getvalue().count("\n") == 3 and "line 2: " in err.getvalue()


def test_the_bankruptcy_price_needs_no_maintenance_rate() -> None:
    # Isolated long, 0.5 BTC from 64,000 on 3,200 of margin: bankrupt at 64,000 − 3,200 / 0.5 = 57,600.
    long = {"symbol": "BTC/USDT:USDT", "margin_mode": "isolated", "side": "long", "contracts": 0.5}
    long |= {"entry_price": 64000.0, "isolated_margin": 3200.0}
    cross = {"symbol": "ETH/USDT:USDT", "margin_mode": "cross", "side": "short", "contracts": 1.0}
    cross |= {"entry_price": 3000.0, "mmr": 0.005, "leverage": 10}
    code, out, err = calc(
        json.dumps({"exchange": "binance", "wallet_balance": 1000.0, "positions": [long, cross]})
    )
    assert (code, err) == (0, "")
    answer = json.loads(out)
    btc, eth = answer["positions"]
    assert btc["bankruptcy_price"] == pytest.approx(57600.0)
    assert btc["liquidation_price"] is None and btc["maintenance_margin"] is None
    assert btc["note"] == RATE_UNKNOWN
    assert eth["liquidation_price"] is not None  # a cross wallet without unknowns is still answered
    assert answer["account"]["maintenance_margin"] is None and answer["account"]["margin_ratio"] is None

    no_rate_cross = {**cross, "symbol": "SOL/USDT:USDT", "side": "long"}
    del no_rate_cross["mmr"]
    code, out, _ = calc(
        json.dumps({"exchange": "binance", "wallet_balance": 1000.0, "positions": [cross, no_rate_cross]})
    )
    eth, sol = json.loads(out)["positions"]
    assert code == 0 and eth["note"] == CROSS_RATE_UNKNOWN and eth["liquidation_price"] is None
    assert sol["note"] == RATE_UNKNOWN and math.isfinite(sol["bankruptcy_price"])


@pytest.mark.parametrize(
    ("stdin", "args"),
    [
        (b"\xff\xfe\x00garbage", []),
        (b"[" * 100_000, ["--compare-modes"]),
        (b'{"exchange": "binance", "positions": [{"contracts": 1' + b"0" * 400 + b"}]}", []),
        (json.dumps(mutated(["positions", 1, "contracts"], 1e300)).encode(), ["--compare-modes"]),
        (b"\n".join([b"\xff", b"[" * 50_000, json.dumps(EXAMPLE).encode()]), ["--jsonl"]),
    ],
)
def test_the_real_command_never_prints_a_traceback(stdin: bytes, args: list[str]) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "daemon", "calc", *args],
        input=stdin,
        capture_output=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert b"Traceback" not in completed.stderr
    assert completed.returncode in (0, 2)
    for line in completed.stderr.decode().splitlines():
        assert line.startswith("marginguard calc: ")
    if "--jsonl" in args:
        assert len(completed.stdout.splitlines()) == 3

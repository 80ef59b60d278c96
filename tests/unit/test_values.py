"""`value` classes behave as frozen dataclasses: same equality and hash, and the type checker refuses any
assignment to their fields (at run time they are plain slotted classes, for speed: see daemon/core/values.py)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from daemon.core.values import value


@value
class Quote:
    price: float
    size: float | None = None


@dataclass(frozen=True, slots=True)
class FrozenQuote:
    price: float
    size: float | None = None


sizes = st.none() | st.floats(allow_nan=False)


@given(a=st.floats(allow_nan=False), b=st.floats(allow_nan=False), x=sizes, y=sizes)
def test_equality_and_hash_are_a_frozen_dataclass_s(
    a: float, b: float, x: float | None, y: float | None
) -> None:
    assert (Quote(a, x) == Quote(b, y)) == (FrozenQuote(a, x) == FrozenQuote(b, y))
    assert hash(Quote(a, x)) == hash(FrozenQuote(a, x))
    assert {Quote(a, x): 1}[Quote(a, x)] == 1


def test_the_type_checker_refuses_to_change_a_field(tmp_path: Path) -> None:
    source = tmp_path / "mutates.py"
    source.write_text(
        "from daemon.core.types import Position\n"
        "def move(leg: Position) -> None:\n"
        "    leg.mark_price = 1.0\n",
        encoding="utf-8",
    )
    repo = Path(__file__).resolve().parents[2]
    checked = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--no-incremental",
            "--cache-dir=/dev/null",
            "--follow-imports=silent",
            str(source),
        ],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert 'Property "mark_price" defined in "Position" is read-only' in checked.stdout

"""`make run` is the README's first command: `marginguard demo` must play to its end — warned, escalated, margin
added once, the position recovered, nothing liquidated — and exit 0. Played faster than in real time here."""

from __future__ import annotations

import subprocess
import sys

from tests.e2e.support import REPO_ROOT


def test_the_demo_warns_escalates_tops_up_once_and_sees_the_position_recover() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "daemon", "demo", "--speed", "3"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    assert "Traceback" not in out + done.stderr, (out + done.stderr)[-3000:]
    received = [line for line in out.splitlines() if line.lstrip().startswith("- ")]
    kinds = [line.split(")")[0] for line in received]
    assert any("warning liquidation_risk (firing" in k for k in kinds), out
    assert any("critical liquidation_risk (firing" in k for k in kinds), out
    assert sum("topup_done (firing" in k for k in kinds) == 1, out
    assert any("liquidation_risk (resolved" in k for k in kinds), out
    assert "liquidations on the simulated exchange: 0" in out
    assert out.rstrip().endswith("saw the position recover.")

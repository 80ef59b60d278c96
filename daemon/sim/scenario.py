"""Scenarios: an account set-up, a mark-price path and timed faults, stored as JSON in `scenarios/`.

    {
      "description": "...",
      "account": {"wallet": {"USDT": 1000}, "hedge_mode": false,
                  "positions": [{"symbol": "BTCUSDT", "side": "long", "contracts": 0.1, "entry_price": 67000,
                                 "margin_mode": "isolated", "leverage": 20, "isolated_margin"?: 335}]},
      "marks": {"BTCUSDT": 67000},                     initial marks, set before the path starts
      "path": [{"at": 0, "marks": {...}}, ...],        keyframes, seconds from the start
      "step_s": 0.5,                                   optional: interpolate linearly between keyframes
      "csv": "replay.csv",                             optional: rows t_s,symbol,mark (instead of "path")
      "faults": [{"at": 12, "kind": "drop"}, {"at": 20, "kind": "stall", "duration_s": 3}]
    }

`ScenarioRunner` plays one against an `Engine` with an injectable `sleep`, divided by `speed` (tests run a
40 s scenario in a fraction of a second with `speed=100`, or with a sleep that only records).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from daemon.core.types import MarginMode, Side
from daemon.sim.engine import Engine
from daemon.sim.faults import Faults

Step = tuple[float, str, dict[str, Any]]  # (seconds from start, "marks" | "fault", payload)


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    account: dict[str, Any]
    marks: dict[str, float]
    steps: tuple[Step, ...] = field(default=())

    @property
    def duration_s(self) -> float:
        return self.steps[-1][0] if self.steps else 0.0


def scenario_names() -> list[str]:
    folder = resources.files("daemon.sim").joinpath("scenarios")
    return sorted(p.name.removesuffix(".json") for p in folder.iterdir() if p.name.endswith(".json"))


def load_scenario(name: str) -> Scenario:
    folder = resources.files("daemon.sim").joinpath("scenarios")
    source = folder.joinpath(f"{name}.json")
    if not source.is_file():
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(scenario_names())}")
    data = json.loads(source.read_text(encoding="utf-8"))
    csv_text = folder.joinpath(data["csv"]).read_text(encoding="utf-8") if "csv" in data else None
    return parse_scenario(name, data, csv_text)


def parse_scenario(name: str, data: dict[str, Any], csv_text: str | None = None) -> Scenario:
    steps: list[Step] = []
    if csv_text is not None:
        steps.extend(_csv_steps(csv_text))
    else:
        keyframes = sorted(data.get("path", []), key=lambda k: float(k["at"]))
        steps.extend(_interpolate(keyframes, data.get("step_s")))
    for fault in data.get("faults", []):
        params = {k: v for k, v in fault.items() if k != "at"}
        steps.append((float(fault["at"]), "fault", params))
    steps.sort(key=lambda step: (step[0], step[1] != "marks"))
    return Scenario(
        name=name,
        description=str(data.get("description", "")),
        account=dict(data.get("account", {})),
        marks={s: float(p) for s, p in data.get("marks", {}).items()},
        steps=tuple(steps),
    )


def _interpolate(keyframes: list[dict[str, Any]], step_s: float | None) -> list[Step]:
    steps: list[Step] = []
    for index, frame in enumerate(keyframes):
        at = float(frame["at"])
        marks = {s: float(p) for s, p in frame["marks"].items()}
        if step_s and index > 0:
            prev_at = float(keyframes[index - 1]["at"])
            prev = {s: float(p) for s, p in keyframes[index - 1]["marks"].items()}
            count = int((at - prev_at) / step_s)
            for i in range(1, count):
                t = prev_at + i * step_s
                weight = (t - prev_at) / (at - prev_at)
                steps.append(
                    (t, "marks", {s: prev[s] + (marks[s] - prev[s]) * weight for s in marks if s in prev})
                )
        steps.append((at, "marks", marks))
    return steps


def _csv_steps(text: str) -> list[Step]:
    grouped: dict[float, dict[str, float]] = {}
    for row in csv.DictReader(io.StringIO(text)):
        grouped.setdefault(float(row["t_s"]), {})[row["symbol"]] = float(row["mark"])
    return [(t, "marks", marks) for t, marks in sorted(grouped.items())]


class ScenarioRunner:
    def __init__(
        self,
        scenario: Scenario,
        engine: Engine,
        faults: Faults | None = None,
        speed: float = 1.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.scenario = scenario
        self.engine = engine
        self.faults = faults
        self.speed = speed
        self.sleep = sleep
        self.played = 0  # steps applied so far

    def setup(self, api_key: str) -> None:
        """Put the scenario's wallet, position mode, marks and positions on the account `api_key`."""
        engine, spec = self.engine, self.scenario.account
        for symbol, price in self.scenario.marks.items():
            engine.marks[symbol] = price  # quietly: no liquidation check before the positions exist
        for existing in list(engine.account(api_key).positions):
            engine.set_position(api_key, existing.symbol, existing.side, 0)
        engine.set_hedge_mode(api_key, bool(spec.get("hedge_mode", False)))
        for asset, amount in spec.get("wallet", {}).items():
            engine.set_wallet(api_key, asset, float(amount))
        for pos in spec.get("positions", []):
            engine.set_position(
                api_key,
                pos["symbol"],
                Side(pos["side"]),
                float(pos["contracts"]),
                entry_price=_opt(pos, "entry_price"),
                margin_mode=MarginMode(pos.get("margin_mode", "cross")),
                leverage=_opt(pos, "leverage"),
                isolated_margin=_opt(pos, "isolated_margin"),
            )
        engine.set_marks(self.scenario.marks)

    async def play(self) -> int:
        """Apply every step at its time (scaled by `speed`); returns how many steps were applied."""
        elapsed = 0.0
        for at, kind, payload in self.scenario.steps:
            if at > elapsed:
                await self.sleep((at - elapsed) / self.speed)
                elapsed = at
            self.apply(kind, payload)
        return self.played

    def apply(self, kind: str, payload: dict[str, Any]) -> None:
        if kind == "marks":
            self.engine.set_marks(payload)
        elif self.faults is not None:
            params = dict(payload)
            fault_kind = params.pop("kind")
            if fault_kind == "clear":
                self.faults.clear(params.get("fault"))
            else:
                duration = params.pop("duration_s", None)
                count = params.pop("count", None)
                self.faults.set(fault_kind, duration_s=duration, count=count, **params)
        self.played += 1


def _opt(data: dict[str, Any], name: str) -> float | None:
    value = data.get(name)
    return float(value) if value is not None else None

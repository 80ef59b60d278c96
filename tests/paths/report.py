"""What a played path found: counts for the soak's summary and violations that name the seed replaying them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Violation:
    invariant: str  # picture | liquidation_price | liquidation_told | topup | delivery | stale | ready
    step: int  # index of the path step after which it was seen (-1: at the end)
    detail: str

    def describe(self) -> str:
        where = f"after step {self.step}" if self.step >= 0 else "at the end"
        return f"[{self.invariant}] {where}: {self.detail}"


@dataclass
class PathResult:
    seed: int
    dialect: str
    steps: int
    events: int
    faults: int
    kills: int
    skipped: int
    topups: int
    liquidations: int
    alerts: int
    seconds: float
    violations: list[Violation] = field(default_factory=list)
    daemon_output: str = ""
    refusals: dict[str, int] = field(default_factory=dict)  # "op: exchange's refusal" -> how many

    @property
    def ok(self) -> bool:
        return not self.violations

    def replay(self) -> str:
        return f"python bench/market_paths.py --dialect {self.dialect} --replay {self.seed}"

    def describe(self) -> str:
        head = (
            f"seed {self.seed} on {self.dialect}: {self.steps} steps, {self.events} exchange events, "
            f"{self.faults} faults, {self.kills} kills, {self.topups} top-ups, {self.liquidations} "
            f"liquidations, {self.alerts} alerts, {self.skipped} steps refused, {self.seconds:.1f} s"
        )
        if self.ok:
            return head + ": ok"
        lines = [head + f": {len(self.violations)} violation(s) — replay: {self.replay()}"]
        lines += [f"  {v.describe()}" for v in self.violations]
        return "\n".join(lines)


@dataclass
class Totals:
    paths: int = 0
    steps: int = 0
    events: int = 0
    faults: int = 0
    kills: int = 0
    topups: int = 0
    liquidations: int = 0
    failed: list[PathResult] = field(default_factory=list)

    def add(self, result: PathResult) -> None:
        self.paths += 1
        self.steps += result.steps
        self.events += result.events
        self.faults += result.faults
        self.kills += result.kills
        self.topups += result.topups
        self.liquidations += result.liquidations
        if not result.ok:
            self.failed.append(result)

    @property
    def violations(self) -> int:
        return sum(len(r.violations) for r in self.failed)

    def summary(self) -> str:
        lines = [
            f"paths run: {self.paths}",
            f"steps (events generated): {self.steps}",
            f"exchange events: {self.events}",
            f"faults injected: {self.faults}",
            f"daemon kills: {self.kills}",
            f"top-ups landed: {self.topups}",
            f"liquidations: {self.liquidations}",
            f"violations: {self.violations} in {len(self.failed)} path(s)",
        ]
        for result in self.failed:
            lines.append(result.describe())
        return "\n".join(lines)


def by_invariant(results: Iterable[PathResult]) -> dict[str, list[str]]:
    """Which seeds ("dialect:seed") broke which invariant."""
    found: dict[str, list[str]] = {}
    for result in results:
        for violation in result.violations:
            seeds = found.setdefault(violation.invariant, [])
            name = f"{result.dialect}:{result.seed}"
            if name not in seeds:
                seeds.append(name)
    return found

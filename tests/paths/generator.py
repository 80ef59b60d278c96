"""Seeded market paths: `generate(seed, dialect)` maps a seed to the same printable list of steps, every time.

A path is data, not code: each `Step` is an operation name and its arguments, decided entirely by the seed
(`random.Random(f"{dialect}:{seed}")`, deterministic across runs and machines). Figures that depend on the
simulator's state when the step is played (the oracle's liquidation price, the position's size) are given
as relative amounts ("gap 1.5 % past the liquidation price", "reduce by 40 %") and resolved by the executor,
so the same seed replays the same path, and `describe()` prints it for a bug report.

Operations (arguments in brackets):
- market: `walk` [symbol, moves (relative), pause_s], `jump` [symbol, move], `approach` [symbol, side,
  distance] (mark to `distance` from the oracle's liquidation price), `gap` [symbol, side, overshoot]
  (mark straight past the oracle's liquidation price, in one frame), `funding` [symbol, rate];
- account: `open` [symbol, side, notional, leverage], `add` / `reduce` [symbol, side, fraction], `close`
  [symbol, side], `flip` [symbol, side, fraction] (one-way: an opposite fill bigger than the position),
  `transfer` [amount] (in > 0, out < 0), `leverage` [symbol, leverage];
- faults: `drop`, `stall` [seconds], `malformed` [count], `http_burst` [status, count], `slow` [ms, seconds],
  `late_answer` [path, hold_s] (the next request on that path is served after the client gave up),
  `listen_key_expired` [seconds], `sim_restart` (when the simulator has that fault), `kill` [down_s]
  (SIGKILL the daemon and start it again);
- `quiet` [seconds]: faults cleared, then the invariants are checked once the daemon's picture settles.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

DIALECTS = ("binance", "bybit", "okx")
# The daemon's `stale_after_s` in every path: short, so silences fit in a short path, and long enough that a
# routine reconnect (a drop, a garbled frame, a one-second exchange restart) recovers well inside it on a busy box.
STALE_AFTER_S = 8.0
SYMBOLS = ("BTCUSDT", "ETHUSDT")
ADD_MARGIN_PATHS = {
    "binance": "/fapi/v1/positionMargin",
    "bybit": "/v5/position/add-margin",
    "okx": "/api/v5/account/position/margin-balance",
}
# Relative weights of the step kinds between two quiet periods (faults rarer than moves, kills rarest).
WEIGHTS: dict[str, int] = {
    "walk": 14,
    "jump": 4,
    "approach": 5,
    "gap": 3,
    "funding": 2,
    "open": 6,
    "add": 3,
    "reduce": 3,
    "close": 2,
    "flip": 2,
    "transfer": 3,
    "leverage": 2,
    "drop": 3,
    "stall": 2,
    "malformed": 2,
    "http_burst": 2,
    "slow": 1,
    "late_answer": 2,
    "listen_key_expired": 1,
    "sim_restart": 1,
    "kill": 1,
}
FAULTS = frozenset(
    {"drop", "stall", "malformed", "http_burst", "slow", "late_answer", "listen_key_expired", "sim_restart"}
)


@dataclass(frozen=True, slots=True)
class Step:
    op: str
    args: tuple[tuple[str, Any], ...] = ()

    def arg(self, name: str) -> Any:
        return dict(self.args)[name]

    def describe(self) -> str:
        inner = ", ".join(f"{k}={_short(v)}" for k, v in self.args)
        return f"{self.op}({inner})"


@dataclass(frozen=True, slots=True)
class PathOptions:
    """What a path may contain: the fixed test set keeps paths short; soaks make them long."""

    steps: int = 24
    quiet_every: int = 6
    stale_after_s: float = STALE_AFTER_S
    kills: bool = True
    sim_restart: bool = False  # only where the simulator offers the fault
    exclude: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class MarketPath:
    seed: int
    dialect: str
    hedge_mode: bool
    modes: tuple[tuple[str, str], ...]  # symbol -> "cross" | "isolated", fixed for the path
    wallet: float
    steps: tuple[Step, ...]

    def mode(self, symbol: str) -> str:
        return dict(self.modes)[symbol]

    def describe(self) -> str:
        head = (
            f"path seed={self.seed} dialect={self.dialect} hedge_mode={self.hedge_mode} "
            f"wallet={self.wallet:g} modes={dict(self.modes)}"
        )
        return "\n".join([head, *(f"  {i:3d} {s.describe()}" for i, s in enumerate(self.steps))])


def generate(seed: int, dialect: str, options: PathOptions | None = None) -> MarketPath:
    """The path of `seed` on `dialect`: the same arguments give the same path."""
    if dialect not in DIALECTS:
        raise ValueError(f"unknown dialect {dialect!r}")
    opts = options or PathOptions()
    rng = random.Random(f"{dialect}:{seed}")
    hedge_mode = rng.random() < 0.3
    if dialect == "bybit":  # one mode for the whole account, as Bybit's unified account sets it
        mode = rng.choice(("cross", "isolated"))
        modes = tuple((s, mode) for s in SYMBOLS)
    else:
        modes = tuple((s, rng.choice(("cross", "isolated"))) for s in SYMBOLS)
    wallet = float(rng.choice((3_000, 5_000, 10_000)))
    kinds = [k for k in WEIGHTS if k not in opts.exclude]
    if not opts.kills:
        kinds.remove("kill")
    if not opts.sim_restart and "sim_restart" in kinds:
        kinds.remove("sim_restart")
    weights = [WEIGHTS[k] for k in kinds]
    # Every path starts with a position on each symbol, so the rest has something to move.
    steps: list[Step] = [_open(rng, s, rng.choice(("long", "short"))) for s in SYMBOLS]
    for index in range(opts.steps):
        kind = rng.choices(kinds, weights)[0]
        steps.append(_step(rng, kind, opts, hedge_mode))
        if (index + 1) % opts.quiet_every == 0:
            steps.append(Step("quiet", (("seconds", 1.0),)))
    if steps[-1].op != "quiet":
        steps.append(Step("quiet", (("seconds", 1.0),)))
    return MarketPath(seed, dialect, hedge_mode, modes, wallet, tuple(steps))


def _open(rng: random.Random, symbol: str, side: str) -> Step:
    notional = float(rng.choice((1_000, 2_000, 4_000, 8_000)))
    leverage = float(rng.choice((5, 10, 20, 25)))
    return Step("open", (("symbol", symbol), ("side", side), ("notional", notional), ("leverage", leverage)))


def _step(rng: random.Random, kind: str, opts: PathOptions, hedge_mode: bool) -> Step:
    symbol = rng.choice(SYMBOLS)
    side = rng.choice(("long", "short"))
    if kind == "walk":
        sigma = rng.choice((0.0005, 0.002, 0.005))
        moves = tuple(round(rng.gauss(0.0, sigma), 6) for _ in range(rng.randint(3, 12)))
        return Step(kind, (("symbol", symbol), ("moves", moves), ("pause_s", rng.choice((0.05, 0.2, 0.4)))))
    if kind == "jump":
        return Step(kind, (("symbol", symbol), ("move", round(rng.uniform(-0.06, 0.06), 5))))
    if kind == "approach":
        distance = round(rng.choice((0.03, 0.012, 0.008)), 4)
        return Step(kind, (("symbol", symbol), ("side", side), ("distance", distance)))
    if kind == "gap":
        return Step(
            kind, (("symbol", symbol), ("side", side), ("overshoot", round(rng.uniform(0.001, 0.02), 4)))
        )
    if kind == "funding":
        return Step(kind, (("symbol", symbol), ("rate", round(rng.uniform(-0.003, 0.003), 6))))
    if kind == "open":
        return _open(rng, symbol, side)
    if kind in ("add", "reduce"):
        return Step(kind, (("symbol", symbol), ("side", side), ("fraction", round(rng.uniform(0.1, 0.9), 3))))
    if kind == "close":
        return Step(kind, (("symbol", symbol), ("side", side)))
    if kind == "flip":
        op = "open" if hedge_mode else "flip"  # a hedge account opens the other leg instead
        if op == "open":
            return _open(rng, symbol, side)
        return Step(op, (("symbol", symbol), ("side", side), ("fraction", round(rng.uniform(1.2, 2.5), 3))))
    if kind == "transfer":
        amount = float(rng.choice((-1_500, -500, -100, 100, 500, 2_000)))
        return Step(kind, (("amount", amount),))
    if kind == "leverage":
        return Step(kind, (("symbol", symbol), ("leverage", float(rng.choice((3, 8, 15, 20, 30))))))
    if kind == "drop":
        return Step(kind)
    if kind == "stall":
        # Either a hiccup well inside `stale_after_s` (must raise nothing) or well beyond it (must raise one).
        short = rng.random() < 0.5
        seconds = opts.stale_after_s * (0.3 if short else 1.5)
        return Step(kind, (("seconds", round(seconds, 2)),))
    if kind == "malformed":
        return Step(kind, (("count", rng.randint(1, 3)),))
    if kind == "http_burst":
        return Step(kind, (("status", rng.choice((429, 500, 502, 503))), ("count", rng.randint(1, 5))))
    if kind == "slow":
        return Step(kind, (("ms", rng.choice((300, 1_500, 4_000))), ("seconds", rng.choice((2.0, 5.0)))))
    if kind == "late_answer":
        return Step(kind, (("target", rng.choice(("add_margin", "any"))), ("hold_s", 12.0)))
    if kind == "listen_key_expired":
        return Step(kind, (("seconds", 2.0),))
    if kind == "sim_restart":
        return Step(kind)
    if kind == "kill":
        return Step(kind, (("down_s", round(rng.uniform(0.0, 2.0), 2)),))
    raise AssertionError(f"no generator for {kind}")


def _short(value: Any) -> str:
    if isinstance(value, tuple):
        return "(" + ",".join(_short(v) for v in value) + ")"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def count_faults(path: MarketPath) -> int:
    return sum(1 for s in path.steps if s.op in FAULTS)


def count_kills(path: MarketPath) -> int:
    return sum(1 for s in path.steps if s.op == "kill")

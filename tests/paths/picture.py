"""The daemon's picture (its /status) against the oracle's (the simulator's books and its margin engine)."""

from __future__ import annotations

import math
from typing import Any

from daemon.core.types import MarginMode
from daemon.sim.engine import Engine

LIQUIDATION_REL_TOL = 1e-5  # two independent implementations, float vs Decimal, of the same published rules
# Where the wire states entries at the price tick (Bybit's avgPrice), each leg's unrealised PnL is known to within
# half a tick times its size, and a liquidation price moves by that equity error over the leg's size times
# (1 - maintenance rate - closing fee): at least 0.8 of its size on every tier here. A small leg in a big cross
# account is the sensitive case (0.1 ETH beside 0.6 BTC: 0.12 USDT of liquidation price for 0.012 USDT of PnL).
EQUITY_TO_PRICE_FLOOR = 0.8
AMOUNT_ABS_TOL = 1e-4  # wallets and margins travel as decimal strings on the wire


def unified(engine: Engine, symbol: str) -> str:
    market = engine.markets[symbol]
    return f"{market.base}/{market.quote}:{market.settle}"


def close(a: float | None, b: float | None, rel: float = 1e-6, abs_tol: float = 1e-9) -> bool:
    return a is not None and b is not None and math.isclose(a, b, rel_tol=rel, abs_tol=abs_tol)


def oracle_legs(engine: Engine, api_key: str) -> dict[tuple[str, str], dict[str, Any]]:
    """Every open leg as the oracle has it: (unified symbol, side) -> figures."""
    account = engine.account(api_key)
    if not account.positions:
        return {}
    legs: dict[tuple[str, str], dict[str, Any]] = {}
    for pos, risk in zip(account.positions, engine.risk(api_key).positions, strict=True):
        legs[(unified(engine, pos.symbol), pos.side.value)] = {
            "contracts": pos.contracts,
            "entry_price": pos.entry_price,
            "price_tick": engine.markets[pos.symbol].price_tick,
            "base_size": pos.contracts * engine.markets[pos.symbol].contract_size,
            "margin_mode": pos.margin_mode.value,
            "isolated_margin": pos.isolated_margin if pos.margin_mode is MarginMode.ISOLATED else None,
            "mark_price": engine.marks[pos.symbol],
            "liquidation_price": risk.liquidation_price,
        }
    return legs


def differences(
    status: dict[str, Any] | None, account_id: str, engine: Engine, api_key: str
) -> list[tuple[str, str]]:
    """(invariant, what differs) for everything in the daemon's picture that is not the oracle's."""
    if status is None:
        return [("picture", "the daemon's /status does not answer")]
    account = status.get("accounts", {}).get(account_id)
    if account is None:
        return [("picture", f"no account {account_id} in /status")]
    found: list[tuple[str, str]] = []
    if not account.get("ready"):
        found.append(("ready", f"not ready: {account.get('state')}"))
    # The wallet is the cross collateral that backs the cross legs. With only isolated legs it enters no figure,
    # and Bybit (isolated margin set account-wide) reports its whole wallet there, isolated margins included.
    positions = engine.account(api_key).positions
    wallet = engine.account(api_key).wallet.get("USDT", 0.0)
    has_cross = any(p.margin_mode is MarginMode.CROSS for p in positions)
    if has_cross and not close(account.get("wallet_balance"), wallet, abs_tol=AMOUNT_ABS_TOL):
        found.append(("picture", f"wallet {account.get('wallet_balance')} != oracle {wallet}"))
    expected = oracle_legs(engine, api_key)
    cross_rounding = sum(_entry_rounding(leg) for leg in expected.values() if leg["margin_mode"] == "cross")
    seen = {(leg["symbol"], leg["side"]): leg for leg in account.get("legs", [])}
    for key in sorted(set(expected) | set(seen)):
        oracle, daemon = expected.get(key), seen.get(key)
        name = f"{key[0]} {key[1]}"
        if oracle is None:
            found.append(("picture", f"{name}: the daemon shows a leg the exchange does not have: {daemon}"))
            continue
        if daemon is None:
            found.append(("picture", f"{name}: the daemon misses the leg {oracle}"))
            continue
        rounding = cross_rounding if oracle["margin_mode"] == "cross" else _entry_rounding(oracle)
        found += _leg_differences(name, daemon, oracle, rounding)
    return found


def _entry_rounding(leg: dict[str, Any]) -> float:
    """How far the leg's unrealised PnL may be off when its entry is stated at the price tick."""
    return float(leg["base_size"] * leg["price_tick"] / 2)


def _leg_differences(
    name: str, daemon: dict[str, Any], oracle: dict[str, Any], equity_rounding: float
) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    # Some venues state the entry at their price tick (Bybit's avgPrice): half a tick is the wire's rounding.
    entry_tol = oracle["price_tick"] / 2 + 1e-9
    for field, abs_tol in (("contracts", 1e-9), ("entry_price", entry_tol), ("mark_price", 1e-9)):
        if not close(daemon.get(field), oracle[field], abs_tol=abs_tol):
            found.append(("picture", f"{name}: {field} {daemon.get(field)} != oracle {oracle[field]}"))
    if daemon.get("margin_mode") != oracle["margin_mode"]:
        found.append(
            ("picture", f"{name}: margin mode {daemon.get('margin_mode')} != {oracle['margin_mode']}")
        )
    if oracle["isolated_margin"] is not None and not close(
        daemon.get("isolated_margin"), oracle["isolated_margin"], abs_tol=AMOUNT_ABS_TOL
    ):
        found.append(
            (
                "picture",
                f"{name}: isolated margin {daemon.get('isolated_margin')} != {oracle['isolated_margin']}",
            )
        )
    ours, theirs = daemon.get("liquidation_price"), oracle["liquidation_price"]
    from_rounding = (
        equity_rounding / (EQUITY_TO_PRICE_FLOOR * oracle["base_size"]) if oracle["base_size"] else 0.0
    )
    if ours is not None and (
        theirs is None or not close(ours, theirs, rel=LIQUIDATION_REL_TOL, abs_tol=from_rounding + 1e-9)
    ):
        found.append(("liquidation_price", f"{name}: liquidation price {ours} != oracle {theirs}"))
    return found

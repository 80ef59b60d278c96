"""ccxt's unified structures (plain dicts) -> core events. Pure: no ccxt import, no I/O.

ccxt fills what the exchange did not say with None, but exchanges also say "unknown" as 0, "" or NaN (a
liquidation price of 0 for a position that has none, Bybit's `liqPrice: ""`). Here every such value becomes
None, so the core never mistakes "not said" for "zero".
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from daemon.core.events import MarketRules, PositionFacts
from daemon.core.margin.families import family_for
from daemon.core.tiers import derive_maintenance_amounts
from daemon.core.types import ContractType, MarginMode, Side, Tier

_SIDES = {"long": Side.LONG, "buy": Side.LONG, "short": Side.SHORT, "sell": Side.SHORT}
_MODES = {
    "isolated": MarginMode.ISOLATED,
    "cross": MarginMode.CROSS,
    "crossed": MarginMode.CROSS,  # Binance's spelling in MARGIN_CALL and symbolConfig
}
# Fields of `info` (the exchange's raw row) that hold the isolated margin WITHOUT unrealised PnL, for
# exchanges whose ccxt `collateral` includes the PnL (Binance: isolatedMargin = isolatedWallet + PnL).
_ISOLATED_WALLET_FIELDS = ("isolatedWallet", "iw")
# Fields of a ticker's `info` that carry the mark price when ccxt does not lift it into `markPrice`.
_MARK_INFO_FIELDS = ("markPrice", "markPx", "mark_price", "p")
# Fields of a tier's `info` that hold the maintenance amount (Binance "cum", Bybit "mmDeduction").
_DEDUCTION_INFO_FIELDS = ("cum", "mmDeduction", "maintenanceDeduction")


def number(value: Any) -> float | None:
    """A finite float, or None for None, "", NaN, infinities and anything that is not a number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if math.isfinite(result) else None


def positive(value: Any) -> float | None:
    """Like `number`, but 0 and negatives also mean "unknown" (prices, sizes, leverage)."""
    result = number(value)
    return result if result is not None and result > 0 else None


def _side(position: Mapping[str, Any], contracts: float | None) -> Side | None:
    side = position.get("side")
    if isinstance(side, str) and side.lower() in _SIDES:
        return _SIDES[side.lower()]
    # Some exchanges (and ccxt parsers) report a signed size and no side: the sign is the direction.
    if contracts is not None and contracts != 0:
        return Side.LONG if contracts > 0 else Side.SHORT
    return None


def _margin_mode(position: Mapping[str, Any]) -> MarginMode | None:
    for key in ("marginMode", "marginType"):
        value = position.get(key)
        if isinstance(value, str) and value.lower() in _MODES:
            return _MODES[value.lower()]
    info = position.get("info")
    if isinstance(info, Mapping):
        # The raw row's own field where ccxt did not lift it (OKX mgnMode, Binance ACCOUNT_UPDATE mt). Bybit's
        # tradeMode is NOT read: unified accounts always send 0 whatever the mode (see `margin_mode_of`).
        for key in ("mgnMode", "mt", "marginType"):
            value = info.get(key)
            if isinstance(value, str) and value.lower() in _MODES:
                return _MODES[value.lower()]
    return None


def margin_mode_of(structure: Mapping[str, Any]) -> MarginMode | None:
    """The mode in a ccxt margin-mode structure (`fetch_margin_mode`), for exchanges whose positions do not
    say it (Bybit unified accounts: account-wide). Portfolio margin is cross margin across the account."""
    value = structure.get("marginMode")
    if not isinstance(value, str):
        return None
    return MarginMode.CROSS if value.lower() == "portfolio" else _MODES.get(value.lower())


def _isolated_margin(position: Mapping[str, Any], mode: MarginMode | None) -> float | None:
    # Kept when the mode is unknown (Bybit positions): the view uses it only once the mode says isolated.
    if mode is MarginMode.CROSS:
        return None
    info = position.get("info")
    if isinstance(info, Mapping):
        for key in _ISOLATED_WALLET_FIELDS:
            wallet = positive(info.get(key))
            if wallet is not None:
                return wallet
    # ccxt's `positionMargin` is the margin without PnL (Bybit positionBalance, OKX margin); its `collateral`
    # adds the unrealised PnL, which would move the liquidation price with every mark: only a last resort.
    return (
        positive(position.get("positionMargin"))
        or positive(position.get("collateral"))
        or positive(position.get("initialMargin"))
    )


def position_facts(p: Mapping[str, Any]) -> PositionFacts | None:
    """One ccxt position -> the facts it states; None when it names no symbol or no side can be told.

    `contracts` is made positive with the direction in `side` (hedge legs come with their side; one-way rows
    with a side or a signed size). A row with zero contracts and no side (a one-way close pushed by Binance
    as `ps: BOTH, pa: 0`) names no leg: use `facts_from_positions`, which reports both legs closed.
    A liquidation price of 0, None, NaN or "" is unknown. Thin pushes give None for what they do not carry,
    and the core merges them without overwriting known values.
    """
    symbol = p.get("symbol")
    if not isinstance(symbol, str) or not symbol:
        return None
    contracts = number(p.get("contracts"))
    if contracts is None:
        return None
    side = _side(p, contracts)
    if side is None:
        return None
    mode = _margin_mode(p)
    contract_size = positive(p.get("contractSize"))
    return PositionFacts(
        symbol=symbol,
        side=side,
        contracts=abs(contracts),
        entry_price=positive(p.get("entryPrice")),
        mark_price=positive(p.get("markPrice")),
        contract_size=contract_size,
        contract_type=_contract_type_of_position(p),
        margin_mode=mode,
        leverage=positive(p.get("leverage")),
        isolated_margin=_isolated_margin(p, mode),
        exchange_liquidation_price=positive(p.get("liquidationPrice")),
    )


def _contract_type_of_position(p: Mapping[str, Any]) -> ContractType | None:
    # ccxt positions do not say linear/inverse; the unified symbol does: BASE/QUOTE:SETTLE, inverse when the
    # settle currency is the base.
    symbol = str(p.get("symbol", ""))
    if ":" not in symbol or "/" not in symbol:
        return None
    pair, settle = symbol.split(":", 1)
    base, quote = pair.split("/", 1)
    settle = settle.split("-", 1)[0]
    if settle == quote:
        return ContractType.LINEAR
    if settle == base:
        return ContractType.INVERSE
    return None


def facts_from_positions(rows: Iterable[Mapping[str, Any]]) -> tuple[PositionFacts, ...]:
    """Facts for a list of ccxt positions, including closes whose side is not stated.

    A one-way close without side (`contracts == 0`, side None) closes whichever leg the symbol had: both
    sides are reported closed, which is a no-op for the side that was not open.
    """
    result: list[PositionFacts] = []
    for row in rows:
        facts = position_facts(row)
        if facts is not None:
            result.append(facts)
            continue
        symbol = row.get("symbol")
        if isinstance(symbol, str) and symbol and number(row.get("contracts")) == 0:
            result.extend(PositionFacts(symbol=symbol, side=side, contracts=0.0) for side in Side)
    return tuple(result)


def _tier(raw: Mapping[str, Any]) -> Tier | None:
    mmr = number(raw.get("maintenanceMarginRate"))
    if mmr is None:
        return None
    deduction: float | None = None
    info = raw.get("info")
    if isinstance(info, Mapping):
        for key in _DEDUCTION_INFO_FIELDS:
            deduction = number(info.get(key))
            if deduction is not None:
                break
    return Tier(
        min_notional=number(raw.get("minNotional")) or 0.0,
        mmr=mmr,
        maintenance_amount=deduction or 0.0,
        max_leverage=positive(raw.get("maxLeverage")),
    )


def tiers_from_ccxt(tiers: Sequence[Mapping[str, Any]] | None, family: str) -> tuple[Tier, ...]:
    """ccxt leverage tiers -> core tiers, sorted by minimum.

    minNotional is kept in the unit ccxt gives, which is the family's bracket basis (OKX: contracts). When the
    exchange published no maintenance amounts (and the family uses them), they are derived by continuity.
    """
    parsed = sorted(
        (t for t in (_tier(raw) for raw in tiers or ()) if t is not None), key=lambda t: t.min_notional
    )
    if not parsed:
        return ()
    published = any(_has_deduction(raw) for raw in tiers or ())
    if family_for(family).bracket_deductions and not published:
        return derive_maintenance_amounts(parsed)
    return tuple(parsed)


def _has_deduction(raw: Mapping[str, Any]) -> bool:
    info = raw.get("info")
    return isinstance(info, Mapping) and any(
        number(info.get(key)) is not None for key in _DEDUCTION_INFO_FIELDS
    )


def market_rules(
    market: Mapping[str, Any], tiers: Sequence[Mapping[str, Any]] | None, family: str
) -> MarketRules:
    """A ccxt market (from load_markets) and its leverage tiers -> the core's per-symbol rules."""
    contract_type = ContractType.INVERSE if market.get("inverse") else ContractType.LINEAR
    core_tiers = tiers_from_ccxt(tiers, family)
    max_leverage = None
    limits = market.get("limits")
    if isinstance(limits, Mapping) and isinstance(limits.get("leverage"), Mapping):
        max_leverage = positive(limits["leverage"].get("max"))
    if max_leverage is None:
        leverages = [t.max_leverage for t in core_tiers if t.max_leverage is not None]
        max_leverage = max(leverages) if leverages else None
    return MarketRules(
        symbol=str(market["symbol"]),
        contract_size=positive(market.get("contractSize")) or 1.0,
        contract_type=contract_type,
        tiers=core_tiers,
        taker_fee_rate=number(market.get("taker")) or 0.0,
        max_leverage=max_leverage,
    )


def wallet_balance(balance: Mapping[str, Any], settle: str) -> float | None:
    """The cross collateral in the settle currency: the wallet WITHOUT the margin locked in isolated positions
    and WITHOUT unrealised PnL (what `BalanceUpdate` and the core's `Account.wallet_balance` mean), or None
    when the balance does not say. ccxt's `total` is no such figure: it includes isolated margins on Binance
    and OKX, and is the equity (wallet + unrealised PnL) on OKX and on Bybit's websocket (its REST `total` is
    the wallet), so the exchange's own figure is read from `info` for every shape that has one, the same
    figure from a push and from a REST read. ccxt's total is read only for shapes without one."""
    known, cross = _cross_wallet_in_info(balance.get("info"), settle)
    if known:
        return cross
    per_currency = balance.get(settle)
    if isinstance(per_currency, Mapping):
        total = number(per_currency.get("total"))
        if total is not None:
            return total
    totals = balance.get("total")
    if isinstance(totals, Mapping):
        return number(totals.get(settle))
    return None


def _entry(rows: Any, key: str, value: str) -> Mapping[str, Any] | None:
    if not isinstance(rows, list):
        return None
    return next((row for row in rows if isinstance(row, Mapping) and row.get(key) == value), None)


def _cross_wallet_in_info(info: Any, settle: str) -> tuple[bool, float | None]:
    """(True, cross wallet or None) when `info` has a shape that states the cross wallet; (False, None) when
    the exchange has no such figure. A push of that shape without the settle currency says nothing about it:
    (True, None), so ccxt's total (with isolated margins, or PnL) is not read in its place."""
    # Bybit unified, the `wallet` push as ccxt keeps it (the push's data rows) and the REST answer
    # (result.list[]): coin[].walletBalance. Unified accounts set isolated margin account-wide, so a cross
    # position never shares this wallet with isolated margins.
    bybit_rows = info if isinstance(info, list) else None
    result = info.get("result") if isinstance(info, Mapping) else None
    if isinstance(result, Mapping) and isinstance(result.get("list"), list):
        bybit_rows = result["list"]
    if bybit_rows is not None and all(isinstance(row, Mapping) and "coin" in row for row in bybit_rows):
        coins = [c for row in bybit_rows if isinstance(row["coin"], list) for c in row["coin"]]
        coin = _entry(coins, "coin", settle)
        return True, number(coin.get("walletBalance")) if coin is not None else None
    if not isinstance(info, Mapping):
        return False, None
    # Binance REST (/fapi/v3/account): assets[].crossWalletBalance.
    if isinstance(info.get("assets"), list):
        asset = _entry(info["assets"], "asset", settle)
        return True, number(asset.get("crossWalletBalance")) if asset is not None else None
    # Binance ACCOUNT_UPDATE (watch_balance keeps the whole message): a.B[].cw.
    update = info.get("a")
    if isinstance(update, Mapping) and isinstance(update.get("B"), list):
        pushed = _entry(update["B"], "a", settle)
        return True, number(pushed.get("cw")) if pushed is not None else None
    # OKX (REST balance and the account channel): data[0].details[]; cashBal holds the isolated margins
    # too, isoEq is their equity (margin + isolated PnL).
    data = info.get("data")
    if (
        isinstance(data, list)
        and data
        and isinstance(data[0], Mapping)
        and isinstance(data[0].get("details"), list)
    ):
        detail = _entry(data[0]["details"], "ccy", settle)
        cash = number(detail.get("cashBal")) if detail is not None else None
        if detail is None or cash is None:
            return True, None
        isolated = (number(detail.get("isoEq")) or 0.0) - (number(detail.get("isoUpl")) or 0.0)
        return True, cash - isolated
    return False, None


def mark_from_ticker(t: Mapping[str, Any]) -> float | None:
    """The mark price a ccxt ticker carries: `markPrice`, else the exchange's own field in `info`."""
    mark = t.get("markPrice")
    if type(mark) is float and 0.0 < mark < math.inf:
        return mark  # ccxt's usual form, taken without `positive`'s calls: this runs at every mark
    mark = positive(mark)
    if mark is not None:
        return mark
    info = t.get("info")
    if isinstance(info, Mapping):
        for key in _MARK_INFO_FIELDS:
            mark = positive(info.get(key))
            if mark is not None:
                return mark
    return None

"""Binance USD-M response and push bodies, built from the engine's state (read only, no I/O).

Field names, their order and their JSON types follow the exchange's published examples and ccxt's recorded
real responses (`tests/data/binance_payloads.json`): money and prices are strings, counters and times
numbers, leverage brackets numbers. Figures the exchange derives (liquidation price, maintenance margin)
come from the engine's oracle: Binance's published rules, written apart from marginguard's model.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from daemon.core.types import MarginMode, PositionRisk
from daemon.sim.binance import wire
from daemon.sim.engine import Engine
from daemon.sim.markets import Market
from daemon.sim.model import SETTLE, SimAccount, SimPosition

# Binance's far-future placeholder delivery date for perpetuals (ccxt treats it as "no expiry").
PERPETUAL_DELIVERY_MS = 4133404800000
FUNDING_INTERVAL_MS = 8 * 3600 * 1000
WEIGHT_LIMIT_PER_MINUTE = 2400


def _number(value: float) -> int | float:
    """Bracket figures are JSON numbers; whole ones are written without a fraction (50000, not 50000.0)."""
    return int(value) if float(value).is_integer() else value


def quantity(market: Market, contracts: float) -> str:
    return wire.fixed(contracts, wire.decimals_of(market.qty_step))


def price(market: Market, value: float) -> str:
    return wire.fixed(value, wire.decimals_of(market.price_tick))


def signed_amount(market: Market, pos: SimPosition) -> str:
    """positionAmt: negative for a short, in the market's quantity precision."""
    return quantity(market, pos.side.sign * pos.contracts)


def break_even(market: Market, pos: SimPosition) -> float:
    """The entry moved by the taker fee paid to get in (what Binance shows as breakEvenPrice)."""
    return pos.entry_price * (1 + pos.side.sign * market.taker_fee)


def next_funding_ms(now_ms: int) -> int:
    return (now_ms // FUNDING_INTERVAL_MS + 1) * FUNDING_INTERVAL_MS


# ---- market data ----


def exchange_info(markets: Iterable[Market], server_time_ms: int) -> dict[str, Any]:
    return {
        "timezone": "UTC",
        "serverTime": server_time_ms,
        "futuresType": "U_MARGINED",
        "rateLimits": [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": WEIGHT_LIMIT_PER_MINUTE,
            },
            {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
        ],
        "exchangeFilters": [],
        "assets": [{"asset": SETTLE, "marginAvailable": True, "autoAssetExchange": "-10000"}],
        "symbols": [_symbol_info(market) for market in markets],
    }


def _symbol_info(market: Market) -> dict[str, Any]:
    price_places = wire.decimals_of(market.price_tick)
    qty_places = wire.decimals_of(market.qty_step)
    return {
        "symbol": market.symbol,
        "pair": market.symbol,
        "contractType": "PERPETUAL",
        "deliveryDate": PERPETUAL_DELIVERY_MS,
        "onboardDate": 1569398400000,
        "status": "TRADING",
        "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000",
        "baseAsset": market.base,
        "quoteAsset": market.quote,
        "marginAsset": market.settle,
        "pricePrecision": price_places,
        "quantityPrecision": qty_places,
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "underlyingSubType": [],
        "settlePlan": 0,
        "triggerProtect": "0.0500",
        "liquidationFee": "0.012500",
        "marketTakeBound": "0.05",
        "maxMoveOrderLimit": 10000,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": wire.plain(market.price_tick),
                "maxPrice": wire.plain(round(market.mark * 100, price_places)),
                "tickSize": wire.plain(market.price_tick),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": wire.plain(market.min_qty),
                "maxQty": "1000000",
                "stepSize": wire.plain(market.qty_step),
            },
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": wire.plain(market.min_qty),
                "maxQty": "1000000",
                "stepSize": wire.plain(market.qty_step),
            },
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
            {"filterType": "MIN_NOTIONAL", "notional": "5"},
            {
                "filterType": "PERCENT_PRICE",
                "multiplierUp": "1.0500",
                "multiplierDown": "0.9500",
                "multiplierDecimal": "4",
            },
        ],
        "orderTypes": [
            "LIMIT",
            "MARKET",
            "STOP",
            "STOP_MARKET",
            "TAKE_PROFIT",
            "TAKE_PROFIT_MARKET",
            "TRAILING_STOP_MARKET",
        ],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
        "permissionSet": ["GRID", "COPY"],
    }


def premium_index(engine: Engine, symbol: str, now_ms: int) -> dict[str, Any]:
    mark = engine.marks[symbol]
    return {
        "symbol": symbol,
        "markPrice": wire.money(mark),
        "indexPrice": wire.money(engine.index_price(symbol)),
        "estimatedSettlePrice": wire.money(engine.index_price(symbol)),
        "lastFundingRate": wire.money(engine.funding_rate(symbol)),
        "interestRate": "0.00010000",
        "nextFundingTime": next_funding_ms(now_ms),
        "time": now_ms,
    }


def ticker_24hr(engine: Engine, symbol: str, now_ms: int) -> dict[str, Any]:
    """No trades are simulated: the last price is the mark and the day's volume is zero."""
    last = price(engine.markets[symbol], engine.marks[symbol])
    return {
        "symbol": symbol,
        "priceChange": "0",
        "priceChangePercent": "0.000",
        "weightedAvgPrice": last,
        "lastPrice": last,
        "lastQty": "0",
        "openPrice": last,
        "highPrice": last,
        "lowPrice": last,
        "volume": "0",
        "quoteVolume": "0",
        "openTime": now_ms - 24 * 3600 * 1000,
        "closeTime": now_ms,
        "firstId": 0,
        "lastId": 0,
        "count": 0,
    }


def leverage_brackets(market: Market) -> dict[str, Any]:
    return {
        "symbol": market.symbol,
        "brackets": [
            {
                "bracket": number,
                "initialLeverage": _number(tier.max_leverage),
                "notionalCap": _number(tier.max_notional),
                "notionalFloor": _number(tier.min_notional),
                "maintMarginRatio": _number(tier.mmr),
                "cum": float(tier.maintenance_amount),
            }
            for number, tier in enumerate(market.tiers, start=1)
        ],
    }


# ---- account and positions ----


class AccountView:
    """One account's positions joined with the model's verdict on each, computed once per request."""

    def __init__(self, engine: Engine, account: SimAccount) -> None:
        self.engine = engine
        self.account = account
        risk = engine.risk(account.api_key) if account.positions else None
        legs: tuple[PositionRisk | None, ...] = risk.positions if risk is not None else ()
        self.legs: list[tuple[SimPosition, PositionRisk | None]] = list(
            zip(account.positions, legs or (None,) * len(account.positions), strict=True)
        )
        self.summary = engine.summary(account.api_key)

    def market(self, pos: SimPosition) -> Market:
        return self.engine.markets[pos.symbol]

    def mark(self, pos: SimPosition) -> float:
        return self.engine.marks[pos.symbol]

    def upnl(self, pos: SimPosition) -> float:
        return self.engine.unrealized_pnl(pos)

    def notional(self, pos: SimPosition) -> float:
        return pos.side.sign * self.engine.notional(pos)

    def initial_margin(self, pos: SimPosition) -> float:
        return self.engine.notional(pos) / pos.leverage

    def maintenance(self, leg: PositionRisk | None) -> float:
        return leg.maintenance_margin if leg is not None else 0.0

    def symbols(self) -> set[str]:
        return {pos.symbol for pos in self.account.positions}


def _liquidation(leg: PositionRisk | None) -> str:
    # Binance writes "0" where there is no liquidation price (e.g. a fully collateralised position).
    if leg is None or leg.liquidation_price is None or leg.liquidation_price <= 0:
        return "0"
    return wire.money(leg.liquidation_price)


def is_isolated(pos: SimPosition) -> bool:
    return pos.margin_mode is MarginMode.ISOLATED


def position_risk_v3(view: AccountView, pos: SimPosition, leg: PositionRisk | None) -> dict[str, Any]:
    market = view.market(pos)
    upnl = view.upnl(pos)
    initial = view.initial_margin(pos)
    return {
        "symbol": pos.symbol,
        "positionSide": pos.position_side,
        "positionAmt": signed_amount(market, pos),
        "entryPrice": wire.trimmed(pos.entry_price),
        "breakEvenPrice": wire.trimmed(break_even(market, pos), 9),
        "markPrice": wire.money(view.mark(pos)),
        "unRealizedProfit": wire.money(upnl),
        "liquidationPrice": _liquidation(leg),
        "isolatedMargin": wire.money(pos.isolated_margin + upnl) if is_isolated(pos) else "0",
        "notional": wire.money(view.notional(pos)),
        "marginAsset": market.settle,
        "isolatedWallet": wire.money(pos.isolated_margin) if is_isolated(pos) else "0",
        "initialMargin": wire.money(initial),
        "maintMargin": wire.money(view.maintenance(leg)),
        "positionInitialMargin": wire.money(initial),
        "openOrderInitialMargin": "0",
        "adl": 2,
        "bidNotional": "0",
        "askNotional": "0",
        "updateTime": pos.update_time_ms,
    }


def position_risk_v2(view: AccountView, pos: SimPosition, leg: PositionRisk | None) -> dict[str, Any]:
    market = view.market(pos)
    upnl = view.upnl(pos)
    return {
        "symbol": pos.symbol,
        "positionAmt": signed_amount(market, pos),
        "entryPrice": wire.trimmed(pos.entry_price),
        "breakEvenPrice": wire.trimmed(break_even(market, pos), 9),
        "markPrice": wire.money(view.mark(pos)),
        "unRealizedProfit": wire.money(upnl),
        "liquidationPrice": _liquidation(leg),
        "leverage": f"{pos.leverage:g}",
        "maxNotionalValue": max_notional(market, pos.leverage),
        "marginType": "isolated" if is_isolated(pos) else "cross",
        "isolatedMargin": wire.money(pos.isolated_margin + upnl if is_isolated(pos) else 0.0),
        "isAutoAddMargin": "false",
        "positionSide": pos.position_side,
        "notional": wire.money(view.notional(pos)),
        "isolatedWallet": wire.money(pos.isolated_margin) if is_isolated(pos) else "0",
        "updateTime": pos.update_time_ms,
    }


def flat_position_v2(
    engine: Engine, account: SimAccount, market: Market, position_side: str
) -> dict[str, Any]:
    """The row v2 positionRisk shows for a symbol without a position (v2 lists every symbol)."""
    leverage = account.leverage_for(market.symbol)
    isolated = account.margin_mode_for(market.symbol) is MarginMode.ISOLATED
    return {
        "symbol": market.symbol,
        "positionAmt": quantity(market, 0.0),
        "entryPrice": "0.0",
        "breakEvenPrice": "0.0",
        "markPrice": wire.money(engine.marks[market.symbol]),
        "unRealizedProfit": wire.money(0.0),
        "liquidationPrice": "0",
        "leverage": f"{leverage:g}",
        "maxNotionalValue": max_notional(market, leverage),
        "marginType": "isolated" if isolated else "cross",
        "isolatedMargin": wire.money(0.0),
        "isAutoAddMargin": "false",
        "positionSide": position_side,
        "notional": "0",
        "isolatedWallet": "0",
        "updateTime": 0,
    }


def max_notional(market: Market, leverage: float) -> str:
    """The largest bracket cap still allowing `leverage` (Binance's maxNotionalValue)."""
    allowed = [tier.max_notional for tier in market.tiers if tier.max_leverage >= leverage]
    return f"{max(allowed) if allowed else market.tiers[0].max_notional:g}" if market.tiers else "0"


def account_v3(view: AccountView, now_ms: int) -> dict[str, Any]:
    """GET /fapi/v3/account (and v2, which has the same totals): assets, plus the open positions."""
    summary = view.summary
    cross_upnl = sum(view.upnl(p) for p in view.account.positions if not is_isolated(p))
    initial = summary.position_initial_margin
    maintenance = summary.maintenance_margin
    available = summary.available_balance
    max_withdraw = max(0.0, min(available, summary.cross_wallet))
    usdt = {
        "asset": SETTLE,
        "walletBalance": wire.money(summary.wallet_balance),
        "unrealizedProfit": wire.money(summary.unrealized_pnl),
        "marginBalance": wire.money(summary.margin_balance),
        "maintMargin": wire.money(maintenance),
        "initialMargin": wire.money(initial),
        "positionInitialMargin": wire.money(initial),
        "openOrderInitialMargin": wire.money(0.0),
        "crossWalletBalance": wire.money(summary.cross_wallet),
        "crossUnPnl": wire.money(cross_upnl),
        "availableBalance": wire.money(available),
        "maxWithdrawAmount": wire.money(max_withdraw),
        # ccxt skips assets whose updateTime is 0: a funded wallet has been touched at some point.
        "updateTime": now_ms,
    }
    positions = [
        {
            "symbol": pos.symbol,
            "positionSide": pos.position_side,
            "positionAmt": signed_amount(view.market(pos), pos),
            "unrealizedProfit": wire.money(view.upnl(pos)),
            "isolatedMargin": wire.money(pos.isolated_margin + view.upnl(pos)) if is_isolated(pos) else "0",
            "notional": wire.money(view.notional(pos)),
            "isolatedWallet": wire.money(pos.isolated_margin) if is_isolated(pos) else "0",
            "initialMargin": wire.money(view.initial_margin(pos)),
            "maintMargin": wire.money(view.maintenance(leg)),
            "updateTime": pos.update_time_ms,
        }
        for pos, leg in view.legs
    ]
    return {
        "totalInitialMargin": wire.money(initial),
        "totalMaintMargin": wire.money(maintenance),
        "totalWalletBalance": wire.money(summary.wallet_balance),
        "totalUnrealizedProfit": wire.money(summary.unrealized_pnl),
        "totalMarginBalance": wire.money(summary.margin_balance),
        "totalPositionInitialMargin": wire.money(initial),
        "totalOpenOrderInitialMargin": wire.money(0.0),
        "totalCrossWalletBalance": wire.money(summary.cross_wallet),
        "totalCrossUnPnl": wire.money(cross_upnl),
        "availableBalance": wire.money(available),
        "maxWithdrawAmount": wire.money(max_withdraw),
        "assets": [usdt],
        "positions": positions,
    }


def symbol_config(account: SimAccount, market: Market) -> dict[str, Any]:
    leverage = account.leverage_for(market.symbol)
    isolated = account.margin_mode_for(market.symbol) is MarginMode.ISOLATED
    return {
        "symbol": market.symbol,
        "marginType": "ISOLATED" if isolated else "CROSSED",
        "isAutoAddMargin": False,
        "leverage": int(leverage),
        "maxNotionalValue": max_notional(market, leverage),
    }

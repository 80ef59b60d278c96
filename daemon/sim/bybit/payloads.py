"""Bybit v5 JSON shapes built from plain figures: instruments, risk limits, tickers, positions, wallets.

Pure functions, no engine access: `views.py` gathers the figures. Field names, order and types follow
Bybit's published examples and ccxt's recorded responses (tests/data/bybit_*.json).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from daemon.core.types import MarginMode, Side
from daemon.sim.bybit.wire import category_of, decimals_of, fixed, money, price, qty, trimmed, wire_symbol
from daemon.sim.markets import Market

LAUNCH_TIME_MS = "1585526400000"
FUNDING_INTERVAL_MINUTES = 480


def instrument_row(market: Market) -> dict[str, Any]:
    """One entry of GET /v5/market/instruments-info (linear or inverse perpetual)."""
    max_qty = market.qty_step * 1_000_000 if market.qty_step < 1 else 1_000_000.0
    return {
        "symbol": wire_symbol(market),
        "contractType": "InversePerpetual" if category_of(market) == "inverse" else "LinearPerpetual",
        "status": "Trading",
        "baseCoin": market.base,
        "quoteCoin": "USD" if category_of(market) == "inverse" else market.quote,
        "launchTime": LAUNCH_TIME_MS,
        "deliveryTime": "0",
        "deliveryFeeRate": "",
        "priceScale": str(decimals_of(market.price_tick)),
        "leverageFilter": {
            "minLeverage": "1",
            "maxLeverage": fixed(market.max_leverage, 2),
            "leverageStep": "0.01",
        },
        "priceFilter": {
            "minPrice": price(market.price_tick, market),
            "maxPrice": price(max_price(market), market),
            "tickSize": price(market.price_tick, market),
        },
        "lotSizeFilter": {
            "maxOrderQty": qty(max_qty, market),
            "minOrderQty": qty(market.min_qty, market),
            "qtyStep": qty(market.qty_step, market),
            "postOnlyMaxOrderQty": qty(max_qty, market),
            "maxMktOrderQty": qty(max_qty / 10, market),
            "minNotionalValue": "5",
        },
        "unifiedMarginTrade": True,
        "fundingInterval": FUNDING_INTERVAL_MINUTES,
        "settleCoin": market.settle,
        "copyTrading": "both",
        "upperFundingRate": "0.005",
        "lowerFundingRate": "-0.005",
        "isPreListing": False,
        "preListingInfo": None,
        "riskParameters": {"priceLimitRatioX": "0.01", "priceLimitRatioY": "0.02"},
        "displayName": "",
    }


def max_price(market: Market) -> float:
    """The instrument's price ceiling (`priceFilter.maxPrice`)."""
    return market.mark * 30


def reported_liquidation_price(value: float | None, market: Market) -> float | None:
    """Bybit leaves `liqPrice` empty when it would lie outside the instrument's [minPrice, maxPrice]."""
    if value is None or value <= market.price_tick or value >= max_price(market):
        return None
    return value


def risk_limit_rows(market: Market) -> list[dict[str, Any]]:
    """GET /v5/market/risk-limit rows: one per maintenance bracket, capped by `riskLimitValue`."""
    rows = []
    for index, tier in enumerate(market.tiers):
        rows.append(
            {
                "id": index + 1,
                "symbol": wire_symbol(market),
                "riskLimitValue": trimmed(tier.max_notional),
                "maintenanceMargin": trimmed(tier.mmr),
                "initialMargin": trimmed(1 / tier.max_leverage),
                "isLowestRisk": 1 if index == 0 else 0,
                "maxLeverage": fixed(tier.max_leverage, 2),
                "mmDeduction": "" if tier.maintenance_amount == 0 else trimmed(tier.maintenance_amount),
            }
        )
    return rows


@dataclass(frozen=True, slots=True)
class TickerStats:
    """The session's running price statistics for one symbol (the simulator has no trade tape)."""

    open_price: float
    high: float
    low: float
    open_interest: float


def ticker_row(
    market: Market, mark: float, index: float, funding_rate: float, stats: TickerStats, next_funding_ms: int
) -> dict[str, Any]:
    """A linear/inverse perpetual ticker as both GET /v5/market/tickers and the `tickers.*` snapshot carry it.

    `openInterestValue` must be present: ccxt takes a ticker without it for a spot ticker.
    """
    change = (mark - stats.open_price) / stats.open_price if stats.open_price else 0.0
    tick = market.price_tick
    return {
        "symbol": wire_symbol(market),
        "tickDirection": "ZeroPlusTick",
        "price24hPcnt": trimmed(change, 6),
        "lastPrice": price(mark, market),
        "prevPrice24h": price(stats.open_price, market),
        "highPrice24h": price(stats.high, market),
        "lowPrice24h": price(stats.low, market),
        "prevPrice1h": price(stats.open_price, market),
        "markPrice": price(mark, market),
        "indexPrice": price(index, market),
        "openInterest": qty(stats.open_interest, market),
        "openInterestValue": money(round(stats.open_interest * market.contract_size * mark, 2)),
        "turnover24h": "0",
        "volume24h": "0",
        "fundingIntervalHour": "8",
        "fundingCap": "0.005",
        "nextFundingTime": str(next_funding_ms),
        "fundingRate": trimmed(funding_rate, 8),
        "bid1Price": price(mark - tick, market),
        "bid1Size": qty(market.min_qty * 100, market),
        "ask1Price": price(mark + tick, market),
        "ask1Size": qty(market.min_qty * 100, market),
        "preOpenPrice": "",
        "preQty": "",
        "curPreListingPhase": "",
    }


REST_ONLY_TICKER_FIELDS = {
    "predictedDeliveryPrice": "",
    "basisRate": "",
    "deliveryFeeRate": "",
    "deliveryTime": "0",
    "basis": "",
    "basisRateYear": "",
}


@dataclass(frozen=True, slots=True)
class PositionFigures:
    """Everything one position row says, as numbers; None where the exchange would send ""."""

    market: Market
    position_idx: int
    side: Side | None  # None: no position (size 0)
    size: float
    entry_price: float
    mark: float
    leverage: float
    margin_mode: MarginMode
    position_balance: float
    initial_margin: float
    maintenance_margin: float
    unrealised_pnl: float
    liquidation_price: float | None
    bankruptcy_price: float | None
    created_ms: int
    updated_ms: int
    seq: int

    @property
    def value_at_entry(self) -> float:
        return self.size * self.market.contract_size * self.entry_price


def position_row(fig: PositionFigures, websocket: bool = False) -> dict[str, Any]:
    """GET /v5/position/list entry, or (`websocket`) the `position` topic's entry, which says `entryPrice`
    instead of `avgPrice` and adds `category`."""
    market = fig.market
    tier_index = market.tiers.index(market.tier_for_notional(fig.value_at_entry))
    open_ = fig.side is not None and fig.size > 0
    side_text = "" if not open_ else ("Buy" if fig.side is Side.LONG else "Sell")
    entry_text = price(fig.entry_price, market) if open_ else "0"
    row: dict[str, Any] = {
        "positionIdx": fig.position_idx,
        "riskId": tier_index + 1,
        "riskLimitValue": trimmed(market.tiers[tier_index].max_notional),
        "symbol": wire_symbol(market),
        "side": side_text,
        "size": qty(fig.size, market) if open_ else "0",
        "avgPrice" if not websocket else "entryPrice": entry_text,
        "positionValue": money(fig.value_at_entry) if open_ else "0",
        # Unified accounts (UTA 2.0) deprecated tradeMode and always send 0: a client must read the margin
        # mode from /v5/account/info, as against the real exchange.
        "tradeMode": 0,
        "positionStatus": "Normal",
        "autoAddMargin": 0,
        "adlRankIndicator": 2 if open_ else 0,
        "leverage": trimmed(fig.leverage, 2),
        "breakEvenPrice": price(_break_even(fig), market) if open_ else "0",
        "positionBalance": money(fig.position_balance) if open_ else "0",
        "markPrice": price(fig.mark, market),
        "liqPrice": price(reported_liquidation_price(fig.liquidation_price, market), market) if open_ else "",
        "bustPrice": "",  # unified accounts leave the bankruptcy price empty for linear contracts
        "positionMM": money(fig.maintenance_margin) if open_ else "0",
        "positionMMByMp": money(fig.maintenance_margin) if open_ else "0",
        "positionIM": money(fig.initial_margin) if open_ else "0",
        "positionIMByMp": money(fig.initial_margin) if open_ else "0",
        "tpslMode": "Full",
        "takeProfit": "",
        "stopLoss": "",
        "trailingStop": "0",
        "unrealisedPnl": money(fig.unrealised_pnl) if open_ else "0",
        "curRealisedPnl": "0",
        "cumRealisedPnl": "0",
        "sessionAvgPrice": "",
        "createdTime": str(fig.created_ms),
        "updatedTime": str(fig.updated_ms),
        "seq": fig.seq,
        "isReduceOnly": False,
        "mmrSysUpdatedTime": "",
        "leverageSysUpdatedTime": "",
    }
    if websocket:
        row["category"] = category_of(market)
    return row


def _break_even(fig: PositionFigures) -> float:
    """The price at which closing pays back the open and close taker fees."""
    assert fig.side is not None
    fee = fig.market.taker_fee
    sign = fig.side.sign
    return fig.entry_price * (1 + sign * fee) / (1 - sign * fee)


@dataclass(frozen=True, slots=True)
class CoinFigures:
    coin: str
    wallet_balance: float
    unrealised_pnl: float
    position_im: float
    position_mm: float
    usd_price: float | None
    cum_realised_pnl: float

    @property
    def equity(self) -> float:
        return self.wallet_balance + self.unrealised_pnl


def coin_row(fig: CoinFigures) -> dict[str, Any]:
    """A `coin` entry of the UNIFIED wallet. `availableToWithdraw` is "" as on today's unified accounts, so
    ccxt derives `free` from wallet balance minus the position and order margins."""
    usd_value = None if fig.usd_price is None else fig.equity * fig.usd_price
    return {
        "availableToBorrow": "",
        "bonus": "0",
        "accruedInterest": "0",
        "availableToWithdraw": "",
        "totalOrderIM": "0",
        "equity": money(fig.equity),
        "totalPositionMM": money(fig.position_mm),
        "usdValue": money(usd_value),
        "unrealisedPnl": money(fig.unrealised_pnl),
        "collateralSwitch": True,
        "spotHedgingQty": "0",
        "borrowAmount": "0",
        "totalPositionIM": money(fig.position_im),
        "walletBalance": money(fig.wallet_balance),
        "cumRealisedPnl": money(fig.cum_realised_pnl),
        "locked": "0",
        "marginCollateral": True,
        "coin": fig.coin,
        "spotBorrow": "0",
    }


def unified_account_row(coins: list[CoinFigures], isolated_mode: bool = False) -> dict[str, Any]:
    """The UNIFIED account entry of GET /v5/account/wallet-balance and of the `wallet` topic.

    In ISOLATED_MARGIN mode Bybit leaves the account-level rates and totals empty (only `totalEquity` and
    `totalPerpUPL` stay): a client must then work from the coin rows and the positions.
    """
    priced = [c for c in coins if c.usd_price is not None]
    equity = sum(c.equity * (c.usd_price or 0.0) for c in priced)
    wallet = sum(c.wallet_balance * (c.usd_price or 0.0) for c in priced)
    upnl = sum(c.unrealised_pnl * (c.usd_price or 0.0) for c in priced)
    initial = sum(c.position_im * (c.usd_price or 0.0) for c in priced)
    maintenance = sum(c.position_mm * (c.usd_price or 0.0) for c in priced)
    margin_balance = wallet + upnl
    im_rate = money(round(initial / margin_balance, 4)) if margin_balance > 0 else "0"
    mm_rate = money(round(maintenance / margin_balance, 4)) if margin_balance > 0 else "0"
    row = {
        "totalEquity": money(equity),
        "accountIMRate": im_rate,
        "accountIMRateByMp": im_rate,
        "totalMarginBalance": money(margin_balance),
        "totalInitialMargin": money(initial),
        "totalInitialMarginByMp": money(initial),
        "accountType": "UNIFIED",
        "totalAvailableBalance": money(max(0.0, margin_balance - initial)),
        "accountMMRate": mm_rate,
        "accountMMRateByMp": mm_rate,
        "totalPerpUPL": money(upnl),
        "totalWalletBalance": money(wallet),
        "accountLTV": "0",
        "totalMaintenanceMargin": money(maintenance),
        "totalMaintenanceMarginByMp": money(maintenance),
        "coin": [coin_row(c) for c in coins],
    }
    if isolated_mode:
        row.update({key: "" for key in ISOLATED_MODE_EMPTY_TOTALS})
    return row


ISOLATED_MODE_EMPTY_TOTALS = (
    "accountLTV", "accountIMRate", "accountIMRateByMp", "accountMMRate", "accountMMRateByMp",
    "totalWalletBalance", "totalMarginBalance", "totalAvailableBalance", "totalInitialMargin",
    "totalInitialMarginByMp", "totalMaintenanceMargin", "totalMaintenanceMarginByMp",
)  # fmt: skip

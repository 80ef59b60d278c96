"""What an account's positions and the market list leave out, asked of the exchange for this account: its margin
mode where the exchange keeps it account-wide (Bybit unified), the leverage where positions do not state it
(Binance), and the taker fee it pays where the market list only has ccxt's guess (Bybit, whose maintenance margin
includes the fee to close)."""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import replace
from typing import Any

import structlog

from daemon.core.events import MarketRules, PositionFacts
from daemon.core.types import MarginMode, Side
from daemon.exchanges.parse import margin_mode_of, number, positive
from daemon.exchanges.quirks import Quirks

log = structlog.get_logger("marginguard.exchanges")

# How long a leverage answer is shown before it is asked again. Leverage is shown, never used to judge: asking at
# every reconciliation cost one request per account a minute (with 1,000 accounts, 17 a second and a twentieth of
# the daemon's CPU), while a held leg without an answer (a new symbol, a failed read) is asked for at once.
LEVERAGE_REFRESH_S = 300.0


class AccountTerms:
    def __init__(self, client: Any, quirks: Quirks) -> None:
        self.client = client
        self.quirks = quirks
        self.margin_mode: MarginMode | None = None  # the last answer, reused for pushes
        self.leverages: dict[tuple[str, Side], float] = {}  # the last answers, reused for pushes
        self._leverages_read_at = -math.inf  # monotonic time of the last answer

    async def with_margin_mode(self, facts: tuple[PositionFacts, ...]) -> tuple[PositionFacts, ...]:
        """Where positions do not state their margin mode (Bybit unified: account-wide), ask for it once per
        snapshot and fill it in; pushes reuse the last answer."""
        if self.quirks.margin_mode_in_positions or not facts:
            return facts
        structure = await self.client.fetch_margin_mode(facts[0].symbol)
        self.margin_mode = margin_mode_of(structure)
        return self.fill_margin_mode(facts)

    def fill_margin_mode(self, facts: tuple[PositionFacts, ...]) -> tuple[PositionFacts, ...]:
        mode = self.margin_mode
        if mode is None:
            return facts
        return tuple(f if f.margin_mode is not None else replace(f, margin_mode=mode) for f in facts)

    async def with_leverage(self, facts: tuple[PositionFacts, ...]) -> tuple[PositionFacts, ...]:
        """Where positions do not state their leverage (Binance), ask for the held symbols' leverage and fill
        it in: at a snapshot with a held leg not yet answered for, else every `LEVERAGE_REFRESH_S`. Leverage is
        shown, never used to judge a liquidation (isolated margin is read as it is): a failed read keeps the
        last answers and the snapshot goes on."""
        if self.quirks.leverage_in_positions or not facts:
            return facts
        unanswered = any(f.leverage is None and (f.symbol, f.side) not in self.leverages for f in facts)
        if not unanswered and time.monotonic() - self._leverages_read_at < LEVERAGE_REFRESH_S:
            return self.fill_leverage(facts)
        try:
            answers = await self.client.fetch_leverages(sorted({f.symbol for f in facts}))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any ccxt error: the figure stays as last read, or unknown
            log.warning("leverage unavailable", error=type(exc).__name__)
        else:
            self._leverages_read_at = time.monotonic()
            for symbol, answer in answers.items():
                for side, key in ((Side.LONG, "longLeverage"), (Side.SHORT, "shortLeverage")):
                    leverage = positive(answer.get(key))
                    if leverage is not None:
                        self.leverages[(symbol, side)] = leverage
        return self.fill_leverage(facts)

    def fill_leverage(self, facts: tuple[PositionFacts, ...]) -> tuple[PositionFacts, ...]:
        if not self.leverages:
            return facts
        return tuple(
            f
            if f.leverage is not None or (f.symbol, f.side) not in self.leverages
            else replace(f, leverage=self.leverages[(f.symbol, f.side)])
            for f in facts
        )

    async def with_fee(self, rules: MarketRules) -> MarketRules:
        """The rules with the taker fee this account pays, where the market list only has ccxt's guess. A failed
        read raises (ccxt's error): the caller keeps the guess meanwhile and asks again."""
        if not self.quirks.account_fee_rates:
            return rules
        fee = await self.client.fetch_trading_fee(rules.symbol)
        taker = number(fee.get("taker"))
        return rules if taker is None else replace(rules, taker_fee_rate=taker)

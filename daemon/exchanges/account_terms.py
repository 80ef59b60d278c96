"""What an account's positions and the market list leave out, asked of the exchange for this account: its margin
mode where the exchange keeps it account-wide (Bybit unified), and the taker fee it pays where the market list only
has ccxt's guess (Bybit, whose maintenance margin includes the fee to close)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from daemon.core.events import MarketRules, PositionFacts
from daemon.core.types import MarginMode
from daemon.exchanges.parse import margin_mode_of, number
from daemon.exchanges.quirks import Quirks


class AccountTerms:
    def __init__(self, client: Any, quirks: Quirks) -> None:
        self.client = client
        self.quirks = quirks
        self.margin_mode: MarginMode | None = None  # the last answer, reused for pushes

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

    async def with_fee(self, rules: MarketRules) -> MarketRules:
        """The rules with the taker fee this account pays, where the market list only has ccxt's guess. A failed
        read raises (ccxt's error): the caller keeps the guess meanwhile and asks again."""
        if not self.quirks.account_fee_rates:
            return rules
        fee = await self.client.fetch_trading_fee(rules.symbol)
        taker = number(fee.get("taker"))
        return rules if taker is None else replace(rules, taker_fee_rate=taker)

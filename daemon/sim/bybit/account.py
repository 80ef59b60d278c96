"""Bybit v5 account endpoints: the unified wallet, account and API-key information, coins and transfers."""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Callable
from typing import Any

from daemon.sim.bybit import errors
from daemon.sim.bybit.errors import BybitError, number_param
from daemon.sim.bybit.views import unified_margin_mode, wallet_row
from daemon.sim.bybit.wire import category_of, trimmed, wire_symbol
from daemon.sim.engine import Engine, EngineError

Params = dict[str, Any]


class AccountEndpoints:
    def __init__(self, engine: Engine, now_ms: Callable[[], int]) -> None:
        self.engine = engine
        self.now_ms = now_ms

    def wallet_balance(self, api_key: str, params: Params) -> Any:
        if params.get("accountType") != "UNIFIED":
            raise errors.params_error("accountType only support UNIFIED.")
        row = wallet_row(self.engine, api_key)
        wanted = {c for c in str(params.get("coin", "")).split(",") if c}
        if wanted:
            row["coin"] = [c for c in row["coin"] if c["coin"] in wanted]
        return {"list": [row]}

    def account_info(self, api_key: str, params: Params) -> Any:
        return {
            "marginMode": unified_margin_mode(self.engine.account(api_key)),
            "updatedTime": str(self.now_ms()),
            "unifiedMarginStatus": 5,
            "dcpStatus": "OFF",
            "timeWindow": 10,
            "smpGroup": 0,
            "isMasterTrader": False,
            "spotHedgingStatus": "OFF",
        }

    def query_api(self, api_key: str, params: Params) -> Any:
        return {
            "id": str(zlib.crc32(api_key.encode()) % 10_000_000),
            "note": "marginguard simulator",
            "apiKey": api_key,
            "readOnly": 0,
            "secret": "",
            "permissions": {
                "ContractTrade": ["Order", "Position"],
                "Spot": ["SpotTrade"],
                "Wallet": ["AccountTransfer", "SubMemberTransfer"],
                "Options": ["OptionsTrade"],
                "Derivatives": ["DerivativesTrade"],
                "CopyTrading": [],
                "BlockTrade": [],
                "Exchange": [],
                "NFT": [],
                "Affiliate": [],
            },
            "ips": ["*"],
            "type": 1,
            "deadlineDay": 83,
            "expiredAt": "2030-01-01T00:00:00Z",
            "createdAt": "2024-01-01T00:00:00Z",
            "unified": 0,
            "uta": 1,
            "userID": zlib.crc32(api_key.encode()) % 100_000_000,
            "inviterID": 0,
            "vipLevel": "No VIP",
            "mktMakerLevel": "0",
            "affiliateID": 0,
            "rsaPublicKey": "",
            "isMaster": True,
            "parentUid": "0",
            "kycLevel": "LEVEL_DEFAULT",
            "kycRegion": "",
        }

    def coin_info(self, api_key: str, params: Params) -> Any:
        coins = sorted(
            {m.settle for m in self.engine.markets.values()} | {m.base for m in self.engine.markets.values()}
        )
        wanted = params.get("coin")
        rows = []
        for coin in coins:
            if wanted and coin != wanted:
                continue
            chain = {"USDT": "ETH"}.get(coin, coin)
            rows.append(
                {
                    "name": coin,
                    "coin": coin,
                    "remainAmount": "1000000",
                    "chains": [
                        {
                            "chainType": chain,
                            "confirmation": "12",
                            "withdrawFee": "1",
                            "depositMin": "0",
                            "withdrawMin": "2",
                            "chain": chain,
                            "chainDeposit": "1",
                            "chainWithdraw": "1",
                            "minAccuracy": "8",
                            "withdrawPercentageFee": "0",
                            "contractAddress": "",
                            "safeConfirmNumber": "12",
                        }
                    ],
                }
            )
        return {"rows": rows}

    def inter_transfer(self, api_key: str, params: Params) -> Any:
        """Funds between the funding wallet (outside the simulation) and the unified trading account."""
        source, target = params.get("fromAccountType"), params.get("toAccountType")
        if source == target:
            raise BybitError(131211, "fromAccountType can't be the same as toAccountType")
        amount = number_param(params, "amount")
        if amount <= 0:
            raise BybitError(131215, "Amount error")
        signed = amount if target in ("UNIFIED", "CONTRACT") else -amount
        if source not in ("UNIFIED", "CONTRACT") and target not in ("UNIFIED", "CONTRACT"):
            signed = 0.0  # between two wallets the simulator does not model: nothing to do
        if signed:
            try:
                self.engine.transfer(api_key, str(params.get("coin", "")), signed)
            except EngineError as refusal:
                if refusal.kind == "insufficient_balance":
                    raise errors.TRANSFER_INSUFFICIENT from None
                raise
        return {"transferId": str(params.get("transferId") or uuid.uuid4()), "status": "SUCCESS"}

    def fee_rate(self, api_key: str, params: Params) -> Any:
        """The account's taker/maker rates per symbol: what the simulator charges and its model uses."""
        category = params.get("category", "linear")
        symbol = params.get("symbol")
        rows = [
            {
                "symbol": wire_symbol(m),
                "takerFeeRate": trimmed(m.taker_fee),
                "makerFeeRate": trimmed(m.maker_fee),
            }
            for m in self.engine.markets.values()
            if category_of(m) == category and (not symbol or wire_symbol(m) == symbol)
        ]
        if symbol and not rows:
            raise errors.invalid_symbol()
        return {"list": rows}

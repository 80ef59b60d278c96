"""The two things marginguard may do to an account: add margin to an isolated position, move funds into the
futures wallet. Nothing else is ever sent.

Amounts are rounded DOWN before sending, so the exchange never receives more than was decided. A dry-run
actuator builds the same request and returns it without sending. Each action carries a tag (the decision's
id): a tag already executed by this actuator is answered from memory and not sent again.

Errors from the exchange are raised as the typed errors of `daemon.exchanges.errors`. A `TransientError`
from an action leaves its outcome unknown (the request may have landed): reconcile the positions before
deciding again rather than retrying blindly.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Literal

from ccxt.base.decimal_to_precision import DECIMAL_PLACES, TRUNCATE, decimal_to_precision

from daemon.core.types import Side
from daemon.exchanges.errors import ExchangeError, translate
from daemon.exchanges.quirks import Quirks, TransferRoute

# Names the tag-derived client ids so they cannot collide with ids from other tools.
_TAG_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "marginguard/actions")


@dataclass(frozen=True)
class ActionResult:
    """What an action did (or, in dry-run or when refused, would have done).

    `amount` is the rounded amount sent or to be sent (None when refused before rounding). `request` names
    the ccxt method and the parameters it was (or would be) called with. `refused` says why marginguard did
    not send anything; `repeated` marks an answer from memory for a tag already executed.
    """

    tag: str
    action: Literal["add_margin", "transfer"]
    requested: float
    amount: float | None
    sent: bool
    dry_run: bool = False
    symbol: str | None = None
    side: Side | None = None
    asset: str | None = None
    request: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    response: Any = None
    refused: str | None = None
    repeated: bool = False


class Actuator:
    """Sends margin actions for one account through its ccxt client."""

    def __init__(self, client: Any, quirks: Quirks, dry_run: bool) -> None:
        self.client = client
        self.quirks = quirks
        self.dry_run = dry_run
        self._done: dict[str, ActionResult] = {}

    async def add_isolated_margin(
        self, symbol: str, side: Side, amount: float, tag: str, *, hedged: bool | None = None
    ) -> ActionResult:
        """Add `amount` (settle currency, rounded down) to the isolated margin of the `side` leg of `symbol`.

        `hedged` says whether the account is in hedge mode; None looks it up from the position (one REST read,
        made in dry-run too: a dry run shows the request exactly as it would be sent).
        Raises a typed `ExchangeError` when the exchange refuses (e.g. InvalidRequest for a cross position).
        """
        if tag in self._done:
            return _repeated(self._done[tag])
        base = ActionResult(tag, "add_margin", amount, amount=None, sent=False, symbol=symbol, side=side)
        if self.quirks.add_margin == "unsupported":
            return replace(
                base,
                amount=None,
                sent=False,
                refused=f"{self.quirks.exchange_id}: adding margin is not supported",
            )
        try:
            await self.client.load_markets()
            market = self.client.market(symbol)
            asset = str(market.get("settle") or self.quirks.settle)
            text = self._round_margin(symbol, asset, amount)
            if float(text) <= 0:
                return replace(
                    base, asset=asset, amount=0.0, sent=False, refused=f"{amount} rounds down to 0 {asset}"
                )
            if hedged is None and self.quirks.leg_param is not None:
                hedged = await self._is_hedged(symbol, side)
            method, args, params = self._add_margin_request(market, side, text, bool(hedged))
        except Exception as exc:
            raise self._translated(exc) from exc
        request = MappingProxyType({"method": method, "args": args, "params": params})
        if self.dry_run:
            return replace(base, asset=asset, amount=float(text), sent=False, dry_run=True, request=request)
        try:
            response = await getattr(self.client, method)(*args, params)
        except Exception as exc:
            raise self._translated(exc) from exc
        result = replace(base, asset=asset, amount=float(text), sent=True, request=request, response=response)
        self._done[tag] = result
        return result

    async def transfer_to_futures(self, asset: str, amount: float, tag: str) -> ActionResult:
        """Move `amount` of `asset` (rounded down) into the futures wallet, where the exchange allows it.

        Exchanges without a transfer route give `ActionResult(refused=...)`; nothing is sent. The tag becomes
        the exchange's client transfer id where it has one, so the exchange too refuses a repeat.
        """
        if tag in self._done:
            return _repeated(self._done[tag])
        base = ActionResult(tag, "transfer", amount, amount=None, sent=False, asset=asset)
        route = self.quirks.transfer
        if route is None:
            return replace(
                base,
                amount=None,
                sent=False,
                refused=f"{self.quirks.exchange_id}: marginguard does not transfer funds there; move them by hand",
            )
        try:
            text = self._round_currency(asset, amount)
        except Exception as exc:
            raise self._translated(exc) from exc
        if float(text) <= 0:
            return replace(base, amount=0.0, sent=False, refused=f"{amount} rounds down to 0 {asset}")
        args = (asset, text, route.from_account, route.to_account)
        params = _transfer_params(route, tag)
        request = MappingProxyType({"method": "transfer", "args": args, "params": params})
        if self.dry_run:
            return replace(base, amount=float(text), sent=False, dry_run=True, request=request)
        try:
            response = await self.client.transfer(*args, params)
        except Exception as exc:
            raise self._translated(exc) from exc
        result = replace(base, amount=float(text), sent=True, request=request, response=response)
        self._done[tag] = result
        return result

    # ---- requests ----

    def _add_margin_request(
        self, market: Mapping[str, Any], side: Side, amount: str, hedged: bool
    ) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
        params: dict[str, Any] = {}
        leg = self.quirks.leg_param
        if leg is not None:
            params[leg.name] = (leg.long if side is Side.LONG else leg.short) if hedged else leg.one_way
        if self.quirks.add_margin == "bybit_v5":
            # ccxt has no unified add_margin for Bybit: its implicit method for POST /v5/position/add-margin.
            params = {
                "category": "linear" if market.get("linear") else "inverse",
                "symbol": market["id"],
                "margin": amount,
                **params,
            }
            return "private_post_v5_position_add_margin", (), params
        if self.quirks.add_margin == "okx_v5":
            # POST /api/v5/account/position/margin-balance through the implicit method (see the OKX quirks).
            params = {"instId": market["id"], "type": "add", "amt": amount, **params}
            return "private_post_account_position_margin_balance", (), params
        return "add_margin", (market["symbol"], amount), params

    async def _is_hedged(self, symbol: str, side: Side) -> bool:
        positions = await self.client.fetch_positions([symbol])
        for position in positions:
            if (
                position.get("symbol") == symbol
                and position.get("side") == side.value
                and position.get("contracts")
            ):
                return bool(position.get("hedged"))
        return False  # no such leg: the exchange will refuse, whatever the mode

    # ---- rounding (always down) ----

    def _round_currency(self, asset: str, amount: float) -> str:
        """`amount` truncated to the currency's precision: ccxt's when it loaded currencies from the exchange,
        else the exchange's margin decimals from the quirks."""
        currencies = getattr(self.client, "currencies", None) or {}
        currency = currencies.get(asset) if isinstance(currencies, Mapping) else None
        text = decimal_to_precision(amount, TRUNCATE, self.quirks.margin_decimals, DECIMAL_PLACES)
        # A currency built from market ticks (no `info`) says nothing about transfer or margin precision.
        if currency and currency.get("info") and currency.get("precision") is not None:
            text = decimal_to_precision(text, TRUNCATE, currency["precision"], self.client.precisionMode)
        return str(text)

    def _round_margin(self, symbol: str, asset: str, amount: float) -> str:
        text = self._round_currency(asset, amount)
        if self.quirks.margin_amount_uses_market_precision and float(text) > 0:
            # ccxt truncates the margin amount with the market's amount precision before sending (Binance):
            # do it here so that what is reported is exactly what is sent.
            precision = self.client.market(symbol)["precision"]["amount"]
            text = str(decimal_to_precision(text, TRUNCATE, precision, self.client.precisionMode))
        return text

    def _translated(self, exc: BaseException) -> ExchangeError:
        return translate(exc, getattr(self.client, "last_response_headers", None))


def _transfer_params(route: TransferRoute, tag: str) -> dict[str, Any]:
    if route.client_id_param is None:
        return {}
    client_id = uuid.uuid5(_TAG_NAMESPACE, tag)
    return {route.client_id_param: str(client_id) if route.client_id_style == "uuid" else client_id.hex}


def _repeated(result: ActionResult) -> ActionResult:
    return replace(result, sent=False, repeated=True)

"""The two things marginguard may do to an account: add margin to an isolated position, move funds into the
futures wallet. Nothing else is ever sent.

Amounts are rounded DOWN before sending, so the exchange never receives more than was decided. A dry-run
actuator builds the same request and returns it without sending. Each action carries a tag (the decision's
id): a tag already executed by this actuator is answered from memory and not sent again.

Errors from the exchange are raised as the typed errors of `daemon.exchanges.errors`. An action is sent once
and never retried: a refusal (`InvalidRequest`, `PermissionDenied`, `AuthenticationFailed`) says it did not
happen; any other failure once the request is out (a timeout, a 5xx, an answer ccxt cannot parse) is a
`TransientError` whose outcome is unknown — the request may have landed — to be settled against the exchange's
records before anything more is decided (`daemon.app.executor`). The reads an action needs before it is sent
(markets, the leg's mode) go through the `read` the account's gateway gives, so they are retried like any read.

Each venue's request shape comes from its quirks (`Quirks.add_margin`, `Quirks.transfer`, `Quirks.leg_param`).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Literal, Protocol, TypeVar

from ccxt.base.decimal_to_precision import DECIMAL_PLACES, TRUNCATE, decimal_to_precision

from daemon.core.types import Side
from daemon.exchanges.errors import ExchangeError, TransientError
from daemon.exchanges.quirks import ExchangeCall, Quirks, TransferRoute
from daemon.exchanges.retry import Reader, is_fatal, translated

T = TypeVar("T")

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


class OutcomeUnknown(TransientError):
    """An action's request went out and no answer said what became of it (an answer ccxt could not read, an
    error the exchange does not explain): it may have landed. Settle it against the exchange's records; never
    send it again."""


class NotSent(ExchangeError):
    """Nothing was sent: a look-up the action needed first (markets, the leg's mode) could not be made, after
    the read's retries. The action did not happen; it may be decided again later."""


class MarginActions(Protocol):
    """What the top-up executor may do to an account (the `Actuator`, or the gateway that owns one)."""

    async def add_isolated_margin(
        self, symbol: str, side: Side, amount: float, tag: str, *, hedged: bool | None = None
    ) -> ActionResult: ...

    async def transfer_to_futures(self, asset: str, amount: float, tag: str) -> ActionResult: ...


class Actuator:
    """Sends margin actions for one account through its ccxt client.

    `read` runs the look-ups made before sending (default: once, errors translated); the gateway passes its
    retry-and-translate path. The action itself is sent exactly once.
    """

    def __init__(self, client: Any, quirks: Quirks, dry_run: bool, read: Reader | None = None) -> None:
        self.client = client
        self.quirks = quirks
        self.dry_run = dry_run
        self._read: Reader = read or self._read_once
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
        if self.quirks.add_margin is None:
            return replace(
                base,
                amount=None,
                sent=False,
                refused=f"{self.quirks.exchange_id}: adding margin is not supported",
            )
        await self._look_up(self.client.load_markets)
        try:
            market = self.client.market(symbol)
            asset = str(market.get("settle") or self.quirks.settle)
            text = self._round_margin(symbol, asset, amount)
        except Exception as exc:
            raise translated(exc, self.client) from exc
        if float(text) <= 0:
            return replace(
                base, asset=asset, amount=0.0, sent=False, refused=f"{amount} rounds down to 0 {asset}"
            )
        if hedged is None and self.quirks.leg_param is not None:
            hedged = await self._is_hedged(symbol, side)
        call = self.quirks.add_margin(market, text, self._leg_params(side, bool(hedged)))
        request = _request(call)
        if self.dry_run:
            return replace(base, asset=asset, amount=float(text), sent=False, dry_run=True, request=request)
        response = await self._send(call)
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
            raise translated(exc, self.client) from exc
        if float(text) <= 0:
            return replace(base, amount=0.0, sent=False, refused=f"{amount} rounds down to 0 {asset}")
        call = ExchangeCall(
            "transfer", (asset, text, route.from_account, route.to_account), _transfer_params(route, tag)
        )
        request = _request(call)
        if self.dry_run:
            return replace(base, amount=float(text), sent=False, dry_run=True, request=request)
        response = await self._send(call)
        result = replace(base, amount=float(text), sent=True, request=request, response=response)
        self._done[tag] = result
        return result

    # ---- requests ----

    def _leg_params(self, side: Side, hedged: bool) -> dict[str, Any]:
        leg = self.quirks.leg_param
        if leg is None:
            return {}
        return {leg.name: (leg.long if side is Side.LONG else leg.short) if hedged else leg.one_way}

    async def _is_hedged(self, symbol: str, side: Side) -> bool:
        positions = await self._look_up(lambda: self.client.fetch_positions([symbol]))
        for position in positions:
            if (
                position.get("symbol") == symbol
                and position.get("side") == side.value
                and position.get("contracts")
            ):
                return bool(position.get("hedged"))
        return False  # no such leg: the exchange will refuse, whatever the mode

    async def _send(self, call: ExchangeCall) -> Any:
        """Send an action once. A refusal is raised as it is; any other failure leaves the outcome unknown."""
        try:
            return await getattr(self.client, call.method)(*call.args, dict(call.params))
        except Exception as exc:
            error = translated(exc, self.client)
            if is_fatal(error) or isinstance(error, TransientError):
                raise error from exc
            raise OutcomeUnknown(f"no readable answer: {error}", exc) from exc

    async def _look_up(self, call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await self._read(call)
        except ExchangeError as exc:
            raise NotSent(f"nothing was sent: {exc}", exc) from exc

    async def _read_once(self, call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await call()
        except Exception as exc:
            raise translated(exc, self.client) from exc

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


def _request(call: ExchangeCall) -> Mapping[str, Any]:
    return MappingProxyType({"method": call.method, "args": call.args, "params": dict(call.params)})


def _transfer_params(route: TransferRoute, tag: str) -> dict[str, Any]:
    if route.client_id_param is None:
        return {}
    client_id = uuid.uuid5(_TAG_NAMESPACE, tag)
    return {route.client_id_param: str(client_id) if route.client_id_style == "uuid" else client_id.hex}


def _repeated(result: ActionResult) -> ActionResult:
    return replace(result, sent=False, repeated=True)

"""Reading `marginguard calc` account documents into the margin model's types, field by field.

A document is what a trader types by hand or a tool writes, so every problem is reported against the field
that caused it (`positions[1].entry_price: must be a number`), and unknown fields are refused: a misspelt
`mark` would otherwise silently fall back to the entry price and give a reassuring, wrong answer.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from daemon.core.margin import FAMILIES, family_for
from daemon.core.tiers import derive_maintenance_amounts
from daemon.core.types import Account, ContractType, MarginMode, Position, Side, Tier

ACCOUNT_FIELDS = frozenset({"exchange", "wallet_balance", "positions"})
POSITION_FIELDS = frozenset(
    {
        "symbol",
        "contract_type",
        "margin_mode",
        "side",
        "contracts",
        "contract_size",
        "entry_price",
        "mark_price",
        "leverage",
        "isolated_margin",
        "mmr",
        "maintenance_amount",
        "tiers",
        "taker_fee_rate",
        "max_leverage",
    }
)
TIER_FIELDS = frozenset({"min_notional", "mmr", "maintenance_amount"})


class CalcInputError(ValueError):
    """A calc document cannot be used as given. `field` names the culprit (e.g. `positions[1].side`).

    The caller should report `str(error)` to the user and answer with exit code 2; nothing was computed.
    """

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True, slots=True)
class CalcDocument:
    """A validated document: the account, and for each position the margin it holds (or would hold) alone.

    `own_margins[i]` is position i's isolated margin, or the initial margin at its leverage; None when neither
    is known (a cross position without leverage). `--compare-modes` needs it for both margin modes.
    """

    account: Account
    own_margins: tuple[float | None, ...]
    # Positions given without a maintenance rate (no mmr, tiers or max_leverage): evaluated with a zero rate,
    # which leaves the bankruptcy price exact and every figure that needs the rate unknown.
    rate_unknown: frozenset[int] = frozenset()


Check = Callable[[float], str | None]


def positive(value: float) -> str | None:
    return None if value > 0.0 else "must be greater than 0"


def not_negative(value: float) -> str | None:
    return None if value >= 0.0 else "must not be negative"


def rate(value: float) -> str | None:
    return None if 0.0 <= value < 1.0 else "must be a rate from 0 up to (not including) 1"


def any_value(value: float) -> str | None:
    return None


class FieldReader:
    """Reads typed fields out of one JSON object, naming each failure by its path."""

    def __init__(self, raw: object, path: str, allowed: frozenset[str]) -> None:
        if not isinstance(raw, dict):
            raise CalcInputError(path or "document", "must be a JSON object")
        self.raw: Mapping[str, object] = raw
        self.path = path
        unknown = sorted(set(raw) - allowed)
        if unknown:
            raise CalcInputError(
                self.name(unknown[0]), f"unknown field (known: {', '.join(sorted(allowed))})"
            )

    def name(self, field: str) -> str:
        return f"{self.path}.{field}" if self.path else field

    def has(self, field: str) -> bool:
        return self.raw.get(field) is not None

    def optional_number(self, field: str, check: Check = any_value) -> float | None:
        value = self.raw.get(field)
        if value is None:
            return None
        # bool is an int in Python, but `true` is not a quantity.
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise CalcInputError(self.name(field), "must be a number")
        try:
            number = float(value)
        except OverflowError:
            raise CalcInputError(self.name(field), "too large to compute with") from None
        if not math.isfinite(number):
            raise CalcInputError(self.name(field), "must be a finite number")
        problem = check(number)
        if problem:
            raise CalcInputError(self.name(field), problem)
        return number

    def number(self, field: str, check: Check = any_value, default: float | None = None) -> float:
        value = self.optional_number(field, check)
        if value is not None:
            return value
        if default is not None:
            return default
        raise CalcInputError(self.name(field), "required, must be a number")

    def choice(self, field: str, options: tuple[str, ...], default: str | None = None) -> str:
        value = self.raw.get(field)
        if value is None and default is not None:
            return default
        if value not in options:
            raise CalcInputError(self.name(field), f"must be one of {', '.join(options)}")
        return str(value)

    def text(self, field: str) -> str:
        value = self.raw.get(field)
        if not isinstance(value, str) or not value.strip():
            raise CalcInputError(self.name(field), "required, must be a non-empty string")
        return value

    def items(self, field: str) -> list[object]:
        value = self.raw.get(field)
        if not isinstance(value, list) or not value:
            raise CalcInputError(self.name(field), "required, must be a non-empty list")
        return value


def decode_text(data: bytes) -> str:
    """The document's text: UTF-8 (a byte-order mark allowed), or a CalcInputError saying where it is not."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise CalcInputError(
            "document", f"not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start})"
        ) from None


def parse_document_text(text: str | bytes) -> CalcDocument:
    """Decode one JSON document and validate it."""
    if isinstance(text, bytes):
        text = decode_text(text)
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise CalcInputError(
            "document", f"invalid JSON: {error.msg} (line {error.lineno}, column {error.colno})"
        ) from None
    except RecursionError:
        raise CalcInputError("document", "nested too deeply to be an account document") from None
    return parse_document(raw)


def parse_document(raw: object) -> CalcDocument:
    """Validate a decoded document and build the account the margin model evaluates."""
    fields = FieldReader(raw, "", ACCOUNT_FIELDS)
    exchange = fields.choice("exchange", tuple(sorted(FAMILIES)))
    wallet_balance = fields.optional_number("wallet_balance")
    parsed = [
        parse_position(item, f"positions[{i}]", exchange) for i, item in enumerate(fields.items("positions"))
    ]
    legs = [(position, own_margin) for position, own_margin, _ in parsed]
    rate_unknown = frozenset(index for index, (_, _, known) in enumerate(parsed) if not known)

    first_type = legs[0][0].contract_type
    for index, (position, _) in enumerate(legs):
        if position.contract_type is not first_type:
            raise CalcInputError(
                f"positions[{index}].contract_type",
                "cannot mix linear and inverse positions in one account (they settle in different currencies)",
            )
    if wallet_balance is None and any(position.margin_mode is MarginMode.CROSS for position, _ in legs):
        raise CalcInputError("wallet_balance", "required when any position uses cross margin")

    account = Account(exchange, tuple(position for position, _ in legs), wallet_balance)
    return CalcDocument(account, tuple(own_margin for _, own_margin in legs), rate_unknown)


def parse_position(raw: object, path: str, exchange: str) -> tuple[Position, float | None, bool]:
    """One position, the margin it holds alone (see `CalcDocument.own_margins`), and whether its maintenance
    rate is known."""
    fields = FieldReader(raw, path, POSITION_FIELDS)
    symbol = fields.text("symbol")
    side = Side(fields.choice("side", ("long", "short")))
    contract_type = ContractType(fields.choice("contract_type", ("linear", "inverse"), default="linear"))
    margin_mode = MarginMode(fields.choice("margin_mode", ("isolated", "cross"), default="cross"))
    contracts = fields.number("contracts", positive)
    contract_size = fields.number("contract_size", positive, default=1.0)
    entry_price = fields.number("entry_price", positive)
    mark_price = fields.number("mark_price", positive, default=entry_price)
    leverage = fields.optional_number("leverage", positive)
    isolated_margin = fields.optional_number("isolated_margin", not_negative)
    taker_fee_rate = fields.number("taker_fee_rate", rate, default=0.0)
    max_leverage = fields.optional_number("max_leverage", positive)
    tiers = parse_maintenance(fields, exchange, max_leverage)
    rate_known = tiers is not None

    own_margin = isolated_margin
    if own_margin is None and leverage is not None:
        # Initial margin at the leverage, valued at entry: q·EP/lev (linear) or q/EP/lev coin (inverse).
        quantity = contracts * contract_size
        value_at_entry = (
            quantity * entry_price if contract_type is ContractType.LINEAR else quantity / entry_price
        )
        own_margin = value_at_entry / leverage
    if margin_mode is MarginMode.ISOLATED and own_margin is None:
        raise CalcInputError(
            fields.name("isolated_margin"), "required for an isolated position without leverage"
        )

    position = Position(
        symbol=symbol,
        side=side,
        contracts=contracts,
        contract_size=contract_size,
        entry_price=entry_price,
        mark_price=mark_price,
        margin_mode=margin_mode,
        contract_type=contract_type,
        leverage=leverage,
        isolated_margin=own_margin if margin_mode is MarginMode.ISOLATED else None,
        tiers=tiers if tiers is not None else (Tier(0.0, 0.0, 0.0),),
        taker_fee_rate=taker_fee_rate,
        max_leverage=max_leverage,
    )
    return position, own_margin, rate_known


def parse_maintenance(
    fields: FieldReader, exchange: str, max_leverage: float | None
) -> tuple[Tier, ...] | None:
    """The bracket table: one flat tier from `mmr`, or `tiers`, or (Hyperliquid) none, left to max leverage;
    None when nothing gives the rate (only the figures that need no rate can be answered)."""
    if fields.has("mmr") and fields.has("tiers"):
        raise CalcInputError(fields.name("tiers"), "give either mmr or tiers, not both")
    if fields.has("maintenance_amount") and not fields.has("mmr"):
        raise CalcInputError(fields.name("maintenance_amount"), "only with mmr (each tier carries its own)")
    if fields.has("mmr"):
        mmr = fields.number("mmr", rate)
        return (Tier(0.0, mmr, fields.number("maintenance_amount", not_negative, default=0.0)),)
    if fields.has("tiers"):
        return parse_tiers(fields, exchange)
    if family_for(exchange).mmr_from_max_leverage and max_leverage is not None:
        return ()
    return None


def parse_tiers(fields: FieldReader, exchange: str) -> tuple[Tier, ...]:
    path = fields.name("tiers")
    rows = [FieldReader(item, f"{path}[{i}]", TIER_FIELDS) for i, item in enumerate(fields.items("tiers"))]
    tiers: list[Tier] = []
    with_amount = [row.has("maintenance_amount") for row in rows]
    for row, has_amount in zip(rows, with_amount, strict=True):
        if has_amount != with_amount[0]:
            raise CalcInputError(row.name("maintenance_amount"), "give it for every tier or for none")
        min_notional = row.number("min_notional", not_negative)
        if tiers and min_notional <= tiers[-1].min_notional:
            raise CalcInputError(row.name("min_notional"), "must be greater than the previous tier's")
        tiers.append(
            Tier(min_notional, row.number("mmr", rate), row.number("maintenance_amount", not_negative, 0.0))
        )
    # Families without bracket deductions (OKX): an omitted amount means 0, not "fill in by continuity".
    if with_amount[0] or not family_for(exchange).bracket_deductions:
        return tuple(tiers)
    return derive_maintenance_amounts(tiers)

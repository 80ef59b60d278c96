"""The configuration's alert-rule tables, made from the core's one definition of a threshold.

    [rules]                              every threshold, defaults from daemon.core.policy_rules.Thresholds
    [rules.symbols."BTC/USDT:USDT"]      some thresholds, for that symbol in every account
    [accounts.rules]                     some thresholds, for that account
    [accounts.rules.symbols."..."]       some thresholds, for that symbol in that account

The tables' keys, defaults and accepted values come from `Thresholds` (its fields and their `Domain`s), so a
threshold exists once: a key accepted here is a threshold the policy uses, and any other key is refused.
`rule_set` lays the tables onto the core's `RuleSet`, checking every combination of scopes (an account's
warning distance must still be wider than a symbol's critical one) and naming the table that breaks it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import MISSING, fields
from typing import TYPE_CHECKING, Annotated, Any, Self

from pydantic import Field, create_model, model_validator

from daemon.app.settings_base import FieldProblem, Section
from daemon.core.policy_rules import (
    THRESHOLD_NAMES,
    RuleOverride,
    RuleSet,
    ThresholdError,
    Thresholds,
    check_threshold,
)

# pydantic refuses inf and NaN with a message naming the key; the core's Domain checks the range.
FiniteNumber = Annotated[float, Field(allow_inf_nan=False)]


class ThresholdTable(Section):
    """A table of thresholds. Its fields are added from `Thresholds` by `_table` (never written out here)."""

    @model_validator(mode="after")
    def _accepted_values(self) -> Self:
        for name, value in self.given().items():
            try:
                check_threshold(name, value)
            except ThresholdError as error:
                raise FieldProblem(name, error.message) from None
        return self

    def given(self) -> dict[str, float]:
        """The thresholds this table sets (for the global table: all of them, defaults included)."""
        values = {name: getattr(self, name) for name in THRESHOLD_NAMES}
        return {name: value for name, value in values.items() if value is not None}


class ScopedTable(ThresholdTable):
    """A table of thresholds with per-symbol tables under `symbols` (the global `[rules]`, an account's)."""

    symbols: dict[str, ThresholdTable] = Field(default_factory=dict)


def _table(name: str, base: type[ThresholdTable], with_defaults: bool, **extra: Any) -> Any:
    definitions: dict[str, Any] = {}
    for spec in fields(Thresholds):
        default = spec.default if with_defaults and spec.default is not MISSING else None
        # With defaults, a threshold the core may switch off still cannot be "unset" from the file.
        annotation: Any = FiniteNumber if default is not None else FiniteNumber | None
        definitions[spec.name] = (annotation, default)
    return create_model(name, __base__=base, __module__=__name__, **definitions, **extra)


# mypy sees the hand-written bases; pydantic validates with the generated models.
if TYPE_CHECKING:
    SymbolRules = ThresholdTable
    AccountRules = ScopedTable
    RulesSettings = ScopedTable
else:
    SymbolRules = _table("SymbolRules", ThresholdTable, with_defaults=False)
    _symbols = (dict[str, SymbolRules], Field(default_factory=dict))
    AccountRules = _table("AccountRules", ScopedTable, with_defaults=False, symbols=_symbols)
    RulesSettings = _table("RulesSettings", ScopedTable, with_defaults=True, symbols=_symbols)
    for _model, _doc in (
        (SymbolRules, "Thresholds for one symbol; unset ones are inherited."),
        (AccountRules, "Thresholds for one account (and its symbols); unset ones are inherited."),
        (RulesSettings, "The global thresholds (defaults: daemon.core.policy_rules.Thresholds)."),
    ):
        _model.__doc__ = _doc


def rule_set(rules: ScopedTable, accounts: Sequence[tuple[str, ScopedTable | None]]) -> RuleSet:
    """The core's rules from the global table and each (account id, account table); FieldProblem with the
    path of the table at fault (e.g. `accounts[0].rules.critical_distance`) when a combination is unusable."""
    try:
        defaults = Thresholds(**rules.given())
    except ThresholdError as error:
        raise FieldProblem(f"rules.{error.field}", error.message) from None
    overrides = [RuleOverride.of(None, symbol, table.given()) for symbol, table in rules.symbols.items()]
    tables: dict[str | None, tuple[str, ScopedTable]] = {None: ("rules", rules)}
    for index, (account_id, table) in enumerate(accounts):
        if table is None:
            continue
        tables[account_id] = (f"accounts[{index}].rules", table)
        overrides.append(RuleOverride.of(account_id, None, table.given()))
        overrides.extend(
            RuleOverride.of(account_id, symbol, values.given()) for symbol, values in table.symbols.items()
        )
    try:
        return RuleSet(defaults, tuple(overrides))
    except ThresholdError as error:
        account, symbol = error.scope or (None, None)
        place, table = tables[account]
        # A symbol's table is at fault if it has one in this scope; otherwise the wider table's value is.
        if symbol is not None and symbol in table.symbols:
            place += f'.symbols."{symbol}"'
        raise FieldProblem(f"{place}.{error.field}", error.message) from None

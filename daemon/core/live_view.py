"""`LiveView`: `view(state)` kept up to date mark by mark, equal to it bit for bit.

`view` runs the full solve (`evaluate_account`: every leg, O(n) per mark). Here a mark moves only what depends on
its symbol, through the incremental model (`margin/incremental.py`): the legs of that symbol get their new mark,
size and figures; when the symbol is cross, every cross leg's figures are read again (each O(1) while its root
stays in the bracket next to its mark: a cross symbol's liquidation price holds the others at their marks); the
account's totals come from the model's running sums. Legs that nothing moved keep the very same `LegView`
object, so a reader can tell what changed by identity (`is`), which the runner's policy and gauges do.

Anything but a mark (a position, the wallet, market rules), or a mark that changes whether a leg can be modelled
at all, rebuilds the model from the state (O(n)): those are rare next to marks, and rebuilding keeps every
reason for unknown figures exactly as `view` gives it. A reconciliation that restates the legs as the model
already has them (only the exchange's own stated prices are new) keeps the model (`refresh`): at a thousand
accounts those came every few milliseconds. `tests/unit/test_live_view.py` compares the two on
generated accounts and mark sequences.
"""

from __future__ import annotations

from collections.abc import Iterable

from daemon.core.margin.incremental import IncrementalAccount
from daemon.core.margin.leeway import LegLeeway
from daemon.core.state import AccountState, LegKey
from daemon.core.types import Account, MarginMode, PositionRisk
from daemon.core.view import AccountView, BuiltLeg, LegView, built_legs, leg_size, model_position

# One leg as `view` builds it: its key, facts, the model's position (None: not modellable), mark and reason.
_Built = BuiltLeg


class LiveView:
    """The account's view, kept across `marks` calls; `rebuild` after any other change of the state."""

    def __init__(self, state: AccountState) -> None:
        self.rebuilds = 0  # how many full builds (a test and a bench read it)
        self.view = self.rebuild(state)

    def rebuild(self, state: AccountState) -> AccountView:
        """The view of `state` from scratch (what `view(state)` returns), and the model behind it."""
        self.rebuilds += 1
        self._account_id = state.account_id
        self._legs, self._rules, self._wallet = state.legs, state.rules, state.wallet_balance
        built, cross_blocker = built_legs(state)
        computable = [
            index
            for index, (_k, _f, p, _m, _r) in enumerate(built)
            if p is not None and (p.margin_mode is MarginMode.ISOLATED or cross_blocker is None)
        ]
        self._built = built
        self._cross_blocker = cross_blocker
        self._slot = {index: slot for slot, index in enumerate(computable)}  # built index -> model index
        self._model: IncrementalAccount | None = None
        self._risks: list[PositionRisk] = []
        self._by_symbol: dict[str, list[int]] = {}
        for index, (key, *_rest) in enumerate(built):
            self._by_symbol.setdefault(key[0], []).append(index)
        # The modelled cross legs: a cross mark moves every one of them.
        self._cross_modelled = {
            index for index in self._slot if (p := built[index][2]) and p.margin_mode is MarginMode.CROSS
        }
        if computable:
            positions = tuple(p for i in computable if (p := built[i][2]) is not None)
            account = Account(
                exchange=state.family,
                positions=positions,
                wallet_balance=state.wallet_balance if cross_blocker is None else None,
                settle_currency=state.settle_currency,
            )
            self._model = IncrementalAccount(account)
            self._risks = list(self._model.account_risk().positions)
        self._views = [self._leg_view(index) for index in range(len(built))]
        self._complete = len(self._slot) == len(built)
        blocker = (
            None
            if self._complete
            else (cross_blocker or next((v.unknown_because for v in self._views if v.risk is None), None))
        )
        self._blocker = blocker
        self.view = self._account_view()
        return self.view

    def refresh(self, state: AccountState) -> AccountView:
        """The view after a change other than marks (a snapshot, a position push). When every leg's model
        position, mark and reason are as before (a reconciliation that found nothing new but the exchange's own
        stated figures), the model is kept and only the legs whose facts changed get a new view; otherwise a
        rebuild."""
        if state.rules is not self._rules or state.wallet_balance != self._wallet:
            return self.rebuild(state)
        built, cross_blocker = built_legs(state)
        old = self._built
        if cross_blocker != self._cross_blocker or len(built) != len(old):
            return self.rebuild(state)
        for (key, _facts, position, mark, reason), (was_key, _was, was_position, was_mark, was_reason) in zip(
            built, old, strict=True
        ):
            if key != was_key or position != was_position or mark != was_mark or reason != was_reason:
                return self.rebuild(state)
        self._legs = state.legs
        changed = [index for index, leg in enumerate(built) if leg[1] is not old[index][1]]
        if not changed:
            return self.view
        self._built = built
        for index in changed:
            self._views[index] = self._leg_view(index)
        self.view = self._account_view()
        return self.view

    def marks(self, state: AccountState, symbols: Iterable[str]) -> AccountView:
        """The view once the marks of `symbols` (already folded into `state`) have moved, and nothing else."""
        if (
            state.legs is not self._legs
            or state.rules is not self._rules
            or state.wallet_balance != self._wallet
        ):
            return self.rebuild(state)  # more than marks changed (a cross leg's exchange price forgotten...)
        touched: set[int] = set()
        for symbol in symbols:
            moved = self._mark(state, symbol)
            if moved is None:
                return self.rebuild(state)
            touched |= moved
        if not touched:
            return self.view
        if self._model is not None:
            for index in touched:
                slot = self._slot.get(index)
                if slot is not None:
                    self._risks[slot] = self._model.position_risk(slot)
        for index in touched:
            self._views[index] = self._leg_view(index)
        self.view = self._account_view()
        return self.view

    def _mark(self, state: AccountState, symbol: str) -> set[int] | None:
        """Move `symbol`'s mark; the built indexes whose view changes, or None when a rebuild is needed."""
        indexes = self._by_symbol.get(symbol)
        if not indexes:
            return set()  # no leg of it: nothing depends on its mark
        if symbol not in state.marks:
            return None  # legs priced at their own rows' marks again
        price: float | None = None
        for index in indexes:
            key, facts, position, _mark, reason = self._built[index]
            new_position, mark, new_reason = model_position(state, facts)
            if (new_position is None) != (position is None) or new_reason != reason:
                return None  # whether (or why not) the leg can be modelled changed
            self._built[index] = (key, facts, new_position, mark, new_reason)
            if index in self._slot:
                price = mark
        touched = set(indexes)
        if price is not None and self._model is not None:
            self._model.update_mark(symbol, price)
            if not self._cross_modelled.isdisjoint(indexes):
                # A cross mark moves the account's totals, and so every cross leg's liquidation price.
                touched |= self._cross_modelled
        return touched

    def leeways(self) -> dict[LegKey, LegLeeway] | None:
        """Every leg's leeway at the marks the view was last moved to (for a quiet band); None unless every
        leg is modelled and has one."""
        model = self._model
        if model is None or not self._complete:
            return None
        found: dict[LegKey, LegLeeway] = {}
        for index, (key, *_rest) in enumerate(self._built):
            leeway = model.leeway(self._slot[index])
            if leeway is None:
                return None
            found[key] = leeway
        return found

    def cross_balance(self) -> tuple[float, float, float] | None:
        """The cross part's margin balance, requirement and their magnitude (see `IncrementalAccount`)."""
        return None if self._model is None else self._model.cross_balance()

    def _leg_view(self, index: int) -> LegView:
        key, facts, position, mark, reason = self._built[index]
        size = leg_size(position) if position is not None else None
        slot = self._slot.get(index)
        if slot is not None:
            return LegView(key, facts, mark, self._risks[slot], size=size)
        if reason is not None:
            return LegView(key, facts, mark, None, reason, size=size)
        return LegView(key, facts, mark, None, f"cross figures unknown: {self._cross_blocker}", size=size)

    def _account_view(self) -> AccountView:
        account_risk = None
        if self._complete and self._model is not None:
            account_risk = self._model.totals().risk(tuple(self._risks))
        return AccountView(self._account_id, tuple(self._views), account_risk, self._blocker)

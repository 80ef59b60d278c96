"""Small builders for core model inputs, so table rows stay readable."""

from __future__ import annotations

from daemon.core.types import Account, ContractType, MarginMode, Position, Side, Tier


def leg(
    side: str = "long",
    qty: float = 1.0,
    entry: float = 100.0,
    mark: float | None = None,
    *,
    symbol: str = "BTCUSDT",
    mode: str = "isolated",
    margin: float | None = None,
    leverage: float | None = None,
    mmr: float = 0.01,
    cum: float = 0.0,
    tiers: tuple[Tier, ...] | None = None,
    fee: float = 0.0,
    contract_size: float = 1.0,
    inverse: bool = False,
    max_leverage: float | None = None,
) -> Position:
    return Position(
        symbol=symbol,
        side=Side(side),
        contracts=qty,
        contract_size=contract_size,
        entry_price=entry,
        mark_price=entry if mark is None else mark,
        margin_mode=MarginMode(mode),
        contract_type=ContractType.INVERSE if inverse else ContractType.LINEAR,
        leverage=leverage,
        isolated_margin=margin,
        tiers=tiers if tiers is not None else (Tier(0.0, mmr, cum),),
        taker_fee_rate=fee,
        max_leverage=max_leverage,
    )


def account(exchange: str, *legs: Position, wallet: float | None = None) -> Account:
    return Account(exchange=exchange, positions=tuple(legs), wallet_balance=wallet)

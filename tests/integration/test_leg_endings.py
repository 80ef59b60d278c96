"""`LegEndings`, the runner's question to the exchange's records about a leg that left the picture, over a fake
of the `AccountRecords` port: what it answers with, how long it waits for a "no", how long it keeps asking
records that cannot be read, and the fallback where the venue keeps none."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from daemon.app.leg_endings import RESTART_LOOKBACK_S, LegEndings
from daemon.core.state import AccountState, Change, ChangeKind
from daemon.core.types import Side
from daemon.exchanges.errors import TransientError
from daemon.exchanges.records import LegMargin, LiquidationRecord, MarginChange

BTC = "BTC/USDT:USDT"
T0 = 1_800_000_000.0
STATE = AccountState("acct", "binance")


class Records:
    """The exchange's liquidation records as a test sets them (None: the venue keeps none)."""

    def __init__(self, liquidations: list[LiquidationRecord] | None) -> None:
        self.found = liquidations
        self.failing = False
        self.asked = 0

    async def leg_margin(self, symbol: str, side: Side) -> LegMargin | None:
        return None

    async def margin_changes(self, since_ms: int) -> Sequence[MarginChange] | None:
        return None

    async def liquidations(
        self, since_ms: int, symbols: Collection[str] = ()
    ) -> Sequence[LiquidationRecord] | None:
        self.asked += 1
        if self.failing:
            raise TransientError(
                "RequestTimeout: records unreachable GET https://x/v5/execution/list?execType=BustTrade&sign=abc"
            )
        return None if self.found is None else [r for r in self.found if r.ts_ms >= since_ms]


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def _gone(kind: ChangeKind = ChangeKind.VANISHED) -> Change:
    return Change(kind, BTC, Side.LONG, "absent from the exchange's snapshot")


def _liquidation(at: float) -> LiquidationRecord:
    return LiquidationRecord(BTC, Side.LONG, 0.5, 61_000.0, int(at * 1000), "BustTrade execution")


async def test_a_leg_on_the_liquidation_records_is_told_liquidated_at_once() -> None:
    endings = LegEndings(Clock())
    records = Records([_liquidation(T0 - 1)])
    opened = Change(ChangeKind.OPENED, "ETH/USDT:USDT", Side.SHORT)
    assert endings.hold([_gone(), opened]) == [opened]  # only the gone leg is held back
    assert endings.asking == [(BTC, Side.LONG)]
    [change] = await endings.ask(records, STATE)
    assert (change.kind, change.symbol, change.side) == (ChangeKind.LIQUIDATED, BTC, Side.LONG)
    assert (change.price, change.contracts, change.detail) == (61_000.0, 0.5, "BustTrade execution")
    assert endings.asking == []


async def test_no_liquidation_on_record_is_a_close_by_the_owner_once_the_settle_window_has_passed() -> None:
    clock = Clock()
    endings = LegEndings(clock, settle_s=3.0)
    records = Records([])
    endings.hold([_gone(ChangeKind.CLOSED)])
    assert await endings.ask(records, STATE) == []  # too early for "no": the record may not be written yet
    clock.now += 1.5
    assert await endings.ask(records, STATE) == []
    # Asked once at once and once more when the settle time is up, not every second meanwhile: every read takes
    # from the request budget the account's reconnects and top-ups share.
    assert records.asked == 1
    records.found = [_liquidation(T0 + 1)]  # written late: still found
    clock.now += 1.5
    [change] = await endings.ask(records, STATE)
    assert change.kind is ChangeKind.LIQUIDATED
    assert records.asked == 2

    clock.now += 10.0
    endings.hold([_gone(ChangeKind.CLOSED)])  # the same leg again later: that record is spent
    assert await endings.ask(records, STATE) == []
    clock.now += 3.0
    [change] = await endings.ask(records, STATE)
    assert change.kind is ChangeKind.CLOSED_BY_OWNER


async def test_records_that_cannot_be_read_are_asked_again_until_the_deadline_then_the_cause_is_unknown() -> (
    None
):
    clock = Clock()
    endings = LegEndings(clock, deadline_s=30.0)
    records = Records([])
    records.failing = True
    endings.hold([_gone()])
    told: list[Change] = []
    while clock.now < T0 + 29.0:
        told += await endings.ask(records, STATE)
        clock.now += 0.5
    assert told == [] and endings.asking == [(BTC, Side.LONG)]
    assert 5 <= records.asked <= 15  # backed off: not every half second
    clock.now = T0 + 30.0
    [change] = await endings.ask(records, STATE)
    assert change.kind is ChangeKind.GONE_UNEXPLAINED and "records unreachable" in change.detail
    assert "sign=" not in change.detail  # told without the request's signed query string
    assert endings.asking == []


async def test_a_venue_that_keeps_no_records_gets_the_change_as_it_came() -> None:
    endings = LegEndings(Clock())
    records = Records(None)
    gone = _gone()
    endings.hold([gone])
    assert await endings.ask(records, STATE) == [gone]
    assert endings.hold([gone]) == [gone]  # from then on nothing is held back
    assert records.asked == 1


async def test_a_leg_found_gone_after_a_restart_is_matched_over_a_longer_past() -> None:
    clock = Clock()
    records = Records([_liquidation(T0 - 3_600)])  # an hour before marginguard came back
    usual = LegEndings(clock, settle_s=0.0)
    usual.hold([_gone()])
    [change] = await usual.ask(records, STATE)
    assert change.kind is ChangeKind.CLOSED_BY_OWNER  # beyond the usual two minutes: not this leg's ending

    after_restart = LegEndings(clock, settle_s=0.0)
    after_restart.hold([_gone()], lookback_s=RESTART_LOOKBACK_S)
    [change] = await after_restart.ask(records, STATE)
    assert change.kind is ChangeKind.LIQUIDATED


async def test_the_latest_liquidation_of_the_leg_explains_its_ending() -> None:
    clock = Clock()
    earlier = LiquidationRecord(
        BTC, Side.LONG, 0.2, 70_000.0, int((T0 - 7_200) * 1000), "BustTrade execution"
    )
    records = Records([earlier, _liquidation(T0 - 60)])
    endings = LegEndings(clock)
    endings.hold([_gone()], lookback_s=RESTART_LOOKBACK_S)
    [change] = await endings.ask(records, STATE)
    assert (change.kind, change.price, change.contracts) == (ChangeKind.LIQUIDATED, 61_000.0, 0.5)

"""Several `marginguard run` instances in cluster mode on one PostgreSQL journal, against one simulator.

    sim, accounts = cluster_sim(300)                    # one isolated long on a market of its own per account
    async with sim, Receiver() as receiver, Cluster(sim, accounts, receiver, journal_url, tmp_path, 3) as cluster:
        await cluster.wait_all_watched(90)              # every account's private stream held by one instance
        takeover = await cluster.kill("mg-1")           # SIGKILL; returns once its accounts are watched again
        takeover.seconds, takeover.accounts

Who watches an account comes from the simulator's connection log (`sim.sessions`, `daemon.sim.sessions`): each
authenticated private stream records its client's TCP port, and the kernel's table of sockets (psutil) says
which instance's process holds that port. A session is resolved to its instance once, while it is open and its
process alive, and remembered. A request in the simulator's request log is resolved the same way
(`Cluster.sender_of`), for as long as its connection stays open (ccxt keeps its connections alive).

Every instance gets the same configuration but for its HTTP port, its state directory and its instance name.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from daemon.core.types import MarginMode, Side
from daemon.notify.receiver import Receiver
from daemon.sim.markets import load_markets, synthetic_markets
from daemon.sim.server import SimServer
from daemon.sim.sessions import Session
from tests.e2e.support import (
    DaemonProcess,
    account_for,
    config_document,
    free_port,
    webhook_sink,
    write_config,
)

ENTRY = 100.0  # every market's mark and every position's entry price at the start
LEVERAGE = 20  # an isolated long at 20x from ENTRY is about 4.5 % from liquidation: no alert at the start
CONTRACTS = 10.0
WALLET = 1_000.0
# ccxt spaces a Binance client's subscriptions 250 ms apart; the simulator has no such limit (bench/harness.py).
UNTHROTTLED = {"ws": {"cost": 0}}
POLL_S = 0.2  # the helpers' own polling: psutil reads every process's sockets, not free at 300 accounts


@dataclass(frozen=True, slots=True)
class ClusterAccount:
    id: str  # the configuration's account id
    api_key: str
    secret: str
    symbol: str  # the simulator's market id of its one position


def cluster_sim(
    count: int, exchange: str = "binance", *, mark_interval_s: float | None = 1.0
) -> tuple[SimServer, list[ClusterAccount]]:
    """A simulator (not started) with `count` accounts, each a key pair and one isolated long (10 contracts at
    20x from 100 USDT, 1,000 USDT wallet) on a synthetic market of its own, so moving one mark moves one
    account."""
    template = dataclasses.replace(load_markets(exchange)["SOLUSDT"], price_tick=0.001)
    markets = {
        name: dataclasses.replace(market, mark=ENTRY)
        for name, market in synthetic_markets(count, template, exchange).items()
    }
    sim = SimServer(exchange, markets=markets, mark_interval_s=mark_interval_s)
    accounts = []
    for index, symbol in enumerate(sorted(markets)):
        account = ClusterAccount(f"acct-{index:04d}", f"ck-{index:04d}", f"cs-{index:04d}", symbol)
        sim.engine.add_account(account.api_key, account.secret, f"Cp-{index:04d}", wallet={"USDT": WALLET})
        sim.engine.set_position(
            account.api_key,
            symbol,
            Side.LONG,
            CONTRACTS,
            entry_price=ENTRY,
            margin_mode=MarginMode.ISOLATED,
            leverage=LEVERAGE,
        )
        accounts.append(account)
    return sim, accounts


def mark_at_distance(sim: SimServer, account: ClusterAccount, distance: float) -> float:
    """The mark at which `account`'s long is `distance` (a fraction of the mark) from its liquidation price."""
    liquidation = sim.engine.liquidation_price(account.api_key, account.symbol, Side.LONG)
    assert liquidation is not None, account
    return round(liquidation / (1.0 - distance), 3)


def move_to_distance(sim: SimServer, account: ClusterAccount, distance: float) -> float:
    price = mark_at_distance(sim, account, distance)
    sim.engine.set_mark(account.symbol, price)
    return price


def cluster_document(
    sim: SimServer,
    accounts: list[ClusterAccount],
    receiver_url: str,
    journal_url: str,
    *,
    lease_ttl_s: float = 10.0,
    renew_interval_s: float = 2.5,
    shards: int = 64,
    topup: bool = True,
) -> dict[str, Any]:
    """The configuration every instance shares (its http port, state directory and name are filled per instance
    by `Cluster`)."""
    entries = []
    for account in accounts:
        entry = account_for(account.id, sim)
        entry["api_key"], entry["secret"] = account.api_key, account.secret
        options = entry["ccxt_config"].get("options", {})
        entry["ccxt_config"] = {**entry["ccxt_config"], "options": {**options, **UNTHROTTLED}}
        entries.append(entry)
    document = config_document(Path("."), 0, entries, [webhook_sink(receiver_url)], topup=topup)
    document["daemon"]["journal_url"] = journal_url
    document["cluster"] = {
        "enabled": True,
        "shards": shards,
        "lease_ttl_s": lease_ttl_s,
        "renew_interval_s": renew_interval_s,
    }
    return document


@dataclass
class Instance:
    name: str
    http_port: int
    daemon: DaemonProcess
    state: str = "running"  # running | stopped (SIGSTOP) | exited (SIGKILL, SIGTERM or on its own)
    signalled_at: float | None = None  # time.monotonic() of the last signal sent
    signalled_wall: float | None = None  # and time.time() then (the simulator's and the journal's clock)

    @property
    def pid(self) -> int:
        assert self.daemon.process is not None
        return self.daemon.process.pid

    @property
    def running(self) -> bool:
        return self.state == "running" and self.daemon.running


@dataclass(frozen=True, slots=True)
class Takeover:
    instance: str
    accounts: frozenset[str]  # the accounts it watched when signalled
    seconds: float  # from the signal until the last of them was watched again by a running instance
    new_owners: dict[str, str] = field(default_factory=dict)  # account id -> instance


class Cluster:
    def __init__(
        self,
        sim: SimServer,
        accounts: list[ClusterAccount],
        receiver: Receiver,
        journal_url: str,
        work: Path,
        instances: int = 3,
        **document: Any,
    ) -> None:
        self.sim = sim
        self.accounts = accounts
        self.receiver = receiver
        self.work = work
        self.by_key = {account.api_key: account for account in accounts}
        self.by_id = {account.id: account for account in accounts}
        self.document = cluster_document(sim, accounts, receiver.url, journal_url, **document)
        self.lease_ttl_s = float(self.document["cluster"]["lease_ttl_s"])
        self.renew_interval_s = float(self.document["cluster"]["renew_interval_s"])
        self.instances: dict[str, Instance] = {}
        self._count = instances
        self._session_owner: dict[int, str] = {}  # session id -> instance name
        self._request_sender: dict[int, str] = {}  # request log index -> instance name

    async def __aenter__(self) -> Cluster:
        for number in range(1, self._count + 1):
            await self.start_instance(f"mg-{number}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        for instance in self.instances.values():
            if instance.state == "stopped":
                instance.daemon.signal(signal.SIGCONT)
        await asyncio.gather(*(i.daemon.close() for i in self.instances.values()))

    async def start_instance(self, name: str) -> Instance:
        state = self.work / name
        state.mkdir(parents=True, exist_ok=True)
        port = free_port()
        document = {
            **self.document,
            "daemon": {
                **self.document["daemon"],
                "storage_path": str(state / "journal.sqlite"),
                "http_bind": f"127.0.0.1:{port}",
            },
            "cluster": {**self.document["cluster"], "instance_name": name},
        }
        daemon = DaemonProcess(write_config(state / "marginguard.toml", document), port)
        await daemon.start()
        self.instances[name] = instance = Instance(name, port, daemon)
        return instance

    # ---- who holds what ----

    def ports(self, remote_port: int | None = None) -> dict[int, str]:
        """Local port -> instance, for every connection of the live instances' processes to `remote_port` (the
        simulator's unless given)."""
        remote = self.sim.port if remote_port is None else remote_port
        ports: dict[int, str] = {}
        for instance in self._alive():
            with contextlib.suppress(psutil.Error):
                for conn in psutil.Process(instance.pid).net_connections("tcp"):
                    if conn.raddr and conn.raddr.port == remote:
                        ports[conn.laddr.port] = instance.name
        return ports

    def _alive(self) -> list[Instance]:
        return [i for i in self.instances.values() if i.state != "exited" and i.daemon.running]

    def resolve(self) -> None:
        """Name the instance of every open session and of every request not named yet (while they are open)."""
        sessions = [s for s in self.sim.sessions.open_sessions() if s.id not in self._session_owner]
        log = self.sim.engine.request_log
        start = max(self._request_sender, default=-1) + 1
        requests = [(n, e) for n, e in enumerate(log[start:], start) if e.get("peer_port")]
        if not sessions and not requests:
            return
        ports = self.ports()
        for session in sessions:
            if session.peer_port in ports:
                self._session_owner[session.id] = ports[session.peer_port]
        for number, entry in requests:
            self._request_sender[number] = ports.get(entry["peer_port"], "?")

    def owner_of(self, session: Session) -> str | None:
        return self._session_owner.get(session.id)

    def sender_of(self, request_index: int) -> str | None:
        """The instance that sent the request-log entry at `request_index` ("?": none of them, or unknown)."""
        return self._request_sender.get(request_index)

    def watchers(self, states: tuple[str, ...] = ("running",)) -> dict[str, set[str]]:
        """Account id -> the instances (in one of `states`) with an open, subscribed private stream of it."""
        self.resolve()
        wanted = {name for name, i in self.instances.items() if i.state in states and i.daemon.running}
        out: dict[str, set[str]] = {account.id: set() for account in self.accounts}
        for session in self.sim.sessions.open_sessions():
            owner = self._session_owner.get(session.id)
            account = self.by_key.get(session.api_key)
            if owner in wanted and account is not None and session.channels:
                out[account.id].add(owner)
        return out

    def holders(self) -> dict[str, str]:
        """Account id -> the one running instance watching it (accounts watched by none or by several left out)."""
        return {account: next(iter(w)) for account, w in self.watchers().items() if len(w) == 1}

    def held_by(self, name: str) -> set[str]:
        return {account for account, owner in self.holders().items() if owner == name}

    def all_watched_once(self) -> bool:
        """Every account watched by exactly one running instance, and by nobody else alive (a stopped one)."""
        everyone = self.watchers(("running", "stopped"))
        running = self.watchers()
        return all(len(running[a]) == 1 and everyone[a] == running[a] for a in running)

    def balanced(self) -> bool:
        """Every running instance watches a share of the accounts: at least a third of an even share (shards
        fall to instances by hashing, so shares differ)."""
        running = [name for name, i in self.instances.items() if i.running]
        least = max(1, len(self.accounts) // (3 * max(1, len(running))))
        counts = {name: 0 for name in running}
        for owner in self.holders().values():
            counts[owner] = counts.get(owner, 0) + 1
        return all(count >= least for count in counts.values())

    def settled(self) -> bool:
        return self.all_watched_once() and self.balanced()

    async def wait_all_watched(self, within_s: float, balanced: bool = True) -> float:
        """Until `all_watched_once` (and, by default, `balanced`); returns how long it took."""
        started = time.monotonic()
        condition = self.settled if balanced else self.all_watched_once
        await self.until(
            condition, within_s, "every account watched by exactly one instance, shares balanced"
        )
        return time.monotonic() - started

    async def until(self, condition: Any, within_s: float, what: str) -> Any:
        """`eventually` at this module's pace (`condition` may be a coroutine function), failing with the tails
        of every instance's output."""
        try:
            return await _eventually_slow(condition, within_s, what)
        except AssertionError as failure:
            tails = "\n".join(
                f"--- {i.name} ({i.state}):\n{i.daemon.tail(15)}" for i in self.instances.values()
            )
            raise AssertionError(f"{failure}\n{self.describe()}\n{tails}") from None

    def describe(self) -> str:
        watchers = self.watchers(("running", "stopped"))
        counts = {n: 0 for n in range(4)}
        for owners in watchers.values():
            counts[min(3, len(owners))] += 1
        per = {name: sum(1 for w in watchers.values() if name in w) for name in self.instances}
        states = {name: i.state for name, i in self.instances.items()}
        return f"accounts by number of watchers {counts}; per instance {per}; states {states}"

    # ---- signals ----

    def signal(self, name: str, signum: int) -> float:
        instance = self.instances[name]
        self.resolve()  # name its sessions and requests while its sockets still exist
        instance.daemon.signal(signum)
        instance.signalled_at, instance.signalled_wall = time.monotonic(), time.time()
        if signum == signal.SIGSTOP:
            instance.state = "stopped"
        elif signum == signal.SIGCONT:
            instance.state = "running"
        elif signum == signal.SIGKILL:
            instance.state = "exited"
        return instance.signalled_at

    async def kill(self, name: str, within_s: float = 60.0) -> Takeover:
        """SIGKILL `name`; returns once every account it watched is watched by a running instance again."""
        return await self._take_over(name, signal.SIGKILL, within_s)

    async def terminate(self, name: str, within_s: float = 60.0) -> Takeover:
        """SIGTERM `name`; returns once every account it watched is watched elsewhere and it has exited."""
        takeover = await self._take_over(name, signal.SIGTERM, within_s)
        await self.instances[name].daemon.wait(within_s)
        self.instances[name].state = "exited"
        return takeover

    async def freeze(self, name: str, within_s: float = 60.0) -> Takeover:
        """SIGSTOP `name`; returns once every account it watched is watched by a running instance too."""
        return await self._take_over(name, signal.SIGSTOP, within_s)

    async def _take_over(self, name: str, signum: int, within_s: float) -> Takeover:
        held = frozenset(self.held_by(name))
        assert held, f"{name} watches no account: {self.describe()}"
        sent = self.signal(name, signum)
        if signum == signal.SIGTERM:
            self.instances[name].state = "exited"  # it no longer counts as a watcher, whatever it still holds

        def moved() -> dict[str, Session] | None:
            self.resolve()
            firsts: dict[str, Session] = {}
            for account in held:
                fresh = [
                    s
                    for s in self.sim.sessions.of(self.by_id[account].api_key)
                    if s.opened_mono >= sent
                    and s.channels
                    and self._is_running(self._session_owner.get(s.id))
                ]
                if not fresh:
                    return None
                firsts[account] = fresh[0]
            return firsts

        firsts = await self.until(moved, within_s, f"{name}'s {len(held)} accounts to be watched again")
        seconds = max(s.opened_mono for s in firsts.values()) - sent
        owners = {account: self._session_owner[s.id] for account, s in firsts.items()}
        return Takeover(name, held, seconds, owners)

    def _is_running(self, name: str | None) -> bool:
        return name is not None and self.instances[name].running


async def _eventually_slow(condition: Any, within_s: float, what: str) -> Any:
    deadline = time.monotonic() + within_s
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within_s} s waiting for {what}")
        await asyncio.sleep(POLL_S)

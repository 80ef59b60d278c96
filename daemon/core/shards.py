"""Which shard an account belongs to, and which shards an instance should claim or give up (pure).

Accounts map to a fixed number of shards by a stable hash of their id, so every instance, whatever its Python,
puts an account in the same shard. Shares are fair: with n live instances nobody holds more than ceil(shards / n),
so a shard freed by a dying instance is picked up by the others and an instance that joins gets its share from
those holding more. Each instance prefers its own shards by rendezvous hashing, so instances racing for free
shards mostly ask for different ones, and a shard moves only when the share requires it.
"""

from __future__ import annotations

import zlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass


def shard_of(account_id: str, shards: int) -> int:
    """The shard of an account: CRC-32 of its id (stable across processes, unlike `hash`)."""
    return zlib.crc32(account_id.encode()) % shards


def fair_share(shards: int, live_instances: int) -> int:
    """The most shards one instance may hold while `live_instances` share them."""
    return -(-shards // max(1, live_instances))


def preference(instance: str, shard: int) -> int:
    """How much `instance` prefers `shard` (rendezvous hashing: each instance ranks the shards differently)."""
    return zlib.crc32(f"{instance}/{shard}".encode())


@dataclass(frozen=True, slots=True)
class ShardPlan:
    claim: tuple[int, ...]  # free shards to try to take, most preferred first
    release: tuple[int, ...]  # held shards to give up (above the fair share), least preferred first


def plan(
    me: str, shards: int, held: Collection[int], free: Collection[int], live: Collection[str]
) -> ShardPlan:
    """What `me` should do now. `held`: the shards it holds; `free`: shards nobody holds (never leased, released
    or expired); `live`: the instances with a recent heartbeat (`me` included or not: it counts anyway)."""
    share = fair_share(shards, len(set(live) | {me}))
    if len(held) > share:
        extra = sorted(held, key=lambda shard: preference(me, shard))[: len(held) - share]
        return ShardPlan((), tuple(extra))
    wanted = sorted(free, key=lambda shard: -preference(me, shard))[: share - len(held)]
    return ShardPlan(tuple(wanted), ())


def accounts_by_shard(account_ids: Collection[str], shards: int) -> Mapping[int, tuple[str, ...]]:
    """The configured accounts of each shard that has any."""
    grouped: dict[int, list[str]] = {}
    for account_id in sorted(account_ids):
        grouped.setdefault(shard_of(account_id, shards), []).append(account_id)
    return {shard: tuple(ids) for shard, ids in grouped.items()}

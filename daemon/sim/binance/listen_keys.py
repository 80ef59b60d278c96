"""User-data stream keys, with Binance's rules.

POST /fapi/v1/listenKey returns the account's active key (extending it) or a new one; PUT keeps it alive
for another 60 minutes; DELETE closes it. A key not kept alive for 60 minutes expires, after which the
stream says `listenKeyExpired` and PUT answers -1125.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass

VALIDITY_S = 60 * 60
_ALPHABET = string.ascii_letters + string.digits


@dataclass(slots=True)
class _Key:
    api_key: str
    expires_at: float


class ListenKeys:
    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._keys: dict[str, _Key] = {}
        self.on_revoke: list[Callable[[str], None]] = []  # called with the API key whose keys were closed

    def issue(self, api_key: str) -> str:
        current = self.extend(api_key)
        if current is not None:
            return current
        key = "".join(secrets.choice(_ALPHABET) for _ in range(64))
        self._keys[key] = _Key(api_key, self.clock() + VALIDITY_S)
        return key

    def extend(self, api_key: str) -> str | None:
        """Keep the account's key alive; None when it has no live key."""
        for key, entry in self._keys.items():
            if entry.api_key == api_key and entry.expires_at > self.clock():
                entry.expires_at = self.clock() + VALIDITY_S
                return key
        return None

    def revoke(self, api_key: str) -> list[str]:
        gone = [key for key, entry in self._keys.items() if entry.api_key == api_key]
        for key in gone:
            del self._keys[key]
        if gone:
            for listener in self.on_revoke:
                listener(api_key)
        return gone

    def account_for(self, key: str) -> str | None:
        """The API key a live listen key belongs to."""
        entry = self._keys.get(key)
        if entry is None or entry.expires_at <= self.clock():
            return None
        return entry.api_key

    def status(self, key: str) -> str:
        """ "live", "expired" (not kept alive in time) or "unknown" (never issued, or closed by DELETE)."""
        entry = self._keys.get(key)
        if entry is None:
            return "unknown"
        return "live" if entry.expires_at > self.clock() else "expired"

    def forget_all(self) -> None:
        """The server restarted: no key it issued is known any more (clients must ask for new ones)."""
        self._keys.clear()

    def expire_all(self) -> set[str]:
        """Expire every live key now; returns the API keys whose streams are affected."""
        affected = set()
        for entry in self._keys.values():
            if entry.expires_at > self.clock():
                entry.expires_at = 0.0
                affected.add(entry.api_key)
        return affected

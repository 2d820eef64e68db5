"""A short-lived cache of verified session tokens.

Verifying a token costs an RSA signature check and a database read (revocation, user
still there): more than the rest of a typical read request. A verified token is
remembered for `ttl` seconds. Logout goes through this process and evicts it at once, and
expiry is checked on every hit; what lags is deleting or demoting a user from the command
line (another process), and a logout on the other server of a leader and standby pair,
which take effect within `ttl`.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from simple_scheduler.auth.sessions import Principal

DEFAULT_TTL = 5.0


@dataclass
class TokenCache:
    ttl: float = DEFAULT_TTL
    max_entries: int = 10_000
    clock: Callable[[], float] = time.monotonic
    _entries: OrderedDict[str, tuple[float, Principal]] = field(default_factory=OrderedDict)

    def get(self, token: str) -> Principal | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        verified_at, principal = entry
        if self.clock() - verified_at > self.ttl or principal.exp <= time.time():
            del self._entries[token]
            return None
        return principal

    def put(self, token: str, principal: Principal) -> None:
        self._entries[token] = (self.clock(), principal)
        self._entries.move_to_end(token)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def evict_jti(self, jti: str) -> None:
        """Forget every cached token with this id (logout)."""
        for token in [t for t, (_, p) in self._entries.items() if p.jti == jti]:
            del self._entries[token]

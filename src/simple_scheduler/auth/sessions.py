"""Sessions as JWTs signed with the server's RSA key, logout by revocation, login throttle.

Tokens. `issue_token` signs RS256 claims `sub` (user name), `adm` (admin flag at login),
`iat`, `exp` and `jti` (uuid4 hex, what logout revokes). `verify_token` accepts RS256 only
and requires every one of those claims, so `alg: none`, HS256 "signed" with the public key,
a tampered or expired token, and a token of another key pair are all refused. It then
checks, in one indexed read, that the token was not revoked and that the user still
exists; the admin flag is taken from the database, not the token, so deleting or demoting
a user takes effect at once. A JWT cannot slide like ProActive's idle timeout, so the
lifetime (`token_lifetime_s`, default one day) must outlive long polling clients;
`renew` hands out a fresh token. Revoked ids are kept until the token would have expired.

Throttle. Failed logins are counted per user name and per client address. The first
`free_failures` failures of a key (3 per user, 10 per address, which may be a shared NAT
or proxy) cost nothing; after that the key is locked for 1 s, 2 s, 4 s, ... up to 30 s
from its last failure. An attempt is counted as a failure *before* its password is
checked (`begin`) and taken back on success: checked after, 64 concurrent guesses would
all pass the lock test while the first ones were still hashing. A login attempted while
locked is refused at once with
`LoginThrottled` (the REST layer answers 429 with `Retry-After`) without checking the
password: refusing instead of sleeping costs the server nothing and holds no connection,
and a guesser gains nothing by sending more. A success clears the user's counter; an
address's counter is forgotten 15 minutes after its last failure (a success does not
clear it, or a guesser with one valid account could reset it between guesses).
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import jwt

from simple_scheduler.auth import users
from simple_scheduler.auth.keys import KeyPair
from simple_scheduler.store.db import Store

ALGORITHM = "RS256"
REQUIRED_CLAIMS = ("sub", "iat", "exp", "jti")
#: Name of the ProActive session header, also used for the cookie.
SESSION_HEADER = "sessionid"
SESSION_COOKIE = "sessionid"


class AuthError(Exception):
    """Not authenticated: no, bad, expired or revoked token, or bad credentials (401)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class LoginThrottled(AuthError):
    """Too many failed logins for this user or address: retry after `retry_after` s (429)."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"too many failed logins; try again in {math.ceil(retry_after)} s")
        self.retry_after = retry_after


class Subject(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def is_admin(self) -> bool: ...


@dataclass(frozen=True)
class Principal:
    """Who a verified token speaks for."""

    name: str
    is_admin: bool
    jti: str
    exp: int  # epoch seconds, as in the token
    iat: int = 0


# -- tokens ---------------------------------------------------------------------------------


def issue_token(keys: KeyPair, user: Subject, lifetime: float, *, now: float | None = None) -> str:
    """A signed session token for `user`, valid for `lifetime` seconds."""
    issued = int(time.time() if now is None else now)
    claims = {
        "sub": user.name,
        "adm": bool(user.is_admin),
        "iat": issued,
        "exp": issued + max(1, int(lifetime)),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, keys.private_key, algorithm=ALGORITHM)


def decode_token(keys: KeyPair, token: str | None) -> Principal:
    """Check signature, algorithm, claims and expiry; no database access."""
    if not token:
        raise AuthError("not logged in: no session token")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            keys.public_key,
            algorithms=[ALGORITHM],
            options={"require": list(REQUIRED_CLAIMS)},
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("session expired; log in again") from None
    except jwt.InvalidTokenError as exc:
        raise AuthError(f"invalid session token ({exc})") from None
    sub, jti, exp, iat = claims["sub"], claims["jti"], claims["exp"], claims["iat"]
    if not isinstance(sub, str) or not sub or not isinstance(jti, str) or not jti:
        raise AuthError("invalid session token (bad sub or jti claim)")
    if not isinstance(exp, int) or not isinstance(iat, int):
        raise AuthError("invalid session token (exp and iat must be integers)")
    return Principal(sub, bool(claims.get("adm", False)), jti, exp, iat)


async def verify_token(store: Store, keys: KeyPair, token: str | None) -> Principal:
    """The principal of a valid, unrevoked token whose user still exists, else AuthError."""
    principal = decode_token(keys, token)
    row = await store.fetch_one(
        "SELECT u.is_admin AS is_admin, "
        "(SELECT COUNT(*) FROM revoked_tokens r WHERE r.jti = :jti) AS revoked "
        "FROM users u WHERE u.name = :name",
        {"jti": principal.jti, "name": principal.name},
    )
    if row is None:
        raise AuthError(f"session of unknown user {principal.name!r}; log in again")
    if row["revoked"]:
        raise AuthError("session was logged out; log in again")
    return Principal(
        principal.name, bool(row["is_admin"]), principal.jti, principal.exp, principal.iat
    )


async def revoke(store: Store, claims: Principal, *, now: float | None = None) -> None:
    """Log a token out; also drops revoked ids whose tokens have expired anyway."""
    now_ms = int((time.time() if now is None else now) * 1000)
    async with store.transaction() as tx:
        await tx.execute(
            "INSERT INTO revoked_tokens (jti, expires_at) VALUES (:jti, :expires_at) "
            "ON CONFLICT (jti) DO NOTHING",
            {"jti": claims.jti, "expires_at": claims.exp * 1000},
        )
        # The table only holds tokens revoked within one lifetime: this stays cheap.
        await tx.execute("DELETE FROM revoked_tokens WHERE expires_at < :now", {"now": now_ms})


async def renew(store: Store, keys: KeyPair, principal: Principal, lifetime: float) -> str:
    """A fresh token for the same user (the old one stays valid until its own expiry,
    so requests in flight with it do not fail)."""
    user = await users.get_user(store, principal.name)
    if user is None:
        raise AuthError(f"user {principal.name!r} no longer exists")
    return issue_token(keys, user, lifetime)


def extract_token(headers: Mapping[str, str], cookies: Mapping[str, str]) -> str | None:
    """The token from the `sessionid` header, `Authorization: Bearer`, or the cookie."""
    token = headers.get(SESSION_HEADER)
    if token:
        return token.strip()
    scheme, _, value = headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return cookies.get(SESSION_COOKIE) or None


# -- login ----------------------------------------------------------------------------------


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0


@dataclass
class LoginThrottle:
    """Exponential lockout after repeated failed logins (policy: module docstring)."""

    free_failures_per_user: int = 3
    free_failures_per_address: int = 10
    base_delay: float = 1.0
    max_delay: float = 30.0
    forget_after: float = 15 * 60.0
    max_entries: int = 100_000
    clock: Callable[[], float] = time.monotonic
    _users: dict[str, _Failures] = field(default_factory=dict, repr=False)
    _addresses: dict[str, _Failures] = field(default_factory=dict, repr=False)

    def wait_time(self, username: str, address: str | None) -> float:
        """Seconds before a login for this user from this address may be tried (0: now)."""
        now = self.clock()
        wait = self._wait(self._users.get(username), self.free_failures_per_user, now)
        if address is not None:
            wait = max(
                wait,
                self._wait(self._addresses.get(address), self.free_failures_per_address, now),
            )
        return wait

    def begin(self, username: str, address: str | None) -> None:
        """Admit one login attempt, counted as a failure until `record_success` says
        otherwise; `LoginThrottled` while the user or the address is locked.

        Test and count happen in one step (no await between them), so concurrent
        attempts cannot all pass the test before any of them is counted.
        """
        wait = self.wait_time(username, address)
        if wait > 0:
            raise LoginThrottled(wait)
        self.record_failure(username, address)

    def record_failure(self, username: str, address: str | None) -> None:
        now = self.clock()
        self._bump(self._users, username, now)
        if address is not None:
            self._bump(self._addresses, address, now)

    def record_success(self, username: str, address: str | None) -> None:
        """Clear the user's count; take back the address's count of this attempt only."""
        self._users.pop(username, None)
        entry = self._addresses.get(address) if address is not None else None
        if entry is not None and entry.count > 0:
            entry.count -= 1

    def _wait(self, entry: _Failures | None, free: int, now: float) -> float:
        if entry is None or now - entry.last >= self.forget_after:
            return 0.0
        # `free` failures cost nothing; the one that reaches it locks the key.
        excess = entry.count - free
        if excess < 0:
            return 0.0
        delay = min(self.max_delay, self.base_delay * 2.0 ** min(excess, 62))
        return max(0.0, entry.last + delay - now)

    def _bump(self, table: dict[str, _Failures], key: str, now: float) -> None:
        entry = table.get(key)
        if entry is None or now - entry.last >= self.forget_after:
            if len(table) >= self.max_entries:
                self._prune(table, now)
            entry = table[key] = _Failures()
        entry.count += 1
        entry.last = now

    def _prune(self, table: dict[str, _Failures], now: float) -> None:
        stale = [k for k, v in table.items() if now - v.last >= self.forget_after]
        for key in stale:
            del table[key]
        if len(table) >= self.max_entries:  # still full: drop the oldest half
            for key in sorted(table, key=lambda k: table[k].last)[: len(table) // 2]:
                del table[key]


async def login(
    store: Store,
    keys: KeyPair,
    throttle: LoginThrottle,
    username: str,
    password: str,
    *,
    address: str | None,
    lifetime: float,
    rounds: int = users.DEFAULT_ROUNDS,
) -> str:
    """Check credentials under the throttle and return a new session token.

    Raises `LoginThrottled` while locked out, `AuthError` for a bad name or password
    (one message for both, so it does not tell which names exist).
    """
    throttle.begin(username, address)  # counted as a failure until it succeeds
    user = await users.verify_password(store, username, password, rounds=rounds)
    if user is None:
        raise AuthError("bad user name or password")
    throttle.record_success(username, address)
    return issue_token(keys, user, lifetime)

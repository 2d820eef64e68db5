"""Which of the servers sharing one PostgreSQL store schedules: a session advisory lock.

Runs in the web process (server side). Each server opens one connection of its own,
outside the store's pool, and tries `pg_try_advisory_lock(LEADER_LOCK_KEY)` on it: the
server that holds it is the leader and schedules; the others are standbys, serve reads
and wait for it, in turns of `RETRY_INTERVAL_S` (`pg_advisory_lock` under a
`lock_timeout`: between turns they see who leads and notice a lost connection).
PostgreSQL itself releases a session lock when the session ends, however its holder
died, so a SIGKILLed leader frees it at once (on the socket's close), and PostgreSQL
grants it to a waiting standby in the same moment.

The lock is only worth something while it fences: a leader that may have lost it (its
connection closed, or a ping unanswered for `PING_TIMEOUT_S`) calls its `on_lost`, which
exits at once without writing anything (`server.py`): a new leader may already be
scheduling from the store. The lock's session sets short TCP keepalive and user timeouts,
so the database drops a vanished leader host's session after about 5 s of silence, later
than the leader fences itself (at most PING_INTERVAL_S + PING_TIMEOUT_S after its last
answered ping): the two are never both leaders unless a leader's event loop stalls for
seconds between a ping and a scheduling step.

The lock's session names its holder in `application_name` ("ssched <key fingerprint>
<url>"), so a standby finds the leader's URL and checks that both sign
sessions with the same key pair (`pg_locks` joined with `pg_stat_activity`), with no
table of our own to keep current.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from simple_scheduler.store.dbengine import (
    DATABASE_ERRORS,
    KEYS_LOCK_KEY,
    LEADER_LOCK_KEY,
    postgres_connect_kwargs,
)

log = logging.getLogger("simple_scheduler.leadership")

T = TypeVar("T")

#: A standby waits for the lock in turns this long (it is granted the moment it is free).
RETRY_INTERVAL_S = 1.0
#: A leader checks its lock's connection this often, and fences itself when an answer
#: takes longer than PING_TIMEOUT_S.
PING_INTERVAL_S = 1.0
PING_TIMEOUT_S = 2.0
#: How long a start waits for another server's turn under the keys lock.
KEYS_LOCK_WAIT_S = 120.0
#: Applied to the lock's session (ignored on a Unix socket): the database drops the
#: session of a leader whose host vanished after 2 s idle + 3 unanswered 1 s probes, or
#: 5 s of unacknowledged data, instead of TCP's default 2 hours or 15 minutes.
LOCK_SESSION_SETTINGS = {
    "tcp_keepalives_idle": "2",
    "tcp_keepalives_interval": "1",
    "tcp_keepalives_count": "3",
    "tcp_user_timeout": "5000",
}
#: What a lost or unanswering lock connection raises.
_LOCK_ERRORS: tuple[type[BaseException], ...] = (*DATABASE_ERRORS, TimeoutError, ConnectionError)
#: PostgreSQL keeps application_name to 63 bytes: a URL longer than what is left after
#: "ssched <fingerprint> " (47 bytes) is left out rather than cut.
_NAME_MAX = 63
_NAME_PREFIX = "ssched"

#: The holder of an advisory lock with a bigint key: `classid` its high half, `objid` its
#: low half, `objsubid` 1 (PostgreSQL's documented encoding).
_HOLDER = """
SELECT a.pid, a.application_name
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.classid = $1::bigint::oid AND l.objid = $2::bigint::oid
"""


def key_fingerprint(public_key: rsa.RSAPublicKey) -> str:
    """A short name of a public key (not a security check: it catches two servers
    configured with different key files, whose sessions would not cross)."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()[:8]


@dataclass(frozen=True)
class Holder:
    """The session holding the leader lock, as it names itself."""

    pid: int
    fingerprint: str | None
    url: str | None


def _parse_name(pid: int, name: str | None) -> Holder:
    parts = (name or "").split(" ", 2)
    if len(parts) < 2 or parts[0] != _NAME_PREFIX:
        return Holder(pid, None, None)  # not one of ours
    fingerprint = None if parts[1] == "-" else parts[1]
    return Holder(pid, fingerprint, parts[2] if len(parts) == 3 else None)


class Leadership:
    """This server's connection for the leader lock: try it, wait for it, guard it."""

    def __init__(self, database_url: str, *, url: str) -> None:
        self._connect_kwargs = postgres_connect_kwargs(database_url)
        self.url = url
        #: Of the key pair this server signs sessions with (`sign_as`).
        self.fingerprint = "-"
        self._name = self._name_for()
        self._conn: asyncpg.Connection | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._on_lost: Callable[[str], None] | None = None
        self.held = False

    async def connect(self) -> None:
        """(Re)open the lock's connection; a new session holds nothing."""
        await self._drop()
        self._conn = await asyncpg.connect(
            **self._connect_kwargs,
            server_settings={"application_name": self._name, **LOCK_SESSION_SETTINGS},
        )

    def _name_for(self) -> str:
        name = f"{_NAME_PREFIX} {self.fingerprint} {self.url}"
        if len(name.encode()) > _NAME_MAX:
            name = f"{_NAME_PREFIX} {self.fingerprint}"  # a cut URL would mislead
        return name

    async def sign_as(self, fingerprint: str) -> None:
        """Name this server's key pair in the session's name (read by standbys)."""
        self.fingerprint = fingerprint
        self._name = self._name_for()
        await self._query("SELECT set_config('application_name', $1, false)", self._name)

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()  # no goodbye: the session (and any lock it holds) ends now

    def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            raise ConnectionError("the leader lock's connection is closed")
        return self._conn

    async def _query(self, sql: str, *args: Any, timeout: float = 10.0) -> Any:
        return await self._connection().fetchval(sql, *args, timeout=timeout)

    async def try_lock(self) -> bool:
        """Take the leader lock if it is free; True when this session holds it."""
        self.held = bool(await self._query("SELECT pg_try_advisory_lock($1)", LEADER_LOCK_KEY))
        return self.held

    async def holder(self) -> Holder | None:
        """Who holds the leader lock now (None: nobody)."""
        row = await self._connection().fetchrow(
            _HOLDER, LEADER_LOCK_KEY >> 32, LEADER_LOCK_KEY & 0xFFFFFFFF, timeout=10
        )
        return None if row is None else _parse_name(int(row["pid"]), row["application_name"])

    async def _wait_a_turn(self) -> bool:
        """Wait for the lock up to RETRY_INTERVAL_S; True when this session holds it.
        (A session lock taken inside a transaction outlives it; the timeout does not.)"""
        conn = self._connection()
        try:
            async with conn.transaction():
                await conn.execute(f"SET LOCAL lock_timeout = {int(RETRY_INTERVAL_S * 1000)}")
                await conn.fetchval(
                    "SELECT pg_advisory_lock($1)", LEADER_LOCK_KEY, timeout=RETRY_INTERVAL_S + 10
                )
        except asyncpg.LockNotAvailableError:
            return False
        self.held = True
        return True

    async def wait_for_lock(self, seen: Callable[[Holder | None], None]) -> None:
        """Return once this session holds the lock; until then wait for it in turns,
        reconnecting when the database goes away, and tell `seen` who holds it."""
        while True:
            try:
                if self._conn is None or self._conn.is_closed():
                    await self.connect()
                if await self._wait_a_turn():
                    return
                seen(await self.holder())
                continue  # the turn was the pause
            except _LOCK_ERRORS as exc:
                # A try whose answer was lost may have taken the lock: a new session
                # drops it.
                log.warning("leader lock: %s; trying again", exc)
                await self._drop()
            await asyncio.sleep(RETRY_INTERVAL_S)

    async def locked(self, key: int, fn: Callable[[], T]) -> T:
        """`fn()` (in a thread) while holding the advisory lock `key` on this session:
        servers starting together take turns (the first start's key generation)."""
        # Another server's turn may be a key generation: seconds on a busy machine.
        await self._query("SELECT pg_advisory_lock($1)", key, timeout=KEYS_LOCK_WAIT_S)
        try:
            return await asyncio.to_thread(fn)
        finally:
            with contextlib.suppress(*_LOCK_ERRORS):
                await self._query("SELECT pg_advisory_unlock($1)", key)

    async def shared_keys(self, fn: Callable[[], T]) -> T:
        return await self.locked(KEYS_LOCK_KEY, fn)

    def guard(self, on_lost: Callable[[str], None]) -> None:
        """From now on (the lock is held), call `on_lost` once as soon as the lock may
        be gone: the connection closed, or a ping not answered in time."""
        conn = self._connection()
        self._on_lost = on_lost
        conn.add_termination_listener(self._closed)
        self._watcher = asyncio.create_task(self._watch(conn), name="leader-lock-watch")

    def _closed(self, conn: asyncpg.Connection) -> None:
        self._lost("its connection to the database closed")

    def _lost(self, why: str) -> None:
        on_lost, self._on_lost = self._on_lost, None
        if on_lost is not None:
            on_lost(why)

    async def _watch(self, conn: asyncpg.Connection) -> None:
        while True:
            await asyncio.sleep(PING_INTERVAL_S)
            try:
                await conn.fetchval("SELECT 1", timeout=PING_TIMEOUT_S)
            except _LOCK_ERRORS as exc:
                self._lost(f"its connection does not answer ({exc or type(exc).__name__})")
                return

    async def close(self) -> None:
        """Let go (a clean stop, after the last write): the lock goes with the session."""
        self._on_lost = None
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(*_LOCK_ERRORS):
                await conn.close(timeout=2)
            if not conn.is_closed():
                conn.terminate()
        self.held = False

"""What differs between the two database engines the store runs on, in one place.

SQLite (aiosqlite) is the embedded default; PostgreSQL (asyncpg) is the store for a
server that outgrows one file. The SQL itself is written once, portable (named `:name`
parameters, no AUTOINCREMENT, no RETURNING, BIGINT times, booleans as BOOLEAN); what
cannot be written once lives here: recognising the engine from the URL, per-connection
settings, the query path on asyncpg, error classes, lookups PostgreSQL refuses, and the
migration lock. Migration files that must differ are chosen in `migrate`.
"""

from __future__ import annotations

import asyncio
import functools
import re
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg

from simple_scheduler.config import Engine as Engine
from simple_scheduler.config import database_engine

ENGINES: tuple[Engine, ...] = ("sqlite", "postgresql")

#: SQLite keeps these per connection: applied to each one the store opens.
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=10000",
    "PRAGMA synchronous=NORMAL",
)

#: How long the store's checkpoint waits for a lock (a passive one takes none for long).
CHECKPOINT_BUSY_S = 1.0

#: The store holds exactly two connections (writer and reader) for its whole life; asyncpg's
#: pool would otherwise open ten server processes per store at start. These win over any
#: `?min_size=`/`?max_size=` in the URL: a bigger pool would never be used.
POSTGRES_POOL = {"min_size": 2, "max_size": 2}

#: pg_advisory_lock key serialising schema migrations between servers (any constant that
#: no other lock of ours uses; this is "simple-s" in ASCII).
MIGRATION_LOCK_KEY = 0x73696D706C652D73
#: Held for its whole life by the server that schedules (the leader); a standby waits for
#: it (`leadership.py`). "sched-ld".
LEADER_LOCK_KEY = 0x73636865642D6C64
#: Serialises the first start's key generation when servers share the key files. "sched-ky".
KEYS_LOCK_KEY = 0x73636865642D6B79

#: What a database failure raises, for callers that report it instead of crashing
#: (OSError covers a refused or lost connection).
DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    sqlite3.Error,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
)


def postgres_connect_kwargs(url: str) -> dict[str, Any]:
    """`asyncpg.connect` arguments for the database a URL names, read as the store's
    pool reads it (`databases`), for a connection of our own outside that pool."""
    from databases import DatabaseURL

    parsed = DatabaseURL(url)
    kwargs: dict[str, Any] = {
        "host": parsed.hostname,
        "port": parsed.port,
        "user": parsed.username,
        "password": parsed.password,
        "database": parsed.database,
    }
    ssl = parsed.options.get("ssl")
    if ssl is not None:
        kwargs["ssl"] = {"true": True, "false": False}.get(ssl.lower(), ssl.lower())
    return kwargs


class UnsupportedDatabase(ValueError):
    """The URL names a database engine or driver the store does not run on."""


def engine_of(url: str) -> Engine:
    """The engine a `databases` URL names; refuses engines and drivers we do not run."""
    try:
        return database_engine(url)
    except ValueError as exc:
        raise UnsupportedDatabase(str(exc)) from None


def connect_options(url: str) -> dict[str, Any]:
    """Keyword arguments for `databases.Database(url, ...)` on this engine."""
    return dict(POSTGRES_POOL) if engine_of(url) == "postgresql" else {}


#: Applied to every PostgreSQL connection. asyncpg prepares each statement once per
#: connection, and after five runs PostgreSQL may switch it to a generic plan chosen for
#: the table as it was then: a store that starts empty gets sequential scans for its
#: primary-key updates and keeps them as the tables grow (measured: 10,000 tasks ran at
#: 160/s instead of 600/s). Planning each execution for its values costs microseconds.
POSTGRES_SETTINGS = ("SET plan_cache_mode = force_custom_plan",)


def session_statements(engine: Engine) -> tuple[str, ...]:
    """Run on every new connection (SQLite's settings are per connection)."""
    return SQLITE_PRAGMAS if engine == "sqlite" else POSTGRES_SETTINGS


def is_unique_violation(exc: BaseException) -> bool:
    """True when an insert failed because the row exists (a concurrent writer won)."""
    return isinstance(exc, (sqlite3.IntegrityError, asyncpg.UniqueViolationError))


#: INTEGER columns (task indexes, pids, counters) are 32-bit on PostgreSQL.
INT32_MAX = 2**31 - 1


def matchable(text: str) -> bool:
    """False for text no stored row can hold, so a lookup by it finds nothing.

    PostgreSQL refuses a NUL character (and UTF-8 cannot carry a lone surrogate) in a
    query parameter with an error, where SQLite just finds no row: callers looking up
    user-supplied names ask this first, so both engines answer "not found".
    """
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_PARAM = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|::|:([A-Za-z_][A-Za-z0-9_]*)")


@functools.lru_cache(maxsize=256)
def positional(query: str) -> tuple[str, tuple[str, ...]]:
    """`:name` parameters as asyncpg's `$n`: the SQL and the names in `$n` order.

    Quoted literals and identifiers and `::` casts are left alone; a name used twice
    gets one number.
    """
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return match.group(0)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return _PARAM.sub(number, query), tuple(names)


class PostgresQueries:
    """`:name`-style SQL straight on an asyncpg connection, bypassing `databases`.

    `databases` compiles every query through SQLAlchemy, about 0.3 ms of CPU each, four
    times asyncpg's own cost for a primary-key read; here the `$n` form is cached per
    query text, and asyncpg caches the prepared statement. Rows are asyncpg's Records,
    read-only mappings by column name like the SQLite path's rows. One query at a time:
    asyncpg refuses overlapping operations on a connection (`databases` queued them).
    """

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._conn = connection
        self._lock = asyncio.Lock()

    def lost(self) -> bool:
        """True once the server side is gone (restarted, session terminated)."""
        try:
            return bool(self._conn.is_closed())
        except asyncpg.InterfaceError:  # the pool took back a connection it saw close
            return True

    @staticmethod
    def _args(query: str, values: Mapping[str, Any] | None) -> tuple[str, list[Any]]:
        sql, names = positional(query)
        return sql, [values[n] for n in names] if values else []

    async def execute(self, query: str, values: Mapping[str, Any] | None = None) -> Any:
        sql, args = self._args(query, values)
        async with self._lock:
            return await self._conn.execute(sql, *args)

    async def execute_many(self, query: str, values: Sequence[Mapping[str, Any]]) -> None:
        """A batch in one pipelined `executemany` (`databases` sends one query per row)."""
        sql, names = positional(query)
        rows = [tuple(row[n] for n in names) for row in values]
        async with self._lock:
            await self._conn.executemany(sql, rows)

    async def fetch_all(
        self, query: str, values: Mapping[str, Any] | None = None
    ) -> list[Mapping[str, Any]]:
        sql, args = self._args(query, values)
        async with self._lock:
            rows: list[Mapping[str, Any]] = await self._conn.fetch(sql, *args)
        return rows

    async def fetch_one(
        self, query: str, values: Mapping[str, Any] | None = None
    ) -> Mapping[str, Any] | None:
        sql, args = self._args(query, values)
        async with self._lock:
            row: Mapping[str, Any] | None = await self._conn.fetchrow(sql, *args)
        return row

    async def fetch_val(self, query: str, values: Mapping[str, Any] | None = None) -> Any:
        sql, args = self._args(query, values)
        async with self._lock:
            return await self._conn.fetchval(sql, *args)

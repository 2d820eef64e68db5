"""One SQLite file through `databases` + aiosqlite: a writer and a reader connection.

`databases` opens a fresh aiosqlite connection (and thread) for every asyncio task that
touches it; for a web server that is a thread per request. We hold two long-lived
connections instead: one writer, serialised by a lock so transactions from concurrent
tasks never interleave (SQLite has a single writer anyway), and one reader, which sees
only committed state thanks to WAL.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar, cast

from databases import Database
from databases.core import Connection

Row = Mapping[str, Any]
T = TypeVar("T")

#: See Store.open: how long a thread may hold the GIL while another waits for it.
SWITCH_INTERVAL_S = 0.0005

#: Applied to every connection: these are per-connection settings in SQLite.
PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=10000",
    "PRAGMA synchronous=NORMAL",
)


class Tx:
    """The writer connection inside a transaction."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def execute(self, query: str, values: Mapping[str, Any] | None = None) -> Any:
        return await self._conn.execute(query, dict(values) if values else None)

    async def execute_many(self, query: str, values: Sequence[Mapping[str, Any]]) -> None:
        """One round trip for the whole batch on SQLite (`databases` makes one per row)."""
        if not values:
            return
        raw = self._conn.raw_connection
        if hasattr(raw, "executemany"):  # aiosqlite: the DB-API call, same named-style SQL
            await raw.executemany(query, [dict(v) for v in values])
        else:
            await self._conn.execute_many(query, [dict(v) for v in values])

    async def execute_batches(
        self, batches: Sequence[tuple[str, Sequence[Mapping[str, Any]]]]
    ) -> None:
        """Several `execute_many`, in order; on SQLite all in one hop to the driver's
        thread. Each hop waits for a turn of a busy event loop: a submit's inserts paid
        several of them while holding the single writer."""
        work = [(query, [dict(v) for v in values]) for query, values in batches if values]
        raw = self._conn.raw_connection
        run = getattr(raw, "_execute", None)  # aiosqlite: runs a callable in its thread
        driver = getattr(raw, "_conn", None)
        if run is None or not isinstance(driver, sqlite3.Connection):
            for query, values in work:
                await self.execute_many(query, values)
            return

        def execute_all() -> None:
            for query, values in work:
                driver.executemany(query, values)

        await run(execute_all)

    async def execute_raw(self, statement: str) -> None:
        """Run one statement verbatim on the driver connection, in this transaction.

        For migrations: `databases` parses `:word` as a bind parameter even inside string
        literals, which DDL (defaults, CHECK constraints) may contain.
        """
        result = await self._conn.raw_connection.execute(statement)
        close = getattr(result, "close", None)  # aiosqlite returns a cursor, asyncpg a string
        if close is not None:
            await close()

    async def fetch_all(self, query: str, values: Mapping[str, Any] | None = None) -> list[Row]:
        rows = await self._conn.fetch_all(query, dict(values) if values else None)
        return [row._mapping for row in rows]

    async def fetch_one(self, query: str, values: Mapping[str, Any] | None = None) -> Row | None:
        row = await self._conn.fetch_one(query, dict(values) if values else None)
        return None if row is None else row._mapping

    async def fetch_val(self, query: str, values: Mapping[str, Any] | None = None) -> Any:
        return await self._conn.fetch_val(query, dict(values) if values else None)

    async def next_id(self, sequence: str) -> int:
        """Take the next value of a named sequence (portable: no AUTOINCREMENT/SERIAL)."""
        await self.execute(
            "UPDATE id_sequences SET next_value = next_value + 1 WHERE name = :name",
            {"name": sequence},
        )
        value = await self.fetch_val(
            "SELECT next_value FROM id_sequences WHERE name = :name", {"name": sequence}
        )
        return int(value) - 1


class Store:
    """The database handle the rest of the server is given."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._database = Database(url)
        self._writer: Connection | None = None
        self._reader: Connection | None = None
        self._write_lock = asyncio.Lock()

    @classmethod
    async def open(cls, url: str) -> Store:
        # The event loop shares the GIL with aiosqlite's thread. Every syscall the loop
        # makes (send, mkdir) releases the GIL, and with the default 5 ms switch interval
        # taking it back can wait that long while the thread holds it: measured, this
        # halved scheduler throughput. 0.5 ms keeps the loop responsive.
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
        store = cls(url)
        await store._database.connect()
        # Two connections owned by the store, not by the calling task's context.
        store._writer = Connection(store._database, store._database._backend)
        store._reader = Connection(store._database, store._database._backend)
        for conn in (store._writer, store._reader):
            await conn.__aenter__()
            for pragma in PRAGMAS:
                await conn.execute(pragma)
        return store

    async def close(self) -> None:
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.__aexit__(None, None, None)
        self._reader = self._writer = None
        await self._database.disconnect()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        """All writes that belong together go through one of these."""
        assert self._writer is not None, "store is closed"
        async with self._write_lock, self._writer.transaction():
            yield Tx(self._writer)

    def _driver(self) -> tuple[Callable[..., Awaitable[Any]], sqlite3.Connection] | None:
        """aiosqlite's "run this callable in your thread" and its sqlite3 connection, for
        the writer; None on any other driver."""
        assert self._writer is not None, "store is closed"
        raw = self._writer.raw_connection
        run = getattr(raw, "_execute", None)
        driver = getattr(raw, "_conn", None)
        if run is None or not isinstance(driver, sqlite3.Connection):
            return None
        return run, driver

    @property
    def one_hop(self) -> bool:
        """Whether `run_transaction` is available (SQLite through aiosqlite)."""
        return self._driver() is not None

    async def run_transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work` in one transaction of its own, in the driver's thread: BEGIN, its
        statements and COMMIT in one hop (through `databases` a transaction takes five or
        more, each waiting for a turn of a busy event loop). SQLite only (`one_hop`).

        Submits and status changes are committed as soon as nothing else is being
        committed, so the length of a commit is how late a change reaches readers."""
        found = self._driver()
        if found is None:
            raise RuntimeError("run_transaction needs SQLite through aiosqlite")
        run, driver = found

        def transaction() -> T:
            driver.execute("BEGIN")
            try:
                result = work(driver)
                driver.execute("COMMIT")
            except BaseException:
                if driver.in_transaction:
                    driver.execute("ROLLBACK")
                raise
            return result

        async with self._write_lock:
            return cast(T, await run(transaction))

    async def write_batches(
        self, batches: Sequence[tuple[str, Sequence[Mapping[str, Any]]]]
    ) -> None:
        """Several `execute_many` in one transaction of their own (one hop on SQLite)."""
        work = [(query, [dict(v) for v in values]) for query, values in batches if values]
        if not work:
            return
        if not self.one_hop:
            async with self.transaction() as tx:
                await tx.execute_batches(work)
            return

        def execute_all(driver: sqlite3.Connection) -> None:
            for query, values in work:
                driver.executemany(query, values)

        await self.run_transaction(execute_all)

    async def execute(self, query: str, values: Mapping[str, Any] | None = None) -> Any:
        async with self.transaction() as tx:
            return await tx.execute(query, values)

    async def fetch_all(self, query: str, values: Mapping[str, Any] | None = None) -> list[Row]:
        assert self._reader is not None, "store is closed"
        rows = await self._reader.fetch_all(query, dict(values) if values else None)
        return [row._mapping for row in rows]

    async def fetch_one(self, query: str, values: Mapping[str, Any] | None = None) -> Row | None:
        assert self._reader is not None, "store is closed"
        row = await self._reader.fetch_one(query, dict(values) if values else None)
        return None if row is None else row._mapping

    async def fetch_val(self, query: str, values: Mapping[str, Any] | None = None) -> Any:
        assert self._reader is not None, "store is closed"
        return await self._reader.fetch_val(query, dict(values) if values else None)

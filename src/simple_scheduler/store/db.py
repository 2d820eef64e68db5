"""The store through `databases`: a writer and a reader connection, SQLite or PostgreSQL.

`databases` opens a fresh aiosqlite connection (and thread) for every asyncio task that
touches it; for a web server that is a thread per request. We hold two long-lived
connections instead: one writer, serialised by a lock so transactions from concurrent
tasks never interleave (SQLite has a single writer anyway), and one reader, which sees
only committed state thanks to WAL. On SQLite two more connections live in the event
loop's thread (see `inloop`): a read-only one answers reads the caller marks
`small=True` (a request's key lookups cost microseconds instead of two thread switches),
and a writer runs small transactions (`run_transaction(..., small=True)`), which in the
driver's thread paid a GIL hand-over per statement against a busy loop. On
PostgreSQL (asyncpg) the two connections are taken from a pool of two, and queries skip
`databases` (see `dbengine.PostgresQueries`); what differs between the engines is in
`dbengine`. A PostgreSQL server can go away under a running store (restart, failover, a
terminated session): a connection found closed is replaced, reads are retried once on
the new one, and a write transaction fails (its caller retries, as the scheduler's
writer does) but the next one succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol, TypeVar, cast

from databases import Database
from databases.core import Connection

from simple_scheduler.config import sqlite_path
from simple_scheduler.store import dbengine
from simple_scheduler.store.dbengine import Engine
from simple_scheduler.store.inloop import LoopReader, LoopWriter, WriterBusy

Row = Mapping[str, Any]
T = TypeVar("T")

log = logging.getLogger("simple_scheduler.store")

#: See Store.open: how long a thread may hold the GIL while another waits for it.
SWITCH_INTERVAL_S = 0.0005

#: Applied to every connection: these are per-connection settings in SQLite.
PRAGMAS = dbengine.SQLITE_PRAGMAS


class Queries(Protocol):
    """`:name`-style SQL on one connection: `databases` for SQLite, asyncpg directly."""

    async def execute(self, query: str, values: Mapping[str, Any] | None = None) -> Any: ...

    async def execute_many(self, query: str, values: Sequence[Mapping[str, Any]]) -> None: ...

    async def fetch_all(self, query: str, values: Mapping[str, Any] | None = None) -> list[Row]: ...

    async def fetch_one(
        self, query: str, values: Mapping[str, Any] | None = None
    ) -> Row | None: ...

    async def fetch_val(self, query: str, values: Mapping[str, Any] | None = None) -> Any: ...

    def lost(self) -> bool:
        """True when the connection is gone for good and must be replaced."""
        ...


class DatabasesQueries:
    """Queries through `databases` (SQLite, on aiosqlite)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def execute(self, query: str, values: Mapping[str, Any] | None = None) -> Any:
        return await self._conn.execute(query, dict(values) if values else None)

    async def execute_many(self, query: str, values: Sequence[Mapping[str, Any]]) -> None:
        """One round trip for the whole batch (`databases` makes one per row)."""
        raw = self._conn.raw_connection
        if hasattr(raw, "executemany"):  # aiosqlite: the DB-API call, same named-style SQL
            await raw.executemany(query, [dict(v) for v in values])
        else:
            await self._conn.execute_many(query, [dict(v) for v in values])

    async def fetch_all(self, query: str, values: Mapping[str, Any] | None = None) -> list[Row]:
        rows = await self._conn.fetch_all(query, dict(values) if values else None)
        return [row._mapping for row in rows]

    async def fetch_one(self, query: str, values: Mapping[str, Any] | None = None) -> Row | None:
        row = await self._conn.fetch_one(query, dict(values) if values else None)
        return None if row is None else row._mapping

    async def fetch_val(self, query: str, values: Mapping[str, Any] | None = None) -> Any:
        return await self._conn.fetch_val(query, dict(values) if values else None)

    def lost(self) -> bool:
        return False  # a SQLite file does not go away under an open connection


def queries(conn: Connection, engine: Engine) -> Queries:
    """The query path for an open connection of `engine`."""
    if engine == "postgresql":
        return dbengine.PostgresQueries(conn.raw_connection)
    return DatabasesQueries(conn)


class Tx:
    """The writer connection inside a transaction."""

    def __init__(self, conn: Connection, q: Queries | None = None) -> None:
        self._conn = conn
        self._q = q if q is not None else DatabasesQueries(conn)

    async def execute(self, query: str, values: Mapping[str, Any] | None = None) -> Any:
        return await self._q.execute(query, values)

    async def execute_many(self, query: str, values: Sequence[Mapping[str, Any]]) -> None:
        """One round trip for the whole batch."""
        if values:
            await self._q.execute_many(query, values)

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
        return await self._q.fetch_all(query, values)

    async def fetch_one(self, query: str, values: Mapping[str, Any] | None = None) -> Row | None:
        return await self._q.fetch_one(query, values)

    async def fetch_val(self, query: str, values: Mapping[str, Any] | None = None) -> Any:
        return await self._q.fetch_val(query, values)

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
        self.engine: Engine = dbengine.engine_of(url)
        self._database = Database(url, **dbengine.connect_options(url))
        self._writer: Connection | None = None
        self._reader: Connection | None = None
        self._write_q: Queries | None = None
        self._read_q: Queries | None = None
        self._write_lock = asyncio.Lock()
        self._replace_lock = asyncio.Lock()
        self._fast: LoopReader | None = None
        #: False once the in-loop connections cannot exist (not SQLite, an in-memory
        #: database, or the store closed).
        self._fast_possible = self.engine == "sqlite" and sqlite_path(url) is not None
        self._fast_warned = False
        self._loop_writer: LoopWriter | None = None
        self._loop_writer_tried = False
        self._checkpointing: asyncio.Task[None] | None = None

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
        store._writer, store._write_q = await store._connect()
        store._reader, store._read_q = await store._connect()
        return store

    async def _connect(self) -> tuple[Connection, Queries]:
        """One of the store's two long-lived connections, set up for its engine."""
        conn = Connection(self._database, self._database._backend)
        await conn.__aenter__()
        for statement in dbengine.session_statements(self.engine):
            await conn.execute(statement)
        return conn, queries(conn, self.engine)

    async def _replace_if_lost(self, failed: Queries, *, writer: bool) -> bool:
        """After a query failed on `failed`: True when the caller may retry (the connection
        was found closed and replaced, now or by a concurrent caller), else False."""
        async with self._replace_lock:
            current = self._write_q if writer else self._read_q
            if current is not failed:
                return current is not None  # replaced meanwhile (or the store closed)
            if not failed.lost():
                return False  # a real error of the query: not ours to hide
            old = self._writer if writer else self._reader
            if old is not None:
                with contextlib.suppress(Exception):  # back to the pool, which drops it
                    await old.__aexit__(None, None, None)
            conn, q = await self._connect()
            if writer:
                self._writer, self._write_q = conn, q
            else:
                self._reader, self._read_q = conn, q
            log.warning(
                "database connection (%s) was lost; reconnected", "writer" if writer else "reader"
            )
            return True

    async def close(self) -> None:
        if self._checkpointing is not None:
            with contextlib.suppress(Exception):
                await self._checkpointing
        if self._fast is not None:
            self._fast.close()
            self._fast = None
        if self._loop_writer is not None:
            self._loop_writer.close()
            self._loop_writer = None
        self._fast_possible = False
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.__aexit__(None, None, None)
        self._reader = self._writer = None
        self._read_q = self._write_q = None
        await self._database.disconnect()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        """All writes that belong together go through one of these."""
        async with self._write_lock:
            writer, q = self._writer, self._write_q
            assert writer is not None and q is not None, "store is closed"
            try:
                async with writer.transaction():
                    yield Tx(writer, q)
            except Exception:
                # Not retried (the body may have had effects outside the database), but
                # the next transaction gets a working connection.
                with contextlib.suppress(*dbengine.DATABASE_ERRORS):
                    await self._replace_if_lost(q, writer=True)
                raise

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

    async def run_transaction(
        self, work: Callable[[sqlite3.Connection], T], *, small: bool = False
    ) -> T:
        """Run `work` in one transaction of its own, in the driver's thread: BEGIN, its
        statements and COMMIT in one hop (through `databases` a transaction takes five or
        more, each waiting for a turn of a busy event loop). SQLite only (`one_hop`).
        `small`: a transaction of a few milliseconds at most, run in the loop's thread
        when it can be (see `inloop`).

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
            if small and (writer := self._in_loop_writer()) is not None:
                try:
                    result = writer.run(work)
                except WriterBusy:
                    pass  # another process writes: wait for it in the thread
                else:
                    self._checkpoint_if_needed()
                    return result
            return cast(T, await run(transaction))

    def transaction_now(self, work: Callable[[sqlite3.Connection], T]) -> T | None:
        """`work` (small, never returning None) in a transaction of its own, committed
        right here in the loop's thread, or None when that cannot be done without waiting
        (a transaction in progress, another process writing, not SQLite): the caller
        then goes through `run_transaction`. Saves the caller the loop turns of handing
        the work to a task of its own."""
        if self._write_lock.locked() or (writer := self._in_loop_writer()) is None:
            return None
        try:
            result = writer.run(work)
        except WriterBusy:
            return None
        self._checkpoint_if_needed()
        return result

    def _in_loop_writer(self) -> LoopWriter | None:
        if self._loop_writer is None and self._fast_possible and not self._loop_writer_tried:
            self._loop_writer_tried = True
            self._loop_writer = LoopWriter.open(self.url)
        return self._loop_writer

    #: The in-loop writer never checkpoints; past this much WAL the store does, in a
    #: thread (SQLite's own automatic checkpoint is at 1,000 pages of 4 KiB).
    CHECKPOINT_WAL_BYTES = 4 * 1024 * 1024

    def _checkpoint_if_needed(self) -> None:
        path = sqlite_path(self.url)
        if path is None or self._checkpointing is not None:
            return
        try:
            size = os.stat(f"{path}-wal").st_size
        except OSError:
            return
        if size >= self.CHECKPOINT_WAL_BYTES:
            self._checkpointing = asyncio.ensure_future(self._checkpoint())

    async def _checkpoint(self) -> None:
        """A passive checkpoint, on a connection of its own in a worker thread: it
        neither waits for nor blocks the writers, and its fsyncs stay out of the loop.
        (Not on the reader: a statement it keeps open makes SQLite refuse.)"""
        path = sqlite_path(self.url)
        assert path is not None, "checkpoints are for a SQLite file"

        def checkpoint() -> None:
            conn = sqlite3.connect(path, timeout=dbengine.CHECKPOINT_BUSY_S)
            try:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            finally:
                conn.close()

        try:
            await asyncio.to_thread(checkpoint)
        except Exception:  # the next commit past the size tries again
            log.exception("checkpoint of the write-ahead log failed")
        finally:
            self._checkpointing = None

    #: A batch of up to this many rows is a small transaction (`run_transaction`).
    SMALL_BATCH_ROWS = 256

    async def write_batches(
        self, batches: Sequence[tuple[str, Sequence[Mapping[str, Any]]]]
    ) -> None:
        """Several `execute_many` in one transaction of their own (one hop on SQLite, none
        for a small batch)."""
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

        rows = sum(len(values) for _, values in work)
        await self.run_transaction(execute_all, small=rows <= self.SMALL_BATCH_ROWS)

    async def execute(self, query: str, values: Mapping[str, Any] | None = None) -> Any:
        async with self.transaction() as tx:
            return await tx.execute(query, values)

    async def _read(self, op: Callable[[Queries], Awaitable[T]]) -> T:
        """Run a read on the reader; once more on a new connection if it was lost."""
        q = self._read_q
        assert q is not None, "store is closed"
        try:
            return await op(q)
        except Exception:
            if not await self._replace_if_lost(q, writer=False):
                raise
        assert self._read_q is not None, "store is closed"
        return await op(self._read_q)

    def _fast_reader(self) -> LoopReader | None:
        """The in-loop reader, opened on first use (the file may not exist before the
        migrations ran: then the next small read tries again)."""
        if self._fast is None and self._fast_possible:
            self._fast = LoopReader.open(self.url, quiet=self._fast_warned)
            self._fast_warned = True
        return self._fast

    async def fetch_all(
        self, query: str, values: Mapping[str, Any] | None = None, *, small: bool = False
    ) -> list[Row]:
        """`small`: a bounded, indexed read, answered in the loop's thread when it can."""
        if small and (fast := self._fast_reader()) is not None:
            with contextlib.suppress(sqlite3.Error):  # busy or locked: the reader waits
                return fast.fetch_all(query, values)
        return await self._read(lambda q: q.fetch_all(query, values))

    async def fetch_one(
        self, query: str, values: Mapping[str, Any] | None = None, *, small: bool = False
    ) -> Row | None:
        if small and (fast := self._fast_reader()) is not None:
            with contextlib.suppress(sqlite3.Error):
                return fast.fetch_one(query, values)
        return await self._read(lambda q: q.fetch_one(query, values))

    async def fetch_val(
        self, query: str, values: Mapping[str, Any] | None = None, *, small: bool = False
    ) -> Any:
        if small and (fast := self._fast_reader()) is not None:
            with contextlib.suppress(sqlite3.Error):
                return fast.fetch_val(query, values)
        return await self._read(lambda q: q.fetch_val(query, values))

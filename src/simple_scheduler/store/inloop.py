"""Small reads and writes on SQLite in the event loop's thread, without a thread hop.

Every job endpoint starts by reading one job row. Through `databases` + aiosqlite that is
a query compiled by SQLAlchemy and a round trip to the connection's thread; under load the
event loop and that thread contend for the GIL and one read costs 0.3 to 1 ms of loop time,
and on a busy machine each hop also waits for the OS to run the other thread. The same
read on a plain read-only `sqlite3` connection in the loop's thread takes a few
microseconds: a WAL reader never waits for the writer, so it does not block the loop.

Writes have it worse. The sqlite3 module releases the GIL around every step of a
statement, and a thread that gives the GIL back to a busy event loop waits for it again
up to the switch interval: a transaction of a few dozen statements in the driver's thread
took 30 ms (p99 120) under the soak's load, for ~1 ms of work. A small transaction
(a group of small submits, a batch of status changes) is run here instead, in the loop's
thread, on a connection that never checkpoints (in WAL mode with synchronous=NORMAL a
commit then writes the WAL without any fsync); the store checkpoints from a thread.

Only small work goes here; the store decides (`small=True`). If the database is not
SQLite, or the connection cannot be opened, or the file is busy (another process writing,
a read failing), the store uses its own connections: an accelerator, never the only path.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from simple_scheduler.config import sqlite_path
from simple_scheduler.store.dbengine import SQLITE_PRAGMAS

Row = Mapping[str, Any]
T = TypeVar("T")

log = logging.getLogger("simple_scheduler.store")

#: A reader that finds the file busy gives up quickly and lets the async path retry.
BUSY_TIMEOUT_S = 0.05


class LoopReader:
    """A read-only sqlite3 connection used from the event loop's thread only."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._conn = connection

    @classmethod
    def open(cls, database_url: str, *, quiet: bool = False) -> LoopReader | None:
        path = sqlite_path(database_url)
        if path is None:
            return None
        try:
            conn = sqlite3.connect(
                f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None
            )
            conn.execute("PRAGMA query_only = ON")
        except sqlite3.Error as exc:
            if not quiet:
                log.warning("reads in the event loop disabled for now: %s", exc)
            return None
        conn.row_factory = sqlite3.Row
        return cls(conn)

    # Each statement runs to completion here (fetchmany/fetchall, cursor dropped): an
    # unfinished statement would keep its read snapshot and hide later commits.

    def fetch_one(self, query: str, values: Mapping[str, Any] | None = None) -> Row | None:
        """The row or None; raises sqlite3.Error when the caller should fall back."""
        rows = self._conn.execute(query, dict(values or {})).fetchmany(1)
        return dict(rows[0]) if rows else None

    def fetch_all(self, query: str, values: Mapping[str, Any] | None = None) -> list[Row]:
        return [dict(r) for r in self._conn.execute(query, dict(values or {})).fetchall()]

    def fetch_val(self, query: str, values: Mapping[str, Any] | None = None) -> Any:
        rows = self._conn.execute(query, dict(values or {})).fetchmany(1)
        return rows[0][0] if rows else None

    def close(self) -> None:
        self._conn.close()


class WriterBusy(Exception):
    """Another connection holds SQLite's write lock: nothing was done; use the thread."""


class LoopWriter:
    """A read-write sqlite3 connection for small transactions in the loop's thread.

    The caller serialises transactions (the store's write lock), so the only other
    writers are other processes (an admin command): `BEGIN IMMEDIATE` does not wait for
    them (busy timeout 0) but raises WriterBusy, and the caller goes through its thread.
    """

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._conn = connection

    @classmethod
    def open(cls, database_url: str) -> LoopWriter | None:
        path = sqlite_path(database_url)
        if path is None or not path.exists():
            return None
        try:
            conn = sqlite3.connect(path, timeout=0, isolation_level=None)
            for statement in SQLITE_PRAGMAS:
                conn.execute(statement)
            conn.execute("PRAGMA busy_timeout = 0")
            # Checkpoints copy the WAL into the database and fsync: never in the loop.
            conn.execute("PRAGMA wal_autocheckpoint = 0")
        except sqlite3.Error as exc:
            log.warning("writes in the event loop disabled: %s", exc)
            return None
        return cls(conn)

    def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work` in a transaction of its own, committed; WriterBusy if it cannot start."""
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise WriterBusy(str(exc)) from None
        try:
            result = work(self._conn)
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise
        return result

    def close(self) -> None:
        self._conn.close()

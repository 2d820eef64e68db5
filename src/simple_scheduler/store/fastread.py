"""Small reads on the request path, without a thread hop, when the store is SQLite.

Every job endpoint starts by reading one job row. Through `databases` + aiosqlite that is
a query compiled by SQLAlchemy and a round trip to the connection's thread; under load the
event loop and that thread contend for the GIL and one read costs 0.3 to 1 ms of loop time,
and on a busy machine each hop also waits for the OS to run the other thread. The same
read on a plain read-only `sqlite3` connection in the loop's thread takes a few
microseconds: a WAL reader never waits for the writer, so it does not block the loop.

Only small indexed reads go here (a row by key, a short page by key, a counter); the
store decides (`Store.fetch_*(..., small=True)`). If the database is not SQLite, or the
read fails (busy, locked, file not there yet), the store uses its reader connection:
this is an accelerator, never the only path.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping
from typing import Any

from simple_scheduler.config import sqlite_path

Row = Mapping[str, Any]

log = logging.getLogger("simple_scheduler.store")

#: A reader that finds the file busy gives up quickly and lets the async path retry.
BUSY_TIMEOUT_S = 0.05


class FastReader:
    """A read-only sqlite3 connection used from the event loop's thread only."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._conn = connection

    @classmethod
    def open(cls, database_url: str, *, quiet: bool = False) -> FastReader | None:
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
                log.warning("fast reads disabled for now: %s", exc)
            return None
        conn.row_factory = sqlite3.Row
        return cls(conn)

    # Each statement runs to completion here (fetchone/fetchall, cursor dropped): an
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

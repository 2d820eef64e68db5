"""Primary-key reads on the request path, without a thread hop, when the store is SQLite.

Every job endpoint starts by reading one job row. Through `databases` + aiosqlite that is
a query compiled by SQLAlchemy and a round trip to the connection's thread; under load the
event loop and that thread contend for the GIL and one read costs 0.3 to 1 ms of loop time.
The same read on a plain read-only `sqlite3` connection in the loop's thread takes a few
microseconds: a WAL reader never waits for the writer, so it does not block the loop.

Only tiny indexed reads go here. If the database is not SQLite, or the read fails (busy,
locked), the caller falls back to the async store: this is an accelerator, never the only
path.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from simple_scheduler.config import sqlite_path
from simple_scheduler.store.db import Row

log = logging.getLogger("simple_scheduler.store")

#: A reader that finds the file busy gives up quickly and lets the async path retry.
BUSY_TIMEOUT_S = 0.05


class FastReader:
    """A read-only sqlite3 connection used from the event loop's thread only."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._conn = connection

    @classmethod
    def open(cls, database_url: str) -> FastReader | None:
        path = sqlite_path(database_url)
        if path is None:
            return None
        try:
            conn = sqlite3.connect(
                f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None
            )
            conn.execute("PRAGMA query_only = ON")
        except sqlite3.Error as exc:
            log.warning("fast reads disabled: %s", exc)
            return None
        conn.row_factory = sqlite3.Row
        return cls(conn)

    def fetch_one(self, query: str, values: dict[str, Any]) -> Row | None:
        """The row or None; raises sqlite3.Error when the caller should fall back."""
        row = self._conn.execute(query, values).fetchone()
        return None if row is None else dict(row)

    def close(self) -> None:
        self._conn.close()

"""Reads of thousands of rows (a job's task statuses, its edges) without per-row objects.

Through `databases` + aiosqlite each row becomes a Record and a mapping: 10,000 statuses
took 180-270 ms of the web process per poll. On SQLite the same query on a plain,
read-only `sqlite3` connection in a worker thread returns tuples in a few milliseconds
and leaves the event loop free (WAL: a reader never waits for the writer). Any other
database goes through the store as before.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Mapping
from typing import Any

from simple_scheduler.config import sqlite_path
from simple_scheduler.store.db import Store

#: A reader that finds the database busy waits this long before giving up.
BUSY_TIMEOUT_S = 5.0


def _query(path: str, query: str, values: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    # A connection per call: opening one costs ~0.2 ms, and sqlite3 connections must not
    # wander between the pool's threads.
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S)
    try:
        return list(conn.execute(query, dict(values)).fetchall())
    finally:
        conn.close()


async def rows(store: Store, query: str, values: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """All rows of `query` as tuples, in column order."""
    path = sqlite_path(store.url)
    if path is not None:
        return await asyncio.to_thread(_query, str(path), query, values)
    return [tuple(row.values()) for row in await store.fetch_all(query, values)]

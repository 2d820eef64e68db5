"""Large answers, streamed page by page: no request may stall the event loop.

`GET /jobs/{id}` of a 100,000-task job is 77 MB of JSON; built in one piece it took ~4 s
of loop time (every other request waited) and the whole answer in memory, 8 at once
over 700 MB. Here an answer is a sequence of pages of `PAGE_ROWS` rows: each page is one
bounded read, then rendered to JSON bytes in a worker thread, then sent, and the next is
read only once the client has taken the previous one (the server's send waits for the
socket to drain). The loop's share per page is the read's small cost; memory holds a page.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, TypeVar

import orjson
from quart import Response

#: Rows per page: small enough that a page's loop time is negligible, large enough
#: that the per-page overhead (a query, a thread hop) is too.
PAGE_ROWS = 500
T = TypeVar("T")


def json_stream(chunks: AsyncIterator[bytes]) -> Response:
    """A JSON answer sent as it is produced (chunked)."""
    return Response(chunks, content_type="application/json")


def render_items(rows: Iterable[T], render: Callable[[T], Any]) -> bytes:
    """`render(row)` of each row as JSON, comma-separated (runs in a worker thread)."""
    return b",".join(orjson.dumps(render(row)) for row in rows)


async def rest_page(
    pages: AsyncIterator[list[T]], render: Callable[[T], Any], size: int
) -> AsyncIterator[bytes]:
    """RestPage<T> `{"list": [...], "size": size}`, its items rendered page by page."""
    yield b'{"list":['
    first = True
    async for rows in pages:
        if not rows:
            continue
        body = await asyncio.to_thread(render_items, rows, render)
        yield body if first else b"," + body
        first = False
    yield b'],"size":%d}' % size

"""Large answers, streamed page by page: no request may stall the event loop.

`GET /jobs/{id}` of a 100,000-task job is 77 MB of JSON; built in one piece it took ~4 s
of loop time (every other request waited) and the whole answer in memory, 8 at once
over 700 MB. Here an answer is a sequence of pages of `PAGE_ROWS` rows: each page is one
bounded read, then rendered to JSON bytes in a worker thread, then sent, and the next is
read only once the client has taken the previous one (the server's send waits for the
socket to drain). The loop's share per page is the read's small cost; memory holds a page.

Small answers (a listing of 20 jobs) take the short way: rendered in the loop (the hop to
a worker thread and back cost more than the rendering, and under load each hop waits for
the OS to run the other thread) and sent in one piece with a length.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, TypeVar

import orjson
from quart import Response
from quart.wrappers.response import DataBody

#: Rows per page: small enough that a page's loop time is negligible, large enough
#: that the per-page overhead (a query, a thread hop) is too.
PAGE_ROWS = 500
#: A page up to this many rows is rendered in the loop, not in a worker thread.
INLINE_ROWS = 100
#: Pieces of a streamed answer are sent together until they reach this many bytes: one
#: write (and one HTTP chunk) instead of a few tiny ones per page.
SEND_BYTES = 64 * 1024
T = TypeVar("T")


#: An answer whose body is in memory and at most this long is sent without Quart's
#: per-response timeout (`without_send_timeout`): the transport takes it at once, without
#: waiting for the client to read (asyncio's write buffer high-water mark is 64 KiB).
IN_PLACE_BYTES = 64 * 1024


async def without_send_timeout(response: Response) -> Response:
    """An after-request hook: a small answer in memory is sent without a timeout.

    Quart sends every answer under `asyncio.wait_for(..., RESPONSE_TIMEOUT)`, which on
    Python 3.11 runs the send as a task of its own: one more turn of the event loop
    before the first byte leaves, for every request (under the soak's load a turn was
    8 ms on average). Without a timeout the send runs in the handler's own task. A small
    body in memory cannot block on a slow reader; streamed and large answers keep the
    timeout (RESPONSE_TIMEOUT), which also bounds what a client that stops reading holds.
    """
    body = response.response
    if isinstance(body, DataBody) and len(body.data) <= IN_PLACE_BYTES:
        response.timeout = None
    return response


def json_stream(chunks: AsyncIterator[bytes]) -> Response:
    """A JSON answer sent as it is produced (chunked)."""
    return Response(_coalesced(chunks), content_type="application/json")


async def json_answer(chunks: AsyncIterator[bytes], *, small: bool) -> Response:
    """`small`: the answer is known to be bounded and small (a short page), so it is
    built here and sent with its length in one write; otherwise it is streamed."""
    if not small:
        return json_stream(chunks)
    body = b"".join([chunk async for chunk in chunks])
    return Response(body, content_type="application/json")


async def _coalesced(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The same bytes in pieces of at least SEND_BYTES (the last one excepted)."""
    pending: list[bytes] = []
    size = 0
    try:
        async for chunk in chunks:
            pending.append(chunk)
            size += len(chunk)
            if size >= SEND_BYTES:
                yield b"".join(pending)
                pending, size = [], 0
        if pending:
            yield b"".join(pending)
    finally:  # a client gone mid-answer: the source's reads stop now, not at collection
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()


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
        if len(rows) <= INLINE_ROWS:
            body = render_items(rows, render)
        else:
            body = await asyncio.to_thread(render_items, rows, render)
        yield body if first else b"," + body
        first = False
    yield b'],"size":%d}' % size

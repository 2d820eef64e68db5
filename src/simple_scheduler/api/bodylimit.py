"""The upload limit, counted over every byte a request body brings, whatever its framing.

Quart checks `MAX_CONTENT_LENGTH` against the `Content-Length` header up front, and
otherwise against the bytes *still buffered*: a `Transfer-Encoding: chunked` body read
by the multipart parser is drained chunk by chunk, so the buffer never reaches the limit
and a 1 GiB upload was read (and stored) in full before the workflow's own size check.
`LimitedBody` counts what arrives; past the limit it ignores the rest and makes every
reader raise `RequestEntityTooLarge` (413).
"""

from __future__ import annotations

from quart.wrappers.request import Body, Request
from werkzeug.exceptions import RequestEntityTooLarge


class LimitedBody(Body):
    """A request body that refuses to hold more than the limit, however it is sent."""

    def __init__(self, expected_content_length: int | None, max_content_length: int | None) -> None:
        super().__init__(expected_content_length, max_content_length)
        self._received = 0

    def append(self, data: bytes) -> None:
        if self._must_raise is None and self._max_content_length is not None:
            self._received += len(data)
            if self._received > self._max_content_length:
                # What is buffered (at most the limit) stays: a reader takes it, then
                # meets the error on its next read.
                self._must_raise = RequestEntityTooLarge()
                self.set_complete()
                return
        super().append(data)

    async def __anext__(self) -> bytes:
        # Quart's reader, woken by the end of the body, takes "complete and empty" for
        # the end of the data: here it may be the limit, which must not pass for an end.
        try:
            return await super().__anext__()
        except StopAsyncIteration:
            if self._must_raise is not None:
                raise self._must_raise from None
            raise


class LimitedRequest(Request):
    """Quart's request with a `LimitedBody`."""

    body_class = LimitedBody

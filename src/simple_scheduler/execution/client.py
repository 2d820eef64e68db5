"""The scheduler's side of the hypervisor socket: an asyncio `ExecutionBackend`.

Requests are pipelined (many in flight, matched to replies by request id), so thousands
of spawns do not wait on each other's round trips; the frames of one loop iteration
leave in one write. Events arrive on the same connection and queue up for `events()`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

from simple_scheduler.execution import protocol
from simple_scheduler.execution.backend import (
    BackendError,
    Event,
    TaskRecord,
    TaskSpec,
    Unreachable,
)

#: Keys per release request: a flushed batch of any size in few frames, far below the
#: protocol's payload limit.
RELEASE_BATCH = 4096


class _Protocol(asyncio.Protocol):
    def __init__(self, client: HypervisorClient) -> None:
        self.client = client
        self.decoder = protocol.FrameDecoder()
        self.can_write = asyncio.Event()
        self.can_write.set()

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.decoder.feed(data)
        except protocol.ProtocolError as exc:
            self.client._lost(Unreachable(f"hypervisor sent a bad frame: {exc}"))
            return
        for frame in frames:
            self.client._dispatch(frame)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client._lost(Unreachable(f"connection to the hypervisor lost: {exc or 'EOF'}"))

    def pause_writing(self) -> None:
        self.can_write.clear()

    def resume_writing(self) -> None:
        self.can_write.set()


class HypervisorClient:
    """An `ExecutionBackend` that talks to a `simple-scheduler hypervisor`."""

    #: An execution starts as soon as it is spawned: there is no queue to wait or hold in.
    queues = False

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._proto: _Protocol | None = None
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next_id = 1
        self._events: asyncio.Queue[Event | BackendError] = asyncio.Queue()
        self._error: BackendError | None = None
        self._out = bytearray()  #: frames queued in this loop iteration

    @classmethod
    async def connect(cls, socket_path: str | os.PathLike[str], *,
                      subscribe: bool = True) -> HypervisorClient:
        """Connect; with `subscribe`, events start queueing for `events()` at once."""
        self = cls()
        loop = asyncio.get_running_loop()
        try:
            transport, proto = await loop.create_unix_connection(
                lambda: _Protocol(self), os.fspath(socket_path)
            )
        except OSError as exc:
            raise Unreachable(f"cannot connect to the hypervisor at {socket_path}: {exc}") from exc
        self._transport, self._proto = transport, proto
        if subscribe:
            await self._request({"op": protocol.OP_SUBSCRIBE})
        return self

    # ------------------------------------------------------------ plumbing

    def _dispatch(self, frame: protocol.Frame) -> None:
        if frame.type == protocol.EVENT:
            try:
                self._events.put_nowait(protocol.event_from_dict(frame.body))
            except (protocol.ProtocolError, KeyError, TypeError, ValueError) as exc:
                self._lost(Unreachable(f"hypervisor sent a bad event: {exc}"))
            return
        fut = self._pending.pop(frame.request_id, None)
        if fut is None or fut.done():
            return
        if frame.type == protocol.REPLY:
            fut.set_result(frame.body)
        else:
            fut.set_exception(protocol.error_from_body(frame.body))

    def _lost(self, error: BackendError) -> None:
        if self._error is not None:
            return
        self._error = error
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(error)
        self._pending.clear()
        self._events.put_nowait(error)
        if self._transport is not None:
            self._transport.close()

    async def _request(self, body: dict[str, Any]) -> dict[str, Any]:
        if self._proto is not None and not self._proto.can_write.is_set():
            await self._proto.can_write.wait()
        return await self._request_nowait(body)

    def _request_nowait(self, body: dict[str, Any]) -> asyncio.Future[dict[str, Any]]:
        """Queue the request now; the future holds the reply (or the error)."""
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        if self._error is not None:
            fut.set_exception(self._error)
            return fut
        assert self._transport is not None
        rid = self._next_id
        self._next_id += 1
        self._pending[rid] = fut
        frame = protocol.encode(protocol.REQUEST, rid, body)
        if self._out:
            self._out += frame
        else:
            # The first frame of this loop iteration: the rest join it, one send for all.
            self._out = bytearray(frame)
            asyncio.get_running_loop().call_soon(self._send_out)
        return fut

    def _send_out(self) -> None:
        out, self._out = self._out, bytearray()
        if out and self._error is None and self._transport is not None:
            self._transport.write(out)

    # ------------------------------------------------------------ ExecutionBackend

    def spawn(self, spec: TaskSpec, start: bool = True) -> asyncio.Future[dict[str, Any]]:
        """A future, no coroutine: the scheduler keeps many spawns in flight.

        (Spawns skip the write-buffer wait: the worker limit already bounds them.)
        """
        body = protocol.spec_to_dict(spec)
        return self._request_nowait({"op": protocol.OP_SPAWN, "spec": body, "start": start})

    def start(self, key: str) -> asyncio.Future[dict[str, Any]]:
        """A future, like `spawn`; written at once with whatever is queued before it: a
        start is the whole of a held execution's way to exec (a chain's edge), and it
        should not wait behind the rest of this loop iteration's work."""
        fut = self._request_nowait({"op": protocol.OP_START, "key": key})
        self._send_out()
        return fut

    async def kill(self, key: str, grace: float = 5.0) -> bool:
        reply = await self._request({"op": protocol.OP_KILL, "key": key, "grace": grace})
        return bool(reply.get("alive"))

    async def list(self) -> list[TaskRecord]:
        reply = await self._request({"op": protocol.OP_LIST})
        return [protocol.record_from_dict(r) for r in reply.get("tasks", [])]

    async def release(self, *keys: str) -> None:
        for i in range(0, len(keys), RELEASE_BATCH):
            batch = list(keys[i : i + RELEASE_BATCH])
            await self._request({"op": protocol.OP_RELEASE, "keys": batch})

    async def hold(self, *keys: str) -> None:
        raise BackendError("the hypervisor has no queue to hold executions in")

    async def unhold(self, *keys: str) -> None:
        raise BackendError("the hypervisor has no queue to hold executions in")

    async def events(self) -> AsyncIterator[Event]:
        """Events in arrival order; raises BackendError when the connection is lost."""
        while True:
            item = await self._events.get()
            if isinstance(item, BackendError):
                self._events.put_nowait(item)  # every later reader sees it too
                raise item
            yield item

    async def detach(self) -> None:
        """Ask the hypervisor to stop once no client is connected and nothing runs."""
        await self._request({"op": protocol.OP_STOP_WHEN_IDLE})

    async def close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()
        self._lost(Unreachable("client closed"))
        await asyncio.sleep(0)

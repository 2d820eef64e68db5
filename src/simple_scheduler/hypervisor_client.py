"""The scheduler's side of the hypervisor socket: an asyncio `ExecutionBackend`.

Requests are pipelined (many in flight, matched to replies by request id), so thousands
of spawns do not wait on each other's round trips. Events arrive on the same connection
and queue up for `events()`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

from simple_scheduler import protocol
from simple_scheduler.backend import BackendError, Event, TaskRecord, TaskSpec, Unreachable


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

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._proto: _Protocol | None = None
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next_id = 1
        self._events: asyncio.Queue[Event | BackendError] = asyncio.Queue()
        self._error: BackendError | None = None

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
            await self._request({"op": "subscribe"})
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
            fut.set_exception(BackendError(str(frame.body.get("message", frame.body))))

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
        if self._error is not None:
            raise self._error
        assert self._transport is not None and self._proto is not None
        if not self._proto.can_write.is_set():
            await self._proto.can_write.wait()
        rid = self._next_id
        self._next_id += 1
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        self._transport.write(protocol.encode(protocol.REQUEST, rid, body))
        return await fut

    # ------------------------------------------------------------ ExecutionBackend

    async def spawn(self, spec: TaskSpec, start: bool = True) -> None:
        body = protocol.spec_to_dict(spec)
        await self._request({"op": "spawn", "spec": body, "start": start})

    async def start(self, key: str) -> None:
        await self._request({"op": "start", "key": key})

    async def kill(self, key: str, grace: float = 5.0) -> bool:
        reply = await self._request({"op": "kill", "key": key, "grace": grace})
        return bool(reply.get("alive"))

    async def list(self) -> list[TaskRecord]:
        reply = await self._request({"op": "list"})
        return [protocol.record_from_dict(r) for r in reply.get("tasks", [])]

    async def release(self, key: str) -> None:
        await self._request({"op": "release", "key": key})

    async def events(self) -> AsyncIterator[Event]:
        """Events in arrival order; raises BackendError when the connection is lost."""
        while True:
            item = await self._events.get()
            if isinstance(item, BackendError):
                self._events.put_nowait(item)  # every later reader sees it too
                raise item
            yield item

    async def close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()
        self._lost(Unreachable("client closed"))
        await asyncio.sleep(0)

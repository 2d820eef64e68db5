"""`GET /rest/scheduler/events`: the events WebSocket, as ProActive serves it.

Protocol (PROACTIVE.md 6.2), what ProActive's Java client (wasync, plain WebSocket) and
smart proxy expect:
- the session comes from the `sessionid` header, the `Authorization: Bearer` header, the
  session cookie or `?sessionid=` (a browser cannot set headers on a WebSocket); an
  invalid one is answered 401 before the upgrade;
- the client's first frame is its subscription, `{"myEventsOnly": bool, "events":
  [names]}` (empty or null: every event); the server answers the `NONE` frame;
- then one text frame per event, `{"action", "schedulerEvent", "data"}`, `data` shaped
  exactly as the REST answers (JobStateData, JobInfoData, TaskInfoData: views.py);
- after `events_heartbeat_s` without events, a text frame `X` (Atmosphere's heartbeat);
- the stream ends when the client closes, when the session is logged out or expires,
  when the server stops, and when the client falls `events_max_queued` events behind
  (the bus disconnects it rather than buffer without bound; see scheduler/events.py).

A user receives the events of their own jobs only; an admin who subscribes with
`myEventsOnly: false` receives everybody's. Each event is encoded once, however many
subscribers send it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import struct
import time
from collections.abc import Awaitable, Callable, Sequence

import orjson
from quart import Blueprint, Response, websocket

from simple_scheduler.api import views
from simple_scheduler.api.context import Services, services
from simple_scheduler.api.details import job_details
from simple_scheduler.api.errors import NOT_CONNECTED, error_response
from simple_scheduler.api.jobs import render_task_states
from simple_scheduler.api.streaming import PAGE_ROWS
from simple_scheduler.auth import sessions
from simple_scheduler.auth.sessions import AuthError, Principal
from simple_scheduler.scheduler.events import (
    JOB_SUBMITTED,
    TASK_STATE_UPDATED,
    SchedulerEvent,
    Subscription,
)

log = logging.getLogger("simple_scheduler.api.events")

blueprint = Blueprint("events", __name__)

#: The reply to a subscription (ProActive's EventNotification with action NONE).
NONE_FRAME = '{"action":"NONE","schedulerEvent":null,"data":null}'
HEARTBEAT_FRAME = "X"
#: Close codes: normal, going away (server stops), policy (logged out, too slow, bad
#: subscription).
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
#: Events encoded and written at once: bounds how long one subscriber holds the loop.
SLICE = 256
#: Writes a stream may make back to back, and the pace at which it earns another: a
#: quiet stream (a job's few events) is never held back, while under load each write
#: (a syscall that, on loopback, also does the reader's TCP work) carries more events
#: (1,200 writes/s to 10 followers of a busy job took ~10% of the loop).
WRITE_BURST = 4
WRITE_EVERY_S = 0.02
#: Bytes handed to Hypercorn's stream at once (see RawConnection.write).
WRITE_PIECE = 256 * 1024
#: Largest frame payload sent: a longer message goes out as a text frame and continuation
#: frames (RFC 6455 5.4). ProActive's Java client (AsyncHttpClient 1.9 under wasync)
#: refuses a frame over 10,240 bytes: it drops the connection (and its smart proxy
#: reconnects, missing events) at the JOB_SUBMITTED of any job of more than ~12 tasks,
#: while it reassembles fragments of any total size.
MAX_FRAME_PAYLOAD = 8192
#: How long a closing stream waits for its close frame to be taken.
CLOSE_WAIT_S = 2.0


async def _principal(svc: Services) -> Principal:
    wanted = (sessions.SESSION_HEADER, "Authorization")
    headers = {name: value for name in wanted if (value := websocket.headers.get(name))}
    token = sessions.extract_token(headers, websocket.cookies)
    token = token or websocket.args.get(sessions.SESSION_HEADER)
    if not token:
        raise AuthError(NOT_CONNECTED)
    principal = svc.tokens.get(token)
    if principal is None:
        principal = await sessions.verify_token(svc.store, svc.keys, token)
        svc.tokens.put(token, principal)
    return principal


def _subscription(text: str | bytes) -> tuple[bool, list[str] | None]:
    """(myEventsOnly, event names or None for all) from the first client frame."""
    try:
        body = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"the subscription is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ValueError("the subscription must be a JSON object")
    names = body.get("events")
    if names is not None and not (
        isinstance(names, list) and all(isinstance(n, str) for n in names)
    ):
        raise ValueError("events must be a list of event names")
    return body.get("myEventsOnly") is not False, names or None


async def encode(svc: Services, event: SchedulerEvent) -> bytes:
    """The event's JSON, made once and kept on the event for every other subscriber."""
    if event.cached is not None:
        return event.cached
    if event.action == TASK_STATE_UPDATED:  # small, and no await: made at once
        task = event.task
        assert task is not None
        job = {**event.job_static, **event.job}
        variables = views.task_variables(job, task.get("spec_variables"))
        data = views.task_info(task, job, variables)
        event.cached = orjson.dumps(
            {"action": event.action, "schedulerEvent": event.name, "data": data}
        )
        return event.cached
    # Job events read the job's details first: the subscribers that ask meanwhile wait
    # for this one encoding rather than start their own (shielded: one of them going
    # away must not cancel it for the others).
    if event.encoding is None:
        event.encoding = asyncio.ensure_future(_encode_job_event(svc, event))
    event.cached = await asyncio.shield(event.encoding)
    return event.cached


async def _encode_job_event(svc: Services, event: SchedulerEvent) -> bytes:
    job = {**event.job_static, **event.job}
    details = await job_details(svc, event.job_id)
    if event.action != JOB_SUBMITTED:
        data = views.job_info(job, details)
        return orjson.dumps({"action": event.action, "schedulerEvent": event.name, "data": data})
    # JobStateData with every task, as `GET /jobs/{id}` streams it: the tasks rendered a
    # page at a time in a worker thread (a 10,000-task job's 7.6 MB took the loop 250 ms).
    state = views.job_state(job, [], details)
    head = orjson.dumps({"action": event.action, "schedulerEvent": event.name, "data": state})
    # `data` is the last key and `tasks` the last of it: the head ends with `{}}}`.
    parts = [head[: -len(b"}}}")]]
    rows = event.tasks or ()
    for start in range(0, len(rows), PAGE_ROWS):
        page = list(rows[start : start + PAGE_ROWS])
        body = await asyncio.to_thread(render_task_states, page, job)
        parts.append(body if start == 0 else b"," + body)
    parts.append(b"}}}")
    return b"".join(parts)


async def _render_ahead(svc: Services, events: Sequence[SchedulerEvent]) -> None:
    """The bus's renderer: each event's frame, made before it is published."""
    for event in events:
        await frame_of(svc, event)


def text_frame(payload: bytes) -> bytes:
    """A text message as unmasked WebSocket frames (RFC 6455 5.2): one final frame, or
    for a payload over MAX_FRAME_PAYLOAD a non-final text frame, continuation frames and a
    final continuation frame, each cut between UTF-8 characters (a client that decodes
    each fragment on its own still reads the text right).

    Without RSV1 it is an uncompressed message, which stays valid when the connection
    negotiated permessage-deflate (RFC 7692 6.1)."""
    if len(payload) <= MAX_FRAME_PAYLOAD:
        return _frame(0x81, payload)
    view, parts, at, opcode = memoryview(payload), [], 0, 0x01
    while len(payload) - at > MAX_FRAME_PAYLOAD:
        cut = at + MAX_FRAME_PAYLOAD
        while payload[cut] & 0xC0 == 0x80:  # a UTF-8 continuation byte: not a boundary
            cut -= 1
        parts.append(_frame(opcode, view[at:cut]))
        at, opcode = cut, 0x00
    parts.append(_frame(0x80, view[at:]))
    return b"".join(parts)


def _frame(first_byte: int, payload: bytes | memoryview) -> bytes:
    """One frame: FIN and opcode in `first_byte`, then the length and the payload."""
    size = len(payload)
    if size < 126:
        head = bytes((first_byte, size))
    elif size < 65536:
        head = struct.pack(">BBH", first_byte, 126, size)
    else:
        head = struct.pack(">BBQ", first_byte, 127, size)
    return head + payload


async def frame_of(svc: Services, event: SchedulerEvent) -> bytes:
    if event.frame is None:
        event.frame = text_frame(await encode(svc, event))
    return event.frame


RawSend = Callable[[bytes], Awaitable[None]]


class RawConnection:
    """Hypercorn's stream of this WebSocket, reached below the ASGI interface."""

    def __init__(self, send: RawSend, abort: Callable[[], None] | None) -> None:
        self._send = send
        #: drops the TCP connection at once (a client that stopped reading never takes a
        #: close frame); None when it could not be found
        self.abort = abort
        #: a frame is partly written (a close frame cannot follow it)
        self.midframe = False

    async def write(self, data: bytes) -> None:
        """Write `data`, a large one a piece at a time, each taken before the next: given
        at once, a 7.6 MB JobStateData sat in asyncio's buffer, which moves what remains
        after every send (memmove of megabytes, per send, per subscriber)."""
        if len(data) <= WRITE_PIECE:
            await self._send(data)
            return
        view = memoryview(data)
        self.midframe = True
        for start in range(0, len(data), WRITE_PIECE):
            await self._send(bytes(view[start : start + WRITE_PIECE]))
        self.midframe = False


def raw_connection() -> RawConnection | None:
    """Write ready-made frames straight to Hypercorn's stream, when serving under it.

    Sending each event through Quart and Hypercorn costs a loop turn, a wsproto
    serialisation and a socket write per frame and per subscriber; the frames of a
    batch of events are the same bytes for every subscriber, so they are built once and
    written with one call (one write, one drain: the connection's backpressure still
    applies). Anything else (the test client, another server) gets None and the plain,
    per-message path.
    """
    try:
        asgi_send = websocket._get_current_object()._send.args[0]  # type: ignore[attr-defined]
        stream = asgi_send.__self__
        send, stream_id = stream.send, stream.stream_id
        from hypercorn.protocol.events import Data
    except (AttributeError, IndexError, ImportError):
        return None
    if type(stream).__name__ != "WSStream":
        return None

    async def send_data(data: bytes) -> None:
        await send(Data(stream_id=stream_id, data=data))

    try:  # WSStream -> H11Protocol -> TCPServer -> StreamWriter
        abort = send.__self__.send.__self__.writer.transport.abort
    except AttributeError:
        abort = None
    return RawConnection(send_data, abort)


@blueprint.websocket("/scheduler/events")
async def events() -> Response | None:
    """The events stream (see the module's docstring)."""
    svc = services()
    try:
        principal = await _principal(svc)
    except AuthError as exc:
        return error_response(401, exc.message)  # before the upgrade: a plain 401
    await websocket.accept()
    try:
        my_events_only, names = _subscription(await websocket.receive())
    except ValueError as exc:
        await websocket.close(CLOSE_POLICY, str(exc)[:120])
        return None
    # Users follow their own jobs whatever they ask; an admin may follow everybody's.
    owner = None if principal.is_admin and not my_events_only else principal.name
    bus = svc.scheduler.events
    if bus.renderer is None:
        bus.renderer = functools.partial(_render_ahead, svc)
    sub = bus.subscribe(
        owner, names, session=principal.jti, max_queued=svc.config.events_max_queued
    )
    agent = websocket.headers.get("User-Agent", "unknown client")[:80]
    log.info("events subscriber of %s connected (%s)", owner or "all jobs", agent)
    reader = asyncio.create_task(_discard_incoming())
    raw = raw_connection()
    sender = asyncio.create_task(_stream(svc, sub, principal, raw.write if raw else None))
    # Closing the subscription (too slow, logged out) frees a sender stuck in a write.
    sub.on_close = sender.cancel
    try:
        await websocket.send(NONE_FRAME)
        await asyncio.wait({sender})
        if sender.cancelled():
            reason = sub.closed_because or "closed"
            code = _close_code(reason)
        else:
            code, reason = sender.result()
    finally:
        sub.close("disconnected")
        for task in (sender, reader):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    if raw is not None and raw.midframe and raw.abort is not None:
        log.info("events subscriber of %s dropped mid-frame: it does not read", principal.name)
        raw.abort()
        return None
    try:
        await asyncio.wait_for(websocket.close(code, reason), CLOSE_WAIT_S)
    except (TimeoutError, Exception):
        # A client that stopped reading never takes the close frame: drop it.
        if raw is not None and raw.abort is not None:
            log.info("events subscriber of %s dropped: it does not read", principal.name)
            raw.abort()
    return None


async def _stream(
    svc: Services, sub: Subscription, principal: Principal, raw: RawSend | None
) -> tuple[int, str]:
    """Send events and heartbeats until the subscription ends; the close code and reason."""
    heartbeat = svc.config.events_heartbeat_s
    loop = asyncio.get_running_loop()
    credit, since = float(WRITE_BURST), loop.time()
    while True:
        left = principal.exp - time.time()
        if left <= 0:
            return CLOSE_POLICY, "session expired"
        ready = await sub.wait(min(heartbeat, left))
        if sub.closed:
            reason = sub.closed_because or "closed"
            return _close_code(reason), reason
        if not ready:
            await websocket.send(HEARTBEAT_FRAME)
            continue
        now = loop.time()
        credit, since = min(WRITE_BURST, credit + (now - since) / WRITE_EVERY_S), now
        if credit < 1:  # writing fast: let this write carry what arrives meanwhile
            await asyncio.sleep((1 - credit) * WRITE_EVERY_S)
            credit, since = 1.0, loop.time()
        credit -= 1
        batch = sub.take()
        if raw is None:
            for event in batch:
                await websocket.send((await encode(svc, event)).decode())
            continue
        # A large batch (a big job's submission) goes out in slices, the loop free between
        # them: encoding thousands of events at once would hold up scheduling.
        for start in range(0, len(batch), SLICE):
            await raw(b"".join([await frame_of(svc, e) for e in batch[start : start + SLICE]]))


def _close_code(reason: str) -> int:
    return CLOSE_GOING_AWAY if reason.startswith("server") else CLOSE_POLICY


async def _discard_incoming() -> None:
    """Read and drop what the client sends after subscribing (ProActive's sends nothing),
    so nothing piles up in the receive queue."""
    while True:
        await websocket.receive()

"""The framed protocol between the hypervisor and its clients (Unix stream socket).

Frame layout (network byte order), struct format `>2sBBIQ`, 16 bytes of header:

    offset  size  field
    0       2     magic        b"SS"
    2       1     version      1
    3       1     type         REQUEST=1, REPLY=2, ERROR=3, EVENT=4
    4       4     length       payload bytes that follow, at most MAX_PAYLOAD (4 MiB)
    8       8     request id   set by the client; echoed in REPLY/ERROR; 0 on EVENT
    16      ...   payload      a UTF-8 JSON object

Requests carry {"op": ..., ...} (the OP_* constants, used by both ends): spawn {spec,
start}, start {key}, kill {key, grace}, list, release {key} or {keys: [...]}, subscribe,
ping. A REPLY carries the result object, an ERROR carries {"type": ..., "message": ...}
where type names a `BackendError` class of ERROR_TYPES (`error_body` / `error_from_body`:
the client raises the class the hypervisor meant). Events ({"kind": "started" |
"exited" | "lost", ...}; an "exited" with "pid" stands for a start nobody announced) go
to connections that sent {"op": "subscribe"}. A malformed frame (bad magic, version,
size, or payload) is a ProtocolError and closes that connection only.

`FrameDecoder` is sans-IO: the hypervisor's selector loop and the asyncio client both
feed it bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import orjson

from simple_scheduler.execution.backend import (
    BackendError,
    Event,
    Exited,
    ExitStatus,
    Lost,
    Started,
    TaskRecord,
    TaskSpec,
    UnknownExecution,
    Unreachable,
)

MAGIC = b"SS"
VERSION = 1
HEADER = struct.Struct(">2sBBIQ")
HEADER_SIZE = HEADER.size
MAX_PAYLOAD = 4 * 1024 * 1024

REQUEST = 1
REPLY = 2
ERROR = 3
EVENT = 4
_TYPES = frozenset((REQUEST, REPLY, ERROR, EVENT))

OP_SPAWN = "spawn"
OP_START = "start"
OP_KILL = "kill"
OP_LIST = "list"
OP_RELEASE = "release"
OP_SUBSCRIBE = "subscribe"
OP_PING = "ping"
#: The server stops cleanly: stop once no client is connected and nothing runs.
OP_STOP_WHEN_IDLE = "stop_when_idle"
OPS = frozenset(
    (OP_SPAWN, OP_START, OP_KILL, OP_LIST, OP_RELEASE, OP_SUBSCRIBE, OP_PING, OP_STOP_WHEN_IDLE)
)


class BadRequest(BackendError):
    """The request was malformed (a missing field, a wrong type): a bug of the client."""


class SystemFailure(BackendError):
    """An operating-system call failed while the backend carried out the request."""


#: The `type` of an ERROR frame -> the exception the client raises. Anything else the
#: peer sends reads as BackendError.
ERROR_TYPES: dict[str, type[BackendError]] = {
    cls.__name__: cls
    for cls in (BackendError, Unreachable, UnknownExecution, BadRequest, SystemFailure)
}


class ProtocolError(Exception):
    """The peer sent something that is not a valid frame: drop the connection."""


@dataclass(frozen=True, slots=True)
class Frame:
    type: int
    request_id: int
    body: dict[str, Any]


# orjson: several times faster than the json module both ways, and payloads go back and
# forth for every task.
_dumps = orjson.dumps
_loads = orjson.loads


def encode(msg_type: int, request_id: int, body: dict[str, Any]) -> bytes:
    try:
        payload = _dumps(body)
    except TypeError as exc:  # orjson.JSONEncodeError: not serializable
        raise ProtocolError(f"payload is not serializable: {exc}") from None
    if len(payload) > MAX_PAYLOAD:
        raise ProtocolError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    return HEADER.pack(MAGIC, VERSION, msg_type, len(payload), request_id) + payload


class FrameDecoder:
    """Feed bytes, get complete frames; raises ProtocolError on the first bad frame."""

    __slots__ = ("_buf", "max_payload")

    def __init__(self, max_payload: int = MAX_PAYLOAD) -> None:
        self._buf = bytearray()
        self.max_payload = max_payload

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame (non-zero at EOF means a truncated frame)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        buf = self._buf
        buf += data
        frames: list[Frame] = []
        pos = 0
        end = len(buf)
        while end - pos >= HEADER_SIZE:
            magic, version, msg_type, length, request_id = HEADER.unpack_from(buf, pos)
            if magic != MAGIC:
                raise ProtocolError(f"bad magic {bytes(magic)!r}")
            if version != VERSION:
                raise ProtocolError(f"unsupported protocol version {version}")
            if msg_type not in _TYPES:
                raise ProtocolError(f"unknown message type {msg_type}")
            if length > self.max_payload:
                raise ProtocolError(f"payload of {length} bytes exceeds {self.max_payload}")
            stop = pos + HEADER_SIZE + length
            if stop > end:
                break
            try:
                body = _loads(memoryview(buf)[pos + HEADER_SIZE : stop])
            except ValueError as exc:  # orjson.JSONDecodeError, bad UTF-8 included
                raise ProtocolError(f"payload is not JSON: {exc}") from None
            if not isinstance(body, dict):
                raise ProtocolError("payload is not a JSON object")
            frames.append(Frame(msg_type, request_id, body))
            pos = stop
        if pos:
            del buf[:pos]
        return frames


# ---------------------------------------------------------------- errors


def error_body(exc: Exception) -> dict[str, Any]:
    """The ERROR payload for an exception raised while handling a request."""
    if isinstance(exc, BackendError):
        name = type(exc).__name__ if type(exc).__name__ in ERROR_TYPES else "BackendError"
        return {"type": name, "message": str(exc)}
    if isinstance(exc, OSError):
        return {"type": SystemFailure.__name__, "message": str(exc)}
    message = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
    return {"type": BadRequest.__name__, "message": message}


def error_from_body(body: dict[str, Any]) -> BackendError:
    """The exception an ERROR payload stands for."""
    cls = ERROR_TYPES.get(str(body.get("type")), BackendError)
    return cls(str(body.get("message", body)))


# ---------------------------------------------------------------- payload shapes


def spec_to_dict(spec: TaskSpec) -> dict[str, Any]:
    """Spelled out: dataclasses.asdict deep-copies argv and env, which was a quarter of
    the scheduler's CPU per task when measured."""
    return {
        "key": spec.key,
        "job_id": spec.job_id,
        "task_name": spec.task_name,
        "argv": spec.argv,
        "env": spec.env,
        "task_dir": spec.task_dir,
        "cwd": spec.cwd,
        "resources": spec.resources,
        "user": spec.user,
        "kill_grace": spec.kill_grace,
    }


def status_to_dict(status: ExitStatus) -> dict[str, Any]:
    return {
        "exit_code": status.exit_code,
        "signal": status.signal,
        "core_dumped": status.core_dumped,
        "start_time": status.start_time,
        "end_time": status.end_time,
        "error": status.error,
        "leftovers": status.leftovers,
    }


def status_from_dict(data: dict[str, Any]) -> ExitStatus:
    """Of a frame or of a status file (written by C code): types are checked, not trusted."""

    def opt_int(name: str) -> int | None:
        value = data.get(name)
        return int(value) if isinstance(value, int | float) else None

    def seconds(name: str) -> float:
        value = data.get(name)
        return float(value) if isinstance(value, int | float) else 0.0

    error = data.get("error")
    return ExitStatus(
        exit_code=opt_int("exit_code"),
        signal=opt_int("signal"),
        core_dumped=bool(data.get("core_dumped", False)),
        start_time=seconds("start_time"),
        end_time=seconds("end_time"),
        error=str(error) if error is not None else None,
        leftovers=opt_int("leftovers") or 0,
    )


def event_to_dict(event: Event) -> dict[str, Any]:
    if isinstance(event, Started):
        return {
            "kind": "started",
            "key": event.key,
            "pid": event.pid,
            "pid_start_time": event.pid_start_time,
            "time": event.time,
        }
    if isinstance(event, Exited):
        out: dict[str, Any] = {
            "kind": "exited",
            "key": event.key,
            "status": status_to_dict(event.status),
        }
        if event.pid is not None:
            out["pid"], out["pid_start_time"] = event.pid, event.pid_start_time
        return out
    return {"kind": "lost", "key": event.key, "reason": event.reason}


def event_from_dict(data: dict[str, Any]) -> Event:
    kind = data.get("kind")
    if kind == "started":
        return Started(data["key"], int(data["pid"]), int(data["pid_start_time"]), data["time"])
    if kind == "exited":
        pid, ticks = data.get("pid"), data.get("pid_start_time")
        return Exited(
            data["key"],
            status_from_dict(data["status"]),
            int(pid) if pid is not None else None,
            int(ticks) if ticks is not None else None,
        )
    if kind == "lost":
        return Lost(data["key"], str(data["reason"]))
    raise ProtocolError(f"unknown event kind {kind!r}")


def record_to_dict(record: TaskRecord) -> dict[str, Any]:
    return {
        "key": record.key,
        "state": record.state,
        "pid": record.pid,
        "pid_start_time": record.pid_start_time,
        "status": status_to_dict(record.status) if record.status else None,
        "reason": record.reason,
        "extra": record.extra,
        "started": record.started,
    }


def record_from_dict(data: dict[str, Any]) -> TaskRecord:
    status = data.get("status")
    return TaskRecord(
        key=data["key"],
        state=data["state"],
        pid=data.get("pid"),
        pid_start_time=data.get("pid_start_time"),
        status=status_from_dict(status) if status else None,
        reason=data.get("reason"),
        extra=dict(data.get("extra") or {}),
        started=bool(data.get("started", True)),
    )

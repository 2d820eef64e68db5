"""The binary wire formats between the hypervisor and the C code, defined once for Python.

The C half is `ext/wire.h`; `tests/test_wire.py` holds the two to the same sizes and
field offsets (`_core.wire_layout()` exports the C side), so a field added on one side
only fails a test instead of garbling every report. Formats use "=" (native byte order,
no implicit padding): the C structs are laid out so that natural alignment adds none,
and the test checks exactly that.

- fork-server request (`FsRequest`): header, then `ngroups` u32 gids, then the strings
  (key, title, task_dir, cwd, report_path, semaphore_path, exec_path, cgroup_prefix,
  argv, env), each NUL-terminated; `size` counts everything after the header;
- fork-server reply (`FsReply`): SPAWNED (pid = monitor), FAILED (value = errno) or ENDED
  (a monitor was reaped: value = its wait status);
- monitor report (`Report`): STARTED / HEARTBEAT / EXITED, one datagram each.

This module does not import `_core`: the constants are the wire's, not the extension's.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

FS_REQUEST_MAGIC = 0x53534651
FS_REPLY_MAGIC = 0x53534652
REPORT_MAGIC = 0x53535250
REPORT_VERSION = 2

#: FsRequest.flags
FS_FLAG_SEMAPHORE = 1  #: wait on the named semaphore before exec (spawn with start=False)
FS_FLAG_NO_FSYNC = 2  #: do not fsync the status file
FS_FLAG_IDENTITY = 4  #: switch to the request's groups, gid and uid before exec

#: FsReply.kind
FS_SPAWNED = 1
FS_FAILED = 2
FS_ENDED = 3

#: Report.kind
REPORT_STARTED = 1
REPORT_EXITED = 2
REPORT_HEARTBEAT = 3

#: Exit codes of the C processes.
EXIT_FS_SETUP = 70  #: fork server: its signalfd or buffers could not be made
EXIT_FS_POLL = 71  #: fork server: poll failed
EXIT_NO_EXEC = 127  #: task child: a step before exec failed (the report says which)

#: Strings of a request before argv.
FS_NFIXED = 8
#: Most supplementary groups a request carries.
FS_MAX_GROUPS = 1024
#: Largest request, and most strings in one (the fork server's static buffers).
FS_REQUEST_MAX = 196608
FS_MAX_STRINGS = 16384


def _layout(fields: tuple[tuple[str, str], ...]) -> tuple[struct.Struct, dict[str, int]]:
    """The struct of (name, format code) pairs, and each field's offset."""
    offsets: dict[str, int] = {}
    fmt = "="
    for name, code in fields:
        offsets[name] = struct.calcsize(fmt)
        fmt += code
    return struct.Struct(fmt), offsets


class FsRequest(NamedTuple):
    """ss_fs_request_t: the header of a fork-server request."""

    magic: int
    flags: int
    request_id: int
    nfixed: int
    argc: int
    envc: int
    size: int
    uid: int
    gid: int
    ngroups: int
    grace_ms: int


class FsReply(NamedTuple):
    """ss_fs_reply_t."""

    magic: int
    kind: int
    request_id: int
    pid: int
    value: int
    start_ticks: int


class Report(NamedTuple):
    """ss_report_t: one monitor report."""

    magic: int
    version: int
    kind: int
    monitor_pid: int
    pid: int
    pid_start_ticks: int
    exit_code: int  #: -1: none
    signal: int  #: 0: none
    core_dumped: int
    has_error: int
    leftovers: int  #: processes still running when the task's main process ended
    reserved: int
    start_ms: int
    end_ms: int
    key: bytes  #: NUL-padded
    error: bytes  #: NUL-padded, meaningful when has_error


FS_REQUEST, FS_REQUEST_OFFSETS = _layout(
    tuple(zip(FsRequest._fields, "IIQIIIIIIII", strict=True))
)
FS_REPLY, FS_REPLY_OFFSETS = _layout(tuple(zip(FsReply._fields, "IIQiiQ", strict=True)))
REPORT, REPORT_OFFSETS = _layout(
    tuple(
        zip(
            Report._fields,
            ("I", "H", "H", "i", "i", "Q", "i", "i", "i", "i", "i", "i", "q", "q", "104s", "160s"),
            strict=True,
        )
    )
)

#: struct name in wire.h -> (its Struct, its field offsets): what the agreement test checks.
LAYOUTS: dict[str, tuple[struct.Struct, dict[str, int]]] = {
    "ss_fs_request_t": (FS_REQUEST, FS_REQUEST_OFFSETS),
    "ss_fs_reply_t": (FS_REPLY, FS_REPLY_OFFSETS),
    "ss_report_t": (REPORT, REPORT_OFFSETS),
}


def pack_request(
    *,
    flags: int,
    request_id: int,
    argc: int,
    envc: int,
    strings: bytes,
    uid: int = 0,
    gid: int = 0,
    groups: tuple[int, ...] = (),
    grace_ms: int = 0,
) -> bytes:
    """A whole request: header, gids, then `strings` (already NUL-joined)."""
    gids = struct.pack(f"={len(groups)}I", *groups)
    header = FS_REQUEST.pack(
        FS_REQUEST_MAGIC,
        flags,
        request_id,
        FS_NFIXED,
        argc,
        envc,
        len(gids) + len(strings),
        uid,
        gid,
        len(groups),
        grace_ms,
    )
    return header + gids + strings


def unpack_reply(data: bytes) -> FsReply | None:
    """A reply, or None when it is not one (wrong size or magic)."""
    if len(data) != FS_REPLY.size:
        return None
    reply = FsReply._make(FS_REPLY.unpack(data))
    return reply if reply.magic == FS_REPLY_MAGIC else None


def unpack_report(data: bytes) -> Report | None:
    """A report, or None when it is not one of this version (wrong size, magic, version)."""
    if len(data) != REPORT.size:
        return None
    report = Report._make(REPORT.unpack(data))
    if report.magic != REPORT_MAGIC or report.version != REPORT_VERSION:
        return None
    return report


def c_string(raw: bytes) -> str:
    """A NUL-padded char array as text."""
    return raw.split(b"\0", 1)[0].decode(errors="replace")

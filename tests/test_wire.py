"""The wire formats: one Python definition (`hypervisor.wire`), one C (`ext/wire.h`).

Each side is free to change; this test makes a change on one side only fail here, not
garble reports at run time.
"""

from __future__ import annotations

import struct

import pytest

from simple_scheduler.execution import protocol
from simple_scheduler.execution.backend import BackendError, UnknownExecution, Unreachable
from simple_scheduler.hypervisor import _core, wire


@pytest.mark.parametrize("name", sorted(wire.LAYOUTS))
def test_sizes_and_offsets_agree_with_the_c_structs(name: str) -> None:
    c_size, c_fields = _core.wire_layout()[name]
    struct_, offsets = wire.LAYOUTS[name]
    assert struct_.size == c_size
    assert offsets == {field: offset for field, (offset, _) in c_fields.items()}
    # Each field's width too: a u16 read as a u32 would shift nothing yet garble values.
    codes = struct_.format.lstrip("=")
    widths = [struct.calcsize("=" + code) for code in _split(codes)]
    assert widths == [size for _, size in sorted(c_fields.values())]


def _split(codes: str) -> list[str]:
    out: list[str] = []
    digits = ""
    for ch in codes:
        if ch.isdigit():
            digits += ch
        else:
            out.append(digits + ch)
            digits = ""
    return out


def test_constants_agree_with_the_extension() -> None:
    names = [
        "FS_REQUEST_MAGIC", "FS_REPLY_MAGIC", "REPORT_MAGIC", "REPORT_VERSION",
        "FS_FLAG_SEMAPHORE", "FS_FLAG_NO_FSYNC", "FS_FLAG_IDENTITY", "FS_SPAWNED",
        "FS_FAILED", "FS_ENDED", "REPORT_STARTED", "REPORT_EXITED", "REPORT_HEARTBEAT",
        "EXIT_FS_SETUP", "EXIT_FS_POLL", "EXIT_NO_EXEC", "FS_NFIXED", "FS_MAX_GROUPS",
        "FS_REQUEST_MAX", "FS_MAX_STRINGS",
    ]
    assert {n: getattr(wire, n) for n in names} == {n: getattr(_core, n) for n in names}


def test_request_round_trip() -> None:
    message = wire.pack_request(
        flags=wire.FS_FLAG_IDENTITY, request_id=9, argc=1, envc=0, strings=b"a\0",
        uid=1001, gid=1002, groups=(1002, 27), grace_ms=250,
    )
    header = wire.FsRequest._make(wire.FS_REQUEST.unpack_from(message))
    assert header.ngroups == 2 and header.size == 8 + 2
    assert (header.uid, header.gid, header.grace_ms) == (1001, 1002, 250)
    assert message[wire.FS_REQUEST.size :] == b"\xea\x03\x00\x00\x1b\x00\x00\x00a\0"


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (BackendError("no"), BackendError),
        (UnknownExecution("gone"), UnknownExecution),
        (Unreachable("away"), Unreachable),
        (OSError(28, "No space left on device"), protocol.SystemFailure),
        (KeyError("spec"), protocol.BadRequest),
        (TypeError("bad"), protocol.BadRequest),
    ],
)
def test_the_client_raises_the_error_type_the_hypervisor_sent(
    raised: Exception, expected: type[BackendError]
) -> None:
    frame = protocol.encode(protocol.ERROR, 3, protocol.error_body(raised))
    [decoded] = protocol.FrameDecoder().feed(frame)
    error = protocol.error_from_body(decoded.body)
    assert type(error) is expected
    assert str(raised).strip("'") in str(error)

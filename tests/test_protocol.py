"""The frame codec: round trips, and every malformed frame is a ProtocolError."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simple_scheduler.execution import protocol
from simple_scheduler.execution.backend import Exited, ExitStatus, Lost, Started, TaskRecord

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=10,
)


@given(
    body=st.dictionaries(st.text(), json_values, max_size=6),
    request_id=st.integers(0, 2**64 - 1),
    split=st.integers(0, 200),
)
def test_round_trip_in_any_chunks(body: dict[str, object], request_id: int, split: int) -> None:
    data = protocol.encode(protocol.REQUEST, request_id, body) * 2
    decoder = protocol.FrameDecoder()
    frames = decoder.feed(data[:split]) + decoder.feed(data[split:])
    assert [(f.type, f.request_id, f.body) for f in frames] == [
        (protocol.REQUEST, request_id, body)
    ] * 2
    assert decoder.pending == 0


def test_header_layout() -> None:
    frame = protocol.encode(protocol.EVENT, 7, {"a": 1})
    assert frame[:16] == struct.pack(">2sBBIQ", b"SS", 1, 4, 7, 7)
    assert frame[16:] == b'{"a":1}'


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"XY" + bytes(14), "magic"),
        (struct.pack(">2sBBIQ", b"SS", 2, 1, 0, 0), "version"),
        (struct.pack(">2sBBIQ", b"SS", 1, 9, 0, 0), "type"),
        (struct.pack(">2sBBIQ", b"SS", 1, 1, protocol.MAX_PAYLOAD + 1, 0), "exceeds"),
        (struct.pack(">2sBBIQ", b"SS", 1, 1, 3, 0) + b"\xff\xfe{", "JSON"),
        (struct.pack(">2sBBIQ", b"SS", 1, 1, 2, 0) + b"[]", "object"),
    ],
)
def test_malformed_frames(data: bytes, message: str) -> None:
    with pytest.raises(protocol.ProtocolError, match=message):
        protocol.FrameDecoder().feed(data)


def test_truncated_frame_is_pending() -> None:
    decoder = protocol.FrameDecoder()
    assert decoder.feed(protocol.encode(protocol.REPLY, 1, {})[:-1]) == []
    assert decoder.pending > 0


def test_payload_shapes_round_trip() -> None:
    status = ExitStatus(None, 9, True, 1.5, 2.25, None)
    events = (Started("k", 12, 345, 1.0), Exited("k", status), Exited("k", status, 12, 345))
    for event in (*events, Lost("k", "gone")):
        assert protocol.event_from_dict(protocol.event_to_dict(event)) == event
    record = TaskRecord("k", "exited", 1, 2, status, None, {"monitor_pid": "3"})
    assert protocol.record_from_dict(protocol.record_to_dict(record)) == record


def test_spec_payload_carries_every_task_spec_field() -> None:
    """The spawn payload is spelled out by hand for speed: it must not drop a field."""
    import dataclasses

    from simple_scheduler.execution.backend import TaskSpec
    from simple_scheduler.execution.protocol import spec_to_dict

    spec = TaskSpec("1.0.1", 1, "A", ["echo", "x"], {"K": "v"}, "/tmp/d", cwd="/tmp")
    payload = spec_to_dict(spec)
    assert set(payload) == {f.name for f in dataclasses.fields(TaskSpec)}
    assert payload == dataclasses.asdict(spec)

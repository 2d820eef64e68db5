"""Failure branches: OSError subclasses that name the call, and a fake OS seam."""

from __future__ import annotations

import errno
import os
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

from simple_scheduler.execution import protocol
from simple_scheduler.hypervisor import loop, posix, wire


def test_errors_name_the_call() -> None:
    name = f"/ss-test-{uuid.uuid4().hex[:12]}"
    with pytest.raises(posix.CallError) as missing:
        posix.sem_post(name)
    assert missing.value.call == "sem_open" and missing.value.errno == errno.ENOENT
    assert isinstance(missing.value, OSError)
    posix.sem_create(name, 0)
    try:
        with pytest.raises(posix.CallError) as exists:
            posix.sem_create(name, 0)
        assert exists.value.errno == errno.EEXIST and "sem_open" in str(exists.value)
    finally:
        posix.sem_unlink(name)
    with pytest.raises(posix.CallError) as unlinked:
        posix.sem_unlink(name, missing_ok=False)
    assert unlinked.value.call == "sem_unlink"


def test_kill_and_proc_failures() -> None:
    dead = 2**22 + 17  # above pid_max's default: never a live pid
    with pytest.raises(posix.CallError) as exc:
        posix.kill(dead, 0)
    assert exc.value.call == "kill" and exc.value.errno == errno.ESRCH
    assert not posix.killpg(dead, 15)
    with pytest.raises(posix.CallError) as stat:
        posix.proc_start_ticks(dead)
    assert stat.value.errno == errno.ENOENT
    assert not posix.process_alive(dead, 1)


def test_killpg_other_errors_propagate(monkeypatch: pytest.MonkeyPatch) -> None:
    def killpg_(pgid: int, sig: int) -> None:
        raise posix.CallError(errno.EPERM, os.strerror(errno.EPERM), "killpg")

    monkeypatch.setattr(posix, "syscalls", SimpleNamespace(killpg_=killpg_))
    with pytest.raises(posix.CallError, match="killpg"):
        posix.killpg(1234, 15)


class FakeForkServer:
    """Stands in for the fork server: every spawn fails with EAGAIN."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.wants_write = False

    def send(self, message: bytes) -> None:
        self.sent.append(message)

    def receive(self) -> list[wire.FsReply]:
        out = []
        for message in self.sent:
            rid = wire.FsRequest._make(wire.FS_REQUEST.unpack_from(message)).request_id
            out.append(wire.FsReply(wire.FS_REPLY_MAGIC, wire.FS_FAILED, rid, 0, errno.EAGAIN, 0))
        self.sent.clear()
        return out


def test_spawn_fails_when_fork_fails(short_tmp: Path) -> None:
    hv = loop.Hypervisor(os.path.join(short_tmp, "h.sock"), os.path.join(short_tmp, "pd"))
    real = hv.fork_server
    try:
        hv.fork_server = FakeForkServer()  # type: ignore[assignment]
        conn = loop._Conn(real.sock)  # any socket: only its buffer is used
        spec = {"key": "k", "job_id": 1, "task_name": "t", "argv": ["true"], "env": {},
                "task_dir": os.path.join(short_tmp, "pd", "k")}
        hv._handle(conn, 5, {"op": "spawn", "spec": spec, "start": False})
        assert "k" in hv.execs
        hv._fork_server_readable()
        [frame] = protocol.FrameDecoder().feed(bytes(conn.out))
        assert frame.type == protocol.ERROR and frame.request_id == 5
        assert "Resource temporarily unavailable" in frame.body["message"]
        assert hv.execs == {}
        assert not os.path.exists(posix.semaphore_path(posix.semaphore_name(hv.namespace, "k")))
        conn.out.clear()
        hv._handle(conn, 6, {"op": "spawn", "spec": {**spec, "key": "../x"}})
        [frame] = protocol.FrameDecoder().feed(bytes(conn.out))
        assert frame.type == protocol.ERROR and "invalid key" in frame.body["message"]
    finally:
        hv.fork_server = real
        hv.close()

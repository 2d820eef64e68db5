"""The Cython core through its facade, and the fork server driven directly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from simple_scheduler.hypervisor import _core, forkserver, posix, wire


def run_python(code: str) -> str:
    """Process-wide changes (titles) are tested in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True)
    return out.stdout.decode()


def test_set_proc_title_shows_in_cmdline_and_comm() -> None:
    code = (
        "from simple_scheduler.hypervisor import posix\n"
        "posix.set_proc_title('simple-scheduler: test title', 'ss-test')\n"
        "print(repr(open('/proc/self/cmdline', 'rb').read()))\n"
        "print(open('/proc/self/comm').read().strip())\n"
    )
    cmdline, comm = run_python(code).splitlines()
    assert cmdline == repr(b"simple-scheduler: test title\0")
    assert comm == "ss-test"


def test_proc_start_ticks_matches_proc() -> None:
    with open("/proc/self/stat") as f:
        expected = int(f.read().rsplit(")", 1)[1].split()[19])
    assert posix.proc_start_ticks(os.getpid()) == expected
    assert posix.process_alive(os.getpid(), expected)
    assert not posix.process_alive(os.getpid(), expected + 1)
    area = _core.proc_arg_area()
    assert area[0] < area[1] <= area[2] < area[3]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["sh", "-c", "exit 0"], (0, None, False)),
        (["sh", "-c", "exit 255"], (255, None, False)),
        (["sh", "-c", "kill -KILL $$"], (None, 9, False)),
    ],
)
def test_waitpid_decodes_status(argv: list[str], expected: tuple[object, ...]) -> None:
    proc = subprocess.Popen(argv)
    pid, status = posix.waitpid(proc.pid)
    proc.returncode = 0  # reaped here
    assert pid == proc.pid
    assert tuple(posix.decode_wait_status(status)) == expected


def test_named_semaphore_lifecycle() -> None:
    name = f"/ss-test-{uuid.uuid4().hex[:12]}"
    posix.sem_create(name, 0)
    try:
        assert os.path.exists(posix.semaphore_path(name))
        assert posix.sem_value(name) == 0
        assert not posix.sem_wait(name, block=False)
        posix.sem_post(name)
        assert posix.sem_value(name) == 1
        assert posix.sem_wait(name)
        assert posix.sem_value(name) == 0
    finally:
        posix.sem_unlink(name)
    assert not os.path.exists(posix.semaphore_path(name))


def test_killpg_signals_the_group() -> None:
    proc = subprocess.Popen(["sleep", "600"], start_new_session=True)
    try:
        assert posix.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=10) == -signal.SIGTERM
        assert not posix.killpg(proc.pid, signal.SIGTERM)  # gone: ESRCH
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_fork_server_direct(short_tmp: Path) -> None:
    """Drive the fork server over its socketpair, read the monitor's datagrams."""
    root = str(short_tmp)
    report = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    report.bind(os.path.join(root, "r"))
    report.settimeout(10)
    server = forkserver.ForkServer()
    try:
        strings = ["key-1", "simple-scheduler: monitor job 1 task t", root, "",
                   os.path.join(root, "r"), "", "/usr/bin:/bin", "", "sh", "-c", "exit 3"]
        data = b"\0".join(s.encode() for s in strings) + b"\0"
        server.sock.setblocking(True)
        server.sock.settimeout(10)
        server.sock.send(wire.pack_request(flags=0, request_id=77, argc=3, envc=0, strings=data))
        reply = wire.unpack_reply(server.sock.recv(64))
        assert reply is not None
        assert (reply.kind, reply.request_id) == (wire.FS_SPAWNED, 77)
        pid = reply.pid
        assert pid > 0 and reply.start_ticks > 0
        kinds = []
        while wire.REPORT_EXITED not in kinds:
            raw = report.recv(1024)
            assert len(raw) == wire.REPORT.size
            r = wire.unpack_report(raw)
            assert r is not None
            kinds.append(r.kind)
            assert r.monitor_pid == pid and wire.c_string(r.key) == "key-1"
            last = r
        assert last.exit_code == 3
        ended = wire.unpack_reply(server.sock.recv(64))
        assert ended is not None
        assert ended.kind == wire.FS_ENDED and ended.pid == pid and ended.value == 0
        # A malformed request is refused, not fatal.
        server.sock.send(b"garbage-request-of-some-length-xxxxxxxxxx")
        failed = wire.unpack_reply(server.sock.recv(64))
        assert failed is not None and failed.kind == wire.FS_FAILED
    finally:
        server.close()  # EOF: the fork server exits
        report.close()
        assert server.process.returncode == 0

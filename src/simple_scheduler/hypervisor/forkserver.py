"""The hypervisor's end of the C-level fork server, and the structs it exchanges.

The fork server is a fresh `python -I -S` that enters `_core.fork_server_main` at once and
never runs Python again, so every monitor is forked from a tiny process (see `_core`).
Requests and replies are SEQPACKET messages whose layouts `wire` defines.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections import deque

from simple_scheduler.hypervisor import _core, wire

_FORK_SERVER_CODE = (
    "import sys; sys.path[:0] = [sys.argv[1]]; "
    "from simple_scheduler.hypervisor._core import fork_server_main; "
    "fork_server_main(int(sys.argv[2]))"
)


def single_threaded() -> bool:
    """Forking is only safe with exactly one thread (no lock can be held by another)."""
    return threading.active_count() == 1 and len(os.listdir("/proc/self/task")) == 1


class ForkServer:
    """The hypervisor's end of the fork server's SOCK_SEQPACKET socketpair."""

    def __init__(self) -> None:
        if not single_threaded():
            raise RuntimeError("the hypervisor must be single-threaded before it forks")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # The directory that holds the `simple_scheduler` package: <it>/simple_scheduler/
        # hypervisor/_core.so.
        package_parent = os.path.abspath(os.path.join(os.path.dirname(_core.__file__), "../.."))
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-I",
                "-S",
                "-c",
                _FORK_SERVER_CODE,
                package_parent,
                str(theirs.fileno()),
            ],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={},
            close_fds=True,
        )
        theirs.close()
        ours.setblocking(False)
        self.sock = ours
        self._queue: deque[bytes] = deque()

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, message: bytes) -> None:
        """Queue one request; `flush` sends, once per loop iteration, after the journal."""
        self._queue.append(message)

    @property
    def wants_write(self) -> bool:
        return bool(self._queue)

    def flush(self) -> None:
        """Send what is queued while the socket takes it (never blocks)."""
        queue = self._queue
        while queue:
            try:
                self.sock.send(queue[0])
            except BlockingIOError:
                return
            queue.popleft()

    def receive(self) -> list[wire.FsReply] | None:
        """The replies that have arrived; None at EOF."""
        out: list[wire.FsReply] = []
        while True:
            try:
                data = self.sock.recv(64)
            except BlockingIOError:
                return out
            except ConnectionError:
                return None
            if not data:
                return out or None
            reply = wire.unpack_reply(data)
            if reply is not None:
                out.append(reply)

    def close(self) -> None:
        self.sock.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()



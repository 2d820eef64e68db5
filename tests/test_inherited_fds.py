"""Issue 14 item 1: a hypervisor started by the server inherits none of its descriptors.

Hypercorn's listening socket is inheritable; a relaunched hypervisor that kept it held
the web port in LISTEN after the server stopped.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from pathlib import Path

from simple_scheduler.execution.launcher import accepts, launch_hypervisor


def _descendants(pid: int) -> list[int]:
    """`pid` and every process below it (from /proc/*/stat parent pids)."""
    parents: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    parents[int(name)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
    found, frontier = [pid], [pid]
    while frontier:
        frontier = [c for c, p in parents.items() if p in frontier]
        found += frontier
    return found


def _socket_inodes(pid: int) -> set[str]:
    out = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                out.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
    return out


def test_launched_hypervisor_does_not_keep_the_web_port(short_tmp: Path) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.set_inheritable(True)  # what Hypercorn does with its listening socket
    port = listener.getsockname()[1]
    link = f"socket:[{os.fstat(listener.fileno()).st_ino}]"
    sock_path = os.path.join(short_tmp, "h.sock")
    pid = launch_hypervisor(sock_path, os.path.join(short_tmp, "pd"))
    try:
        deadline = time.monotonic() + 30
        while not accepts(sock_path):
            assert os.waitpid(pid, os.WNOHANG) == (0, 0), "the hypervisor exited"
            assert time.monotonic() < deadline, "the hypervisor never accepted"
            time.sleep(0.02)
        holders = [p for p in _descendants(pid) if link in _socket_inodes(p)]
        assert holders == []
        listener.close()
        again = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            again.bind(("127.0.0.1", port))  # EADDRINUSE while anyone still listens
        finally:
            again.close()
    finally:
        listener.close()
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)

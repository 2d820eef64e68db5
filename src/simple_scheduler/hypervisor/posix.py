"""Typed facade over the `_core` extension: the POSIX calls the hypervisor makes itself.

The post-fork code (fork, setsid, setpgid, dup2, chdir, execve, sigprocmask,
signalfd, waitpid, ...) lives in `_core` as nogil C and never surfaces here. What does
surface raises `CallError`, an `OSError` that names the failing call.

`syscalls` is the seam tests replace to force failure branches (see tests/test_posix_failures.py).
"""

from __future__ import annotations

import hashlib
import os
from types import ModuleType
from typing import NamedTuple

from simple_scheduler.hypervisor import _core


class CallError(OSError):
    """An OS call failed; `.call` names it (e.g. "sem_open")."""

    def __init__(self, errno: int, strerror: str, call: str) -> None:
        super().__init__(errno, strerror)
        self.call = call

    def __str__(self) -> str:
        return f"{self.call}: [Errno {self.errno}] {self.strerror}"

    def __reduce__(self) -> tuple[type[CallError], tuple[int, str, str]]:
        return (CallError, (self.errno or 0, self.strerror or "", self.call))


_core.set_error_class(CallError)

#: The extension module, replaceable in tests by an object with the same functions.
syscalls: ModuleType = _core


class WaitStatus(NamedTuple):
    """A decoded wait status: exit code, or signal and core-dump flag."""

    exit_code: int | None
    signal: int | None
    core_dumped: bool


def decode_wait_status(status: int) -> WaitStatus:
    exit_code, sig, core = syscalls.decode_wait_status(status)
    return WaitStatus(exit_code, sig, core)


def waitpid(pid: int, options: int = 0) -> tuple[int, int]:
    """waitpid(2), EINTR retried: (pid, raw status); pid 0 with WNOHANG and nothing ready."""
    pid_, status = syscalls.waitpid_(pid, options)
    return int(pid_), int(status)


def kill(pid: int, sig: int) -> None:
    syscalls.kill_(pid, sig)


def killpg(pgid: int, sig: int) -> bool:
    """Signal a process group. False when the group no longer exists (ESRCH)."""
    try:
        syscalls.killpg_(pgid, sig)
    except CallError as exc:
        if exc.errno == 3:  # ESRCH
            return False
        raise
    return True


def proc_start_ticks(pid: int) -> int:
    """The process start time (clock ticks since boot): a pid means nothing without it."""
    return int(syscalls.proc_start_ticks(pid))


def process_alive(pid: int, start_ticks: int) -> bool:
    """True when `pid` is the same process (same start time) and has not died.

    A zombie has died: its parent just has not reaped it yet (an orphaned monitor's new
    parent may be a PID 1 that reaps late), so it counts as gone.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    fields = stat[stat.rfind(b")") + 2 :].split()
    # fields[0] is field 3 of proc(5) (the state), fields[19] field 22 (the start time).
    return len(fields) > 19 and fields[0] not in (b"Z", b"X") and int(fields[19]) == start_ticks


#: What a hypervisor whose tasks run under other accounts needs (capabilities(7)
#: numbers): CAP_KILL to signal them, CAP_SETGID and CAP_SETUID to become them.
CAP_KILL, CAP_SETGID, CAP_SETUID = 5, 6, 7
TASK_CAPABILITIES = (1 << CAP_KILL) | (1 << CAP_SETGID) | (1 << CAP_SETUID)


def keep_task_capabilities() -> None:
    """Drop every capability but TASK_CAPABILITIES (bounding set included, so that no
    exec as root regains them): a hypervisor running as root then cannot read what
    its uid could (keys, database) with CAP_DAC_OVERRIDE and the like."""
    syscalls.keep_capabilities(TASK_CAPABILITIES)


def set_proc_title(title: str, comm: str = "") -> None:
    """Name this process in ps and /proc/PID/cmdline (argv area only), and in top (comm)."""
    syscalls.set_proc_title(title, comm)


def prctl_set_name(name: str) -> None:
    syscalls.prctl_set_name(name.encode()[:15])


def semaphore_name(namespace: str, key: str) -> str:
    """A POSIX semaphore name for `key`, unique per process directory (names are global)."""
    digest = hashlib.blake2s(namespace.encode(), digest_size=4).hexdigest()
    return f"/ss-{digest}-{key}"


def semaphore_path(name: str) -> str:
    """Where glibc keeps a named semaphore (sem_overview(7)): the monitor opens it there."""
    return f"/dev/shm/sem.{name.lstrip('/')}"


def sem_create(name: str, value: int) -> None:
    """A new semaphore (O_CREAT | O_EXCL, mode 0600); CallError(EEXIST) if it exists."""
    syscalls.sem_create(os.fsencode(name), value)


def sem_post(name: str) -> None:
    syscalls.sem_post_named(os.fsencode(name))


def sem_wait(name: str, block: bool = True) -> bool:
    return bool(syscalls.sem_wait_named(os.fsencode(name), block))


def sem_value(name: str) -> int:
    return int(syscalls.sem_value(os.fsencode(name)))


def sem_unlink(name: str, missing_ok: bool = True) -> None:
    try:
        syscalls.sem_unlink_named(os.fsencode(name))
    except CallError as exc:
        if not (missing_ok and exc.errno == 2):  # ENOENT
            raise

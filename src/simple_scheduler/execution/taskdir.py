"""The task directory: one per execution, shared by the monitor, hypervisor and web process.

    <process_directory>/<job id>/<task>/<attempt>/
        stdout, stderr   the task's output (read by offset, never whole)
        pid              {"pid", "pid_start_time", "monitor_pid"} once the task exec'd
        status           one JSON line written by the monitor: the exit status, and the
                         pid fields again (the monitor overwrites `pid` with it, renames
                         it to `status`, fsyncs: one inode for both files)
        cancel           created by the hypervisor to cancel a task before it starts

The status file is the truth about how an execution ended: reports to the hypervisor
may be lost, the file is not.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from simple_scheduler.execution import protocol
from simple_scheduler.execution.backend import ExitStatus, OutputKind, TaskFile

STDOUT = "stdout"
STDERR = "stderr"
STATUS = "status"
PID = "pid"
CANCEL = "cancel"
#: Written by a pre/post/cleaning task's runner script: the name of the step that failed.
FAILED_STEP = "failed_step"


def task_dir(process_directory: str, job_id: int, task: str, attempt: int) -> str:
    """The directory of one execution. Tasks are named by index on disk: names may hold
    anything XML allows."""
    return os.path.join(process_directory, str(job_id), task, str(attempt))


class LocalTaskFiles:
    """`TaskFiles` under one process directory (local, or shared with cluster nodes)."""

    def __init__(self, process_directory: str) -> None:
        self.process_directory = os.path.abspath(process_directory)

    def directory(self, job_id: int, task_index: int, attempt: int) -> str:
        return task_dir(self.process_directory, job_id, str(task_index), attempt)

    def prepare(self, task_dir: str, files: Sequence[TaskFile]) -> None:
        """Only tasks with scripts make their directory here; for a plain command the
        hypervisor makes it (a directory costs an inode allocation: once, by one process)."""
        if not files:
            return
        self._make_directory(task_dir)
        for name, text, executable in files:
            path = os.path.join(task_dir, name)
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            # Explicit modes, whatever the server's umask: a task running under a
            # task_user account reads (and may execute) its scripts, and writes the
            # failed step (it may not create files in its directory).
            os.chmod(path, 0o755 if executable else 0o622 if name == FAILED_STEP else 0o644)

    def _make_directory(self, task_dir: str) -> None:
        """Make `task_dir` and the folders above it up to the process directory, each
        0755 (a task_user account must reach its directory; the top stays 0711)."""
        missing: list[str] = []
        probe = task_dir
        while not os.path.isdir(probe) and probe != self.process_directory:
            missing.append(probe)
            probe = os.path.dirname(probe)
        os.makedirs(task_dir, exist_ok=True)
        for folder in missing:
            os.chmod(folder, 0o755)

    def output_path(self, job_id: int, task_index: int, attempt: int, kind: OutputKind) -> str:
        return os.path.join(self.directory(job_id, task_index, attempt), kind)

    def failed_step(self, job_id: int, task_index: int, attempt: int) -> str | None:
        path = os.path.join(self.directory(job_id, task_index, attempt), FAILED_STEP)
        try:
            with open(path, encoding="utf-8") as f:
                return f.read().strip() or None
        except OSError:
            return None

    async def remove_job(self, job_id: int) -> None:
        directory = os.path.join(self.process_directory, str(job_id))
        await asyncio.to_thread(shutil.rmtree, directory, True)


def read_status(directory: str) -> ExitStatus | None:
    """The execution's final status, or None while it has not ended (or never started)."""
    try:
        with open(os.path.join(directory, STATUS), "rb") as f:
            raw = f.read(4096)
    except FileNotFoundError:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return protocol.status_from_dict(data) if isinstance(data, dict) else None


@dataclass(frozen=True)
class PidInfo:
    pid: int
    pid_start_time: int
    monitor_pid: int


def read_pid(directory: str) -> PidInfo | None:
    """The task's pid and start time, written by the monitor right after exec.

    Once the task ended they are in the status file (the `pid` file became it).
    """
    for name in (PID, STATUS):
        try:
            with open(os.path.join(directory, name), "rb") as f:
                data = json.loads(f.read(4096))
            return PidInfo(int(data["pid"]), int(data["pid_start_time"]),
                           int(data["monitor_pid"]))
        except FileNotFoundError:
            continue
        except (OSError, ValueError, KeyError, TypeError):
            return None
    return None


def read_output(directory: str, name: str, offset: int = 0, limit: int = 1 << 20) -> bytes:
    """Up to `limit` bytes of `stdout` or `stderr` from `offset` (b"" past the end)."""
    if name not in (STDOUT, STDERR):
        raise ValueError(f"not an output file: {name!r}")
    try:
        with open(os.path.join(directory, name), "rb") as f:
            f.seek(offset)
            return f.read(limit)
    except FileNotFoundError:
        return b""


# FS_IOC_GETFLAGS / FS_IOC_SETFLAGS (linux/fs.h; the kernel reads and writes an int
# although the ioctl numbers say long) and FS_TOPDIR_FL, chattr's `T`.
_FS_IOC_GETFLAGS = 0x80086601
_FS_IOC_SETFLAGS = 0x40086602
_FS_TOPDIR_FL = 0x00020000


def mark_top_directory(path: str) -> bool:
    """Mark the process directory `chattr +T`: each job directory heads its own tree.

    ext4's Orlov allocator then spreads job directories over block groups, as it does
    home directories, instead of packing every job next to the process directory. On
    ext4 without a journal each new inode skips the group's inodes freed in the last
    minutes (each skip a buffer lookup), so in a group where removed jobs' files were
    freed, every file of every task paid for all of them: 0.9 ms per task of five
    inodes measured on a churned /tmp, 0.05 ms with the mark. Best effort: False when
    the file system has no such flag (tmpfs, xfs ...) or we may not set it.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        buf = bytearray(8)
        fcntl.ioctl(fd, _FS_IOC_GETFLAGS, buf)
        flags = int.from_bytes(buf[:4], sys.byteorder)
        if not flags & _FS_TOPDIR_FL:
            fcntl.ioctl(fd, _FS_IOC_SETFLAGS, (flags | _FS_TOPDIR_FL).to_bytes(8, sys.byteorder))
        return True
    except OSError:
        return False
    finally:
        os.close(fd)

"""Start the hypervisor, and the one definition of its command line.

The web process may have threads (aiosqlite), so it never forks: a hypervisor is started
with posix_spawn (glibc's clone(CLONE_VFORK), no Python in the child) or, from tests and
single-threaded callers, with `subprocess`. Both build the command line with
`HypervisorArgs.argv`, and the hypervisor parses it with `HypervisorArgs.parse`: one
definition for both ends.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

#: `python -m simple_scheduler hypervisor ...` takes a lean path (see `__main__`).
SUBCOMMAND = "hypervisor"
#: A hypervisor with no client and nothing running exits after this long.
DEFAULT_IDLE_EXIT_S = 60.0


class UsageError(ValueError):
    """A hypervisor command line that `HypervisorArgs.parse` cannot read."""


@dataclass(frozen=True)
class HypervisorArgs:
    """What a hypervisor is started with."""

    socket: str
    process_directory: str
    fsync: bool = True
    #: Exit after this many seconds with no client and nothing running (0: never).
    idle_exit_s: float = DEFAULT_IDLE_EXIT_S
    #: Tasks run under other accounts: keep only the capabilities that takes.
    task_accounts: bool = False
    #: A cgroup v2 folder per task where the hierarchy is writable (the server's choice;
    #: off for bare hypervisors, whose monitors a test may SIGKILL, leaving folders).
    task_cgroups: bool = False

    def argv(self) -> list[str]:
        """The arguments after `simple-scheduler hypervisor`."""
        return [
            "--socket",
            self.socket,
            "--process-directory",
            self.process_directory,
            "--fsync" if self.fsync else "--no-fsync",
            "--idle-exit",
            repr(float(self.idle_exit_s)),
            *(["--task-accounts"] if self.task_accounts else []),
            *(["--task-cgroups"] if self.task_cgroups else []),
        ]

    def command(self) -> list[str]:
        """The whole command line, with absolute paths (the child runs elsewhere)."""
        absolute = HypervisorArgs(
            os.path.abspath(self.socket),
            os.path.abspath(self.process_directory),
            self.fsync,
            self.idle_exit_s,
            self.task_accounts,
            self.task_cgroups,
        )
        return [sys.executable, "-m", "simple_scheduler", SUBCOMMAND, *absolute.argv()]

    @classmethod
    def parse(cls, argv: list[str]) -> HypervisorArgs:
        """Read `argv()` back; `--help` and bad input raise UsageError with the usage."""
        values: dict[str, str] = {}
        fsync = True
        task_accounts = task_cgroups = False
        rest = list(argv)
        while rest:
            arg = rest.pop(0)
            name, eq, inline = arg.partition("=")
            if name in ("--socket", "--process-directory", "--idle-exit"):
                if not eq:
                    if not rest:
                        raise UsageError(f"{name} needs a value\n{USAGE}")
                    inline = rest.pop(0)
                values[name] = inline
            elif arg in ("--fsync", "--no-fsync"):
                fsync = arg == "--fsync"
            elif arg == "--task-accounts":
                task_accounts = True
            elif arg == "--task-cgroups":
                task_cgroups = True
            else:
                raise UsageError(f"unknown argument {arg!r}\n{USAGE}")
        missing = [n for n in ("--socket", "--process-directory") if n not in values]
        if missing:
            raise UsageError(f"missing {', '.join(missing)}\n{USAGE}")
        idle = values.get("--idle-exit", str(DEFAULT_IDLE_EXIT_S))
        try:
            idle_exit_s = float(idle)
        except ValueError:
            raise UsageError(f"--idle-exit needs a number of seconds, not {idle!r}") from None
        if not idle_exit_s >= 0:
            raise UsageError(f"--idle-exit must be 0 (never) or more, not {idle!r}")
        return cls(
            values["--socket"],
            values["--process-directory"],
            fsync,
            idle_exit_s,
            task_accounts,
            task_cgroups,
        )


USAGE = """\
usage: simple-scheduler hypervisor --socket PATH --process-directory DIR
                                   [--fsync | --no-fsync] [--task-accounts]
                                   [--task-cgroups]

Run the hypervisor: the process that starts and tracks tasks.
  --socket PATH             Unix socket to listen on
  --process-directory DIR   root of the task directories
  --fsync / --no-fsync      fsync each task's status file (durability; default --fsync)
  --idle-exit SECONDS       exit after this long with no client and nothing running
                            (default 60; 0: never)
  --task-accounts           tasks run under other accounts (task_user, runAsMe): keep
                            only CAP_SETUID, CAP_SETGID and CAP_KILL
  --task-cgroups            a cgroup v2 folder per task, where the hierarchy is writable"""


def accepts(socket_path: str) -> bool:
    """Whether a hypervisor listens on `socket_path`."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(socket_path)
        except OSError:
            return False
    return True


def spawn_hypervisor(
    socket_path: str,
    process_directory: str,
    *,
    timeout: float = 15.0,
    stderr: int | None = None,
    fsync: bool = True,
    idle_exit_s: float = DEFAULT_IDLE_EXIT_S,
    task_accounts: bool = False,
    task_cgroups: bool = False,
) -> subprocess.Popen[bytes]:
    """Start `simple-scheduler hypervisor` in its own session and wait until it accepts.

    Its own session: it outlives the web process (and a Ctrl-C aimed at it). Its working
    directory (and so its monitors') is the process directory.
    """
    args = HypervisorArgs(
        socket_path, process_directory, fsync, idle_exit_s, task_accounts, task_cgroups
    )
    os.makedirs(process_directory, exist_ok=True)
    proc = subprocess.Popen(
        args.command(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        start_new_session=True,
        cwd=process_directory,
    )
    deadline = time.monotonic() + timeout
    while not accepts(socket_path):
        if proc.poll() is not None:
            raise RuntimeError(f"the hypervisor exited with code {proc.returncode} at start")
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise RuntimeError(f"the hypervisor did not accept on {socket_path} in {timeout}s")
        time.sleep(0.01)
    return proc


def launch_hypervisor(
    socket_path: str,
    process_directory: str,
    *,
    idle_exit_s: float = DEFAULT_IDLE_EXIT_S,
    task_accounts: bool = False,
    task_cgroups: bool = False,
) -> int:
    """Start a hypervisor from a process that may have threads (the web process).

    posix_spawn, not fork: glibc implements it with clone(CLONE_VFORK) and runs no Python
    in the child, so aiosqlite's threads cannot leave it a half-held lock. It does not
    wait: the caller retries its connection. Returns the pid (the caller reaps it).
    Descriptors the web process leaves inheritable (Hypercorn's listening socket) are
    closed by the hypervisor itself, first thing (`hypervisor.main`).
    """
    cmd = HypervisorArgs(
        socket_path,
        process_directory,
        idle_exit_s=idle_exit_s,
        task_accounts=task_accounts,
        task_cgroups=task_cgroups,
    ).command()
    devnull = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
    ]
    return os.posix_spawn(sys.executable, cmd, os.environ, file_actions=devnull, setsid=True)


def ensure_hypervisor(
    socket_path: str,
    process_directory: str,
    *,
    timeout: float = 15.0,
    idle_exit_s: float = DEFAULT_IDLE_EXIT_S,
    task_accounts: bool = False,
    task_cgroups: bool = False,
) -> subprocess.Popen[bytes] | None:
    """A hypervisor listening on `socket_path`: the running one (None) or a new one."""
    if accepts(socket_path):
        return None
    return spawn_hypervisor(
        socket_path,
        process_directory,
        timeout=timeout,
        idle_exit_s=idle_exit_s,
        task_accounts=task_accounts,
        task_cgroups=task_cgroups,
    )

"""The narrow interface between the scheduler and whatever executes tasks.

The local hypervisor is the first backend; a cluster engine (Slurm) will be the second.
Nothing above this interface may assume local pids or local files except through it:
the scheduler names an execution by an opaque `key`, hands over a `TaskSpec`, and
learns what happened from a stream of `Event`s.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from simple_scheduler.states import ExecutionState

#: Keys travel in file names, semaphore names and datagrams: keep them tame.
KEY_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,96}$")


def execution_key(job_id: int, task_index: int, attempt: int) -> str:
    """The key of one execution (attempt) of one task: unique for the server's life."""
    return f"{job_id}.{task_index}.{attempt}"


@dataclass(frozen=True)
class TaskSpec:
    """Everything a backend needs to run one execution of one task."""

    key: str
    job_id: int
    task_name: str
    argv: list[str]
    env: dict[str, str]
    task_dir: str
    cwd: str | None = None  #: None: the task directory itself
    #: What a cluster backend asks its engine for (all optional): `walltime` (seconds),
    #: `nodes`, `node_access_token`. The local backend runs on this machine and ignores it.
    resources: dict[str, str] = field(default_factory=dict)
    #: The account the task runs as (a local Unix user name); None: the executor's own.
    user: str | None = None
    #: TERM -> KILL grace when the task is killed, and for processes it leaves behind.
    kill_grace: float = 5.0


#: A file to write into a task directory before the task starts: (name, text, executable).
#: Scripts of script tasks; `TaskFiles.prepare` writes them.
TaskFile = tuple[str, str, bool]


@dataclass(frozen=True)
class ExitStatus:
    """How an execution ended, decoded from the wait status by the monitor."""

    exit_code: int | None  #: set when the process exited
    signal: int | None  #: set when a signal killed it
    core_dumped: bool
    start_time: float  #: epoch seconds
    end_time: float  #: epoch seconds
    error: str | None = None  #: "could not start: <reason>" when exec never happened
    #: Processes still running when the main process ended, which the executor ended.
    leftovers: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None and self.exit_code == 0


@dataclass(frozen=True)
class Started:
    key: str
    pid: int
    pid_start_time: int  #: clock ticks since boot (/proc/PID/stat field 22): pid + this = identity
    time: float
    kind: Literal["started"] = "started"


@dataclass(frozen=True)
class Exited:
    """The end of an execution. A task that ended before its start was announced gets
    no `Started`: then its pid and pid start time come here."""

    key: str
    status: ExitStatus
    pid: int | None = None
    pid_start_time: int | None = None
    kind: Literal["exited"] = "exited"


@dataclass(frozen=True)
class Lost:
    key: str
    reason: str
    kind: Literal["lost"] = "lost"


Event = Started | Exited | Lost

#: An execution's state in a `TaskRecord`; its transitions are in `states`.
TaskState = ExecutionState


@dataclass(frozen=True)
class TaskRecord:
    """One execution as the backend knows it (answer to `list`)."""

    key: str
    state: TaskState
    pid: int | None = None
    pid_start_time: int | None = None
    status: ExitStatus | None = None
    reason: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    #: False while an execution spawned with start=False has not been started: it was
    #: prepared ahead (its command never ran, and never will unless `start` comes), so a
    #: restarted scheduler must not take it for a run that happened.
    started: bool = True


class BackendError(Exception):
    """A request the backend refused or could not carry out."""


class Unreachable(BackendError):
    """The backend could not be reached, or the connection to it was lost.

    Unlike a refusal, this says nothing about the request: it may or may not have been
    carried out. The caller finds out by listing after it reconnects.
    """


class UnknownExecution(BackendError):
    """The request names an execution the backend does not hold (released, or never
    spawned)."""


OutputKind = Literal["stdout", "stderr"]


class TaskFiles(Protocol):
    """Where an execution's files live: the only way above this interface reaches them.

    Synchronous and connection-free (file reads answer requests while the backend is
    reconnecting). The local backend keeps them under its process directory; a cluster
    backend keeps them on the file system it shares with its nodes.
    """

    def directory(self, job_id: int, task_index: int, attempt: int) -> str:
        """The execution's directory (a `TaskSpec.task_dir`)."""

    def prepare(self, task_dir: str, files: Sequence[TaskFile]) -> None:
        """Write `files` into `task_dir` (OSError when that cannot be done)."""

    def output_path(self, job_id: int, task_index: int, attempt: int, kind: OutputKind) -> str:
        """The file holding that output; read by offset, it may not exist yet."""

    def failed_step(self, job_id: int, task_index: int, attempt: int) -> str | None:
        """Which step of a pre/post/cleaning task failed, if its runner recorded one."""

    async def remove_job(self, job_id: int) -> None:
        """Delete every file of the job (its executions have ended)."""


class ExecutionBackend(Protocol):
    """What the scheduler needs from an executor. All methods are coroutine-safe."""

    @property
    def queues(self) -> bool:
        """True when a spawned execution may wait in the engine's own queue (Slurm): its
        task then stays PENDING until `Started` (or `Exited`) comes, and pausing its job
        holds it there (`hold`/`unhold`). False (local): an execution starts at once."""
        ...

    def spawn(self, spec: TaskSpec, start: bool = True) -> Awaitable[object]:
        """Prepare the execution; with `start`, release it at once (one round trip).

        An awaitable, a coroutine or a future: a scheduler that keeps thousands of
        spawns in flight need not make a task of each."""

    def start(self, key: str) -> Awaitable[object]:
        """Release an execution spawned with start=False (an awaitable, like `spawn`:
        queued at once, so a start is not a loop turn late). Once started it stays
        started, across restarts of either side (`TaskRecord.started`)."""

    async def kill(self, key: str, grace: float = 5.0) -> bool:
        """TERM the execution's process group, KILL after `grace` s. False if not alive."""

    async def list(self) -> list[TaskRecord]:
        """Every execution the backend still holds (not yet released)."""

    async def release(self, *keys: str) -> None:
        """The caller has recorded these executions' ends: the backend may forget them."""

    async def hold(self, *keys: str) -> None:
        """Keep these queued executions from starting (one engine call for all); only
        asked of a backend that `queues`."""

    async def unhold(self, *keys: str) -> None:
        """Let held executions start again (one engine call for all)."""

    def events(self) -> AsyncIterator[Event]:
        """Started / Exited / Lost, in order, for this subscriber (a short task may
        produce Exited only, with the pid Started would have carried)."""
        ...

    async def detach(self) -> None:
        """The server stops cleanly: the backend may let go of what it keeps for us once
        nothing of ours runs (the local hypervisor exits). Running executions go on."""

    async def close(self) -> None:
        """Drop the connection; running executions keep running."""

"""Reading tasks' output by byte offset while they run, for `logs -f` and `submit --follow`.

The server serves each task's stdout and stderr from any byte offset and says where to
continue (`X-Next-Offset`), so following is: remember one offset per task and stream, and
ask again. Only tasks that are running, or whose status changed since they were last read,
are asked: a 10,000-task job costs a request per running task per turn, not per task.
A task is read once more after it is seen ended, so its last bytes are never missed.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO

from simple_scheduler.client.watch import JobInfo
from simple_scheduler.states import TASK_TERMINAL, TaskStatus

if TYPE_CHECKING:
    from simple_scheduler.client.rest import Rest

#: Statuses of a task that has not run (unless an earlier attempt did: then `started`).
NEVER_RAN = frozenset(
    {
        TaskStatus.SUBMITTED,
        TaskStatus.PENDING,
        TaskStatus.PAUSED,
        TaskStatus.NOT_STARTED,
        TaskStatus.SKIPPED,
    }
)
#: ANSI colours cycled over task names on a terminal.
PALETTE = (36, 33, 32, 35, 34, 31, 96, 93, 92, 95, 94, 91)


@dataclass
class _Task:
    name: str
    index: int
    status: str = ""
    started: bool = False
    read_status: str | None = None  # status when last read; None: never read
    offsets: dict[str, int] = field(default_factory=dict)
    partial: dict[str, bytes] = field(default_factory=dict)


def _tasks_of(state: dict[str, Any]) -> list[tuple[int, str, str, bool]]:
    """(index, name, status, has started) of every task of a JobStateData."""
    rows = []
    for key, task in state.get("tasks", {}).items():
        info = task["taskInfo"]
        rows.append((int(key), task["name"], info["taskStatus"], int(info["startTime"]) >= 0))
    return sorted(rows)


class JobLogFollower:
    """Every task's output of one job as whole lines prefixed by the task's name.

    `streams` maps `out`/`err` to the text stream its lines go to (looked up at each write,
    so a progress bar that redirects `sys.stdout` still sees them).
    """

    def __init__(
        self, rest: Rest, job_id: int, streams: Sequence[str], *, colour: bool = False
    ) -> None:
        self.rest = rest
        self.job_id = job_id
        self.streams = tuple(streams)
        self.colour = colour
        self.finished = False
        self._tasks: dict[str, _Task] = {}
        self._order: list[_Task] = []
        self._width = 0
        self._last_info: JobInfo | None = None

    def pump(self, info: JobInfo, final: bool) -> bool:
        """Print what is new; True when there was output. `final`: the last turn (the job
        ended, or a one-off read): partial last lines are printed too."""
        if info != self._last_info or final:
            self._refresh()
            self._last_info = info
        active = False
        for task in self._order:
            running = task.status == TaskStatus.RUNNING
            changed = task.read_status != task.status
            # A RUNNING task's start time may be set a moment after its status: read it
            # anyway (its file may not exist yet, which reads as empty).
            if not (running or (changed and (task.started or task.status not in NEVER_RAN))):
                continue
            task.read_status = task.status
            for stream in self.streams:
                active |= self._read(task, stream)
                if final or not running:
                    self._flush(task, stream)
        self.finished = final
        return active

    def _refresh(self) -> None:
        for index, name, status, started in _tasks_of(self.rest.job_state(self.job_id)):
            task = self._tasks.get(name)
            if task is None:
                task = self._tasks[name] = _Task(name, index)
                self._order.append(task)
                self._width = max(self._width, len(name))
            task.status, task.started = status, started

    def _read(self, task: _Task, stream: str) -> bool:
        offset = task.offsets.get(stream, 0)
        data, task.offsets[stream] = self.rest.read_log(self.job_id, task.name, stream, offset)
        if not data:
            return False
        lines = (task.partial.get(stream, b"") + data).split(b"\n")
        task.partial[stream] = lines.pop()
        for line in lines:
            self._write(task, stream, line)
        return True

    def _flush(self, task: _Task, stream: str) -> None:
        """An ended task's last line without its newline is still a line."""
        rest = task.partial.pop(stream, b"")
        if rest:
            self._write(task, stream, rest)

    def _write(self, task: _Task, stream: str, line: bytes) -> None:
        name = task.name.ljust(self._width)
        if self.colour:
            name = f"\x1b[{PALETTE[task.index % len(PALETTE)]}m{name}\x1b[0m"
        sink = sys.stderr if stream == "err" else sys.stdout
        sink.write(f"{name} | {line.decode('utf-8', 'replace')}\n")
        sink.flush()


class TaskLogFollower:
    """One task's stdout or stderr, byte for byte, until the task ends."""

    def __init__(self, rest: Rest, job_id: int, task: str, stream: str, sink: BinaryIO) -> None:
        self.rest = rest
        self.job_id = job_id
        self.task = task
        self.stream = stream
        self.sink = sink
        self.finished = False
        self._offset = 0
        self._status: str | None = None
        self._read_status: str | None = None
        self._last_info: JobInfo | None = None

    def pump(self, info: JobInfo, final: bool) -> bool:
        if info != self._last_info or final or self._status is None:
            state = self.rest.task_state(self.job_id, self.task)
            self._status = str(state["taskInfo"]["taskStatus"])
            self._last_info = info
        status = self._status
        if status != TaskStatus.RUNNING and status == self._read_status:
            return False
        self._read_status = status
        before = self._offset
        self._offset = self.rest.copy_log(self.job_id, self.task, self.stream, before, self.sink)
        self.sink.flush()
        self.finished = status in TASK_TERMINAL or final
        return self._offset > before

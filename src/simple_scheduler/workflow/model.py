"""The validated job: plain frozen objects, no lxml types, ready for the scheduler.

Values here are final except native command lines, which ProActive substitutes at run
time because they may use system variables such as `PA_JOB_ID` (see `variables.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from simple_scheduler.workflow import graph

#: `onTaskError` policies in ProActive's spelling; "none" on a task means "inherit".
ON_TASK_ERROR = ("continueJobExecution", "cancelJob", "suspendTask", "pauseJob")
#: A job's policy when it sets none (or "none").
DEFAULT_ON_TASK_ERROR = "continueJobExecution"
#: Job priorities, lowest first (`idle` is reachable only through the API in ProActive).
PRIORITIES = ("idle", "lowest", "low", "normal", "high", "highest")
#: Script languages this scheduler runs; `shell` runs the code's own `#!` interpreter.
SCRIPT_LANGUAGES = ("bash", "shell", "sh")


@dataclass(frozen=True, slots=True)
class NativeCommand:
    """A program run without a shell: argv[0] is the command, one element per argument.

    Elements are raw: the scheduler substitutes `${VAR}` in each at run time.
    """

    argv: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Script:
    """An inline script. Bodies are never substituted; they read `variables_NAME`.

    For `shell`, leading whitespace is stripped so the `#!` line is the first line.
    """

    language: str
    code: str
    arguments: tuple[str, ...] = ()


Executable = NativeCommand | Script


@dataclass(frozen=True, slots=True)
class Task:
    """One task. `generic_information` is the task's own; at run time ProActive
    overlays it on the job's (`Job.task_generic_information`)."""

    index: int
    name: str
    executable: Executable
    line: int
    description: str | None = None
    pre: Script | None = None
    post: Script | None = None
    cleaning: Script | None = None
    depends: tuple[int, ...] = ()
    on_task_error: str | None = None
    max_number_of_execution: int | None = None
    task_retry_delay: float | None = None
    walltime: float | None = None
    run_as_me: bool = False
    precious_result: bool = False
    number_of_nodes: int = 1
    variables: dict[str, str] = field(default_factory=dict)
    generic_information: dict[str, str] = field(default_factory=dict)
    working_dir: str | None = None
    environment: dict[str, str] = field(default_factory=dict)

    @property
    def node_access_token(self) -> str | None:
        """The `NODE_ACCESS_TOKEN` generic information, kept for future backends."""
        return self.generic_information.get("NODE_ACCESS_TOKEN")


@dataclass(frozen=True, slots=True)
class Job:
    """A parsed, validated job; `tasks[i].index == i`, and the dependency graph is acyclic."""

    name: str
    tasks: tuple[Task, ...]
    priority: str = "normal"
    on_task_error: str = DEFAULT_ON_TASK_ERROR
    max_number_of_execution: int = 1
    task_retry_delay: float | None = None
    project_name: str | None = None
    tags: tuple[str, ...] = ()
    description: str | None = None
    variables: dict[str, str] = field(default_factory=dict)
    generic_information: dict[str, str] = field(default_factory=dict)
    namespace: str | None = None
    #: Things accepted but ignored (selection scripts, data spaces, ...), for the submitter.
    warnings: tuple[str, ...] = ()
    #: The order validation found; empty means "not computed" (a Job built by hand).
    order: tuple[int, ...] = field(default=(), compare=False, repr=False)

    def topological_order(self) -> list[int]:
        """Task indexes, every task after all of its parents (ties in document order)."""
        if len(self.order) == len(self.tasks):
            return list(self.order)
        return graph.topological_order([t.depends for t in self.tasks])

    def children(self) -> list[list[int]]:
        """For each task, the indexes of the tasks that depend on it."""
        return graph.children([t.depends for t in self.tasks])

    def task_on_error(self, task: Task) -> str:
        """The policy that applies to `task`: its own, else the job's. The one place
        this is decided: the store and the scheduler both ask here."""
        return task.on_task_error or self.on_task_error

    def task_max_number_of_execution(self, task: Task) -> int:
        """Executions allowed for `task`: its own setting, else the job's; at least one
        (the parser refuses less, a Job built by hand may not)."""
        if task.max_number_of_execution is not None:
            return max(1, task.max_number_of_execution)
        return max(1, self.max_number_of_execution)

    def task_generic_information(self, task: Task) -> dict[str, str]:
        """What the task sees at run time: job generic information overlaid by its own."""
        return self.generic_information | task.generic_information

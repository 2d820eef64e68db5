"""ProActive variables: `${NAME}`/`$NAME` substitution and the system variable names.

Substitution follows ProActive's `VariableSubstitutor`: a name is letters, digits, `_`,
`.` and `-`; a value is itself substituted (so variables may reference each other);
unknown references, and references that would loop, stay as written. A variable
`pa.home` can also be written `PA_HOME` (ProActive registers that alias too).
Bash scripts are never substituted: they read `variables_NAME` environment variables.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

#: Names of the variables ProActive gives every task (`SchedulerVars`).
PA_JOB_ID = "PA_JOB_ID"
PA_JOB_NAME = "PA_JOB_NAME"
PA_TASK_ID = "PA_TASK_ID"
PA_TASK_NAME = "PA_TASK_NAME"
PA_TASK_ITERATION = "PA_TASK_ITERATION"
PA_TASK_REPLICATION = "PA_TASK_REPLICATION"
PA_TASK_PROGRESS_FILE = "PA_TASK_PROGRESS_FILE"
PA_TASK_SUCCESS = "PA_TASK_SUCCESS"
PA_USER = "PA_USER"
PA_SCHEDULER_HOME = "PA_SCHEDULER_HOME"
PA_SCHEDULER_REST_URL = "PA_SCHEDULER_REST_URL"
PA_CATALOG_REST_URL = "PA_CATALOG_REST_URL"
PA_NODESFILE = "PA_NODESFILE"
PA_NODESNUMBER = "PA_NODESNUMBER"
PA_NODE_URL = "PA_NODE_URL"
PA_NODE_NAME = "PA_NODE_NAME"
PA_NODE_HOST = "PA_NODE_HOST"
SYSTEM_VARIABLES = (
    PA_JOB_ID, PA_JOB_NAME, PA_TASK_ID, PA_TASK_NAME, PA_TASK_ITERATION,
    PA_TASK_REPLICATION, PA_TASK_PROGRESS_FILE, PA_TASK_SUCCESS, PA_USER,
    PA_SCHEDULER_HOME, PA_SCHEDULER_REST_URL, PA_CATALOG_REST_URL, PA_NODESFILE,
    PA_NODESNUMBER, PA_NODE_URL, PA_NODE_NAME, PA_NODE_HOST,
)  # fmt: skip

#: Environment-variable prefixes through which bash and shell scripts see bindings.
VARIABLES_ENV_PREFIX = "variables_"
GENERIC_INFORMATION_ENV_PREFIX = "genericInformation_"

#: References nest at most this deep; deeper ones stay as written.
MAX_NESTING = 32
#: Default cap on one substitution's output length and work (see `substitute`).
DEFAULT_MAX_LENGTH = 128 * 1024

_REFERENCE = re.compile(r"\$(?:\{([^{}]*)\}|([\w.\-]+))")


class SubstitutionTooLarge(ValueError):
    """Expanding variables would exceed the length budget (`A=${B}${B}`, `B=${C}${C}`...)."""


class Scope:
    """A variable mapping prepared for many substitutions.

    Each variable's expansion is memoised, so `A=${B}${B}`, `B=${C}${C}`, ... costs
    work proportional to the output, which the length budget then bounds.
    """

    __slots__ = ("_aliases", "_memo", "_values", "checked")

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = values
        self._aliases: dict[str, str] | None = None
        self._memo: dict[str, str] = {}
        #: Texts already checked against this scope (the parser's run-time argv check).
        self.checked: set[str] = set()

    def lookup(self, name: str) -> str | None:
        """The raw value of `name`, or of the variable whose alias it is, or None."""
        value = self._values.get(name)
        if value is None:
            if self._aliases is None:
                self._aliases = {}
                for key, val in self._values.items():
                    self._aliases.setdefault(key.upper().replace(".", "_"), val)
            value = self._aliases.get(name)
        return value

    def substitute(self, text: str, max_length: int = DEFAULT_MAX_LENGTH) -> str:
        """`text` with references replaced; SubstitutionTooLarge past `max_length`."""
        if "$" not in text:
            return text
        return self._expand(text, (), [max_length, max_length])[0]

    def _expand(self, text: str, active: tuple[str, ...], budget: list[int]) -> tuple[str, bool]:
        """(expansion, whether no loop was cut short). `budget` holds the output
        characters and the expansions still allowed."""
        out: list[str] = []
        pos = 0
        clean = True
        for match in _REFERENCE.finditer(text):
            name = match.group(1)
            if name is None:
                name = match.group(2)
            if name in active or len(active) >= MAX_NESTING:
                clean = False
                continue
            value = self._memo.get(name)
            if value is None:
                raw = self.lookup(name)
                if raw is None:
                    continue
                value = raw
                if "$" in raw:
                    value, done = self._expand(raw, (*active, name), budget)
                    if done:
                        self._memo[name] = value
                    else:
                        clean = False
            piece = text[pos : match.start()]
            budget[0] -= len(piece) + len(value)
            budget[1] -= 1  # empty values must not expand for free either
            if budget[0] < 0 or budget[1] < 0:
                raise SubstitutionTooLarge("variable substitution exceeds the length limit")
            out.append(piece)
            out.append(value)
            pos = match.end()
        if not out:
            return text, clean
        out.append(text[pos:])
        return "".join(out), clean


def substitute(
    text: str, variables: Mapping[str, str], max_length: int = DEFAULT_MAX_LENGTH
) -> str:
    """Replace `${NAME}` and `$NAME` in `text`; unknown references stay as written.

    The scheduler calls this at run time on each native argv element with
    `job.variables | task.variables | system_variables(...)`.
    """
    return Scope(variables).substitute(text, max_length)


def resolve(
    declared: Mapping[str, str],
    outer: Mapping[str, str] | None = None,
    max_length: int = DEFAULT_MAX_LENGTH,
) -> dict[str, str]:
    """Resolve variables that reference each other (and `outer` ones); order is kept."""
    scope = Scope({**outer, **declared} if outer else declared)
    return {name: scope.substitute(value, max_length) for name, value in declared.items()}


def task_id(job_id: int, index: int) -> str:
    """ProActive's task id text: `<job id>t<task index>`."""
    return f"{job_id}t{index}"


def system_variables(
    job_id: int,
    job_name: str,
    task_id: str,
    task_name: str,
    user: str,
    *,
    iteration: int = 0,
    replication: int = 0,
    scheduler_home: str | None = None,
    rest_url: str | None = None,
    progress_file: str | None = None,
    nodes_file: str | None = None,
    nodes_number: int = 1,
    node_name: str | None = None,
    node_host: str | None = None,
) -> dict[str, str]:
    """The system variables a task sees, as strings; unknown optional ones are left out."""
    values: dict[str, str] = {
        PA_JOB_ID: str(job_id),
        PA_JOB_NAME: job_name,
        PA_TASK_ID: task_id,
        PA_TASK_NAME: task_name,
        PA_TASK_ITERATION: str(iteration),
        PA_TASK_REPLICATION: str(replication),
        PA_USER: user,
        PA_NODESNUMBER: str(nodes_number),
    }
    optional = {
        PA_SCHEDULER_HOME: scheduler_home,
        PA_SCHEDULER_REST_URL: rest_url,
        PA_TASK_PROGRESS_FILE: progress_file,
        PA_NODESFILE: nodes_file,
        PA_NODE_NAME: node_name,
        PA_NODE_HOST: node_host,
    }
    values.update({k: v for k, v in optional.items() if v is not None})
    return values


def script_environment(
    variables: Mapping[str, str], generic_information: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Environment variables through which bash/shell scripts read their bindings."""
    env = {VARIABLES_ENV_PREFIX + k: v for k, v in variables.items()}
    if generic_information:
        env.update({GENERIC_INFORMATION_ENV_PREFIX + k: v for k, v in generic_information.items()})
    return env

"""Reading one `<task>` element: attributes, variables, executable and scripts.

Dependencies are kept as names here; the job reader resolves them once every task is
known, since `depends` may name a task written later in the file.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, cast

from lxml import etree

from simple_scheduler.workflow.context import Context, line_of, text_of
from simple_scheduler.workflow.model import (
    ON_TASK_ERROR,
    SCRIPT_LANGUAGES,
    Executable,
    NativeCommand,
    Script,
    Task,
)
from simple_scheduler.workflow.values import parse_bool, parse_choice, parse_duration, parse_int
from simple_scheduler.workflow.variables import Scope

_EXECUTABLES = frozenset(("nativeExecutable", "scriptExecutable", "javaExecutable"))
_SECTIONS = frozenset(
    ("description", "variables", "genericInformation", "depends", "parallel",
     "forkEnvironment", "pre", "post", "cleaning", "controlFlow")
)  # fmt: skip
_IGNORED = {
    "selection": "selection scripts are ignored (tasks run on this server)",
    "inputFiles": "data-space file transfers (inputFiles) are ignored",
    "outputFiles": "data-space file transfers (outputFiles) are ignored",
}
_QUIET = frozenset(("metadata",))
_CONTROL_FLOW_ACTIONS = frozenset(("if", "replicate", "loop"))
#: Task names become directory names and log labels: no slashes or control characters.
_BAD_NAME = re.compile(r"[/\x00-\x1f\x7f]")


def _task_policy(text: str) -> str | None:
    value = parse_choice(text, "onTaskError", (*ON_TASK_ERROR, "none"))
    return None if value == "none" else value


#: Task attribute -> (Task field or None when only validated, parser).
_ATTRIBUTES: dict[str, tuple[str | None, Callable[[str], Any]]] = {
    "onTaskError": ("on_task_error", _task_policy),
    "maxNumberOfExecution": (
        "max_number_of_execution",
        partial(parse_int, what="maxNumberOfExecution", minimum=1),
    ),
    "taskRetryDelay": ("task_retry_delay", partial(parse_duration, what="taskRetryDelay")),
    "walltime": ("walltime", partial(parse_duration, what="walltime", allow_zero=False)),
    "runAsMe": ("run_as_me", partial(parse_bool, what="runAsMe")),
    "preciousResult": ("precious_result", partial(parse_bool, what="preciousResult")),
    "numberOfNodes": ("number_of_nodes", partial(parse_int, what="numberOfNodes", minimum=1)),
    "fork": (None, partial(parse_bool, what="fork")),
    "preciousLogs": (None, partial(parse_bool, what="preciousLogs")),
    "restartTaskOnError": (
        None,
        partial(parse_choice, what="restartTaskOnError", choices=("anywhere", "elsewhere")),
    ),
}
_ATTRIBUTE_DEFAULTS: dict[str, Any] = {
    "on_task_error": None,
    "max_number_of_execution": None,
    "task_retry_delay": None,
    "walltime": None,
    "run_as_me": False,
    "precious_result": False,
    "number_of_nodes": 1,
}


@dataclass(slots=True)
class TaskDraft:
    """A task read but not yet linked: `depends` still holds (name, line) pairs."""

    index: int
    name: str
    line: int
    depends: list[tuple[str, int | None]]
    fields: dict[str, Any] = field(default_factory=dict)

    def build(self, parents: tuple[int, ...]) -> Task:
        return Task(
            index=self.index, name=self.name, line=self.line, depends=parents, **self.fields
        )


class TaskReader:
    """Reads task elements against the job's resolved variables."""

    def __init__(
        self,
        ctx: Context,
        job_variables: dict[str, str],
        job_scope: Scope,
        default_walltime: float | None,
    ) -> None:
        self.ctx = ctx
        self.job_variables = job_variables
        self.job_scope = job_scope
        self.default_walltime = default_walltime

    def read(self, element: etree._Element, index: int) -> TaskDraft:
        ctx = self.ctx
        line = line_of(element) or 0  # Task.line is an int
        name = self._name(element, index, line)
        sections: dict[str, etree._Element] = {}
        executables: list[etree._Element] = []
        for child in element:
            local = ctx.local(child)
            if local is None or local in _QUIET:
                continue
            if local in _EXECUTABLES:
                executables.append(child)
            elif local in _SECTIONS:
                if local in sections:
                    ctx.problem(f"<{local}> appears twice", name, line_of(child))
                sections[local] = child
            elif local in _IGNORED:
                ctx.warn(f"line {line_of(child)}, task {name!r}: {_IGNORED[local]}")
            else:
                ctx.warn(f"line {line_of(child)}, task {name!r}: unknown <{local}> ignored")

        variables, scope = self._variables(sections.get("variables"), name)
        fields = self._attributes(element, name, scope, line)
        generic = ctx.generic_information(sections.get("genericInformation"), scope, name)
        fields["generic_information"] = generic
        fields["variables"] = variables
        if fields["walltime"] is None:
            fields["walltime"] = self._walltime(generic, name, line)
        if "description" in sections:
            fields["description"] = text_of(sections["description"])
        if "parallel" in sections:
            fields["number_of_nodes"] = self._nodes(sections["parallel"], name)
        if "forkEnvironment" in sections:
            self._fork_environment(sections["forkEnvironment"], name, scope, fields)
        for what in ("pre", "post", "cleaning"):
            if what in sections:
                fields[what] = self._script(sections[what], f"<{what}> script", name)
        if "controlFlow" in sections:
            self._control_flow(sections["controlFlow"], name)
        fields["executable"] = self._executable(executables, name, scope, line)
        depends = self._depends(sections.get("depends"), name)
        return TaskDraft(index, name, line, depends, fields)

    def _name(self, element: etree._Element, index: int, line: int) -> str:
        name = self.ctx.raw(element, "name", None)
        if not name:
            self.ctx.problem(f"task #{index + 1} has no name", None, line)
            return f"#{index + 1}"
        if _BAD_NAME.search(name) or name in (".", "..") or len(name) > 255:
            self.ctx.problem(
                "a task name must be 1-255 characters without '/' or control characters",
                name,
                line,
            )
        return name

    def _variables(self, element: etree._Element | None, task: str) -> tuple[dict[str, str], Scope]:
        """Task variables resolved against the job's; `inherited` ones take the job value."""
        if element is None:
            return {}, self.job_scope
        ctx = self.ctx
        declared, models, lines, inherited = ctx.read_variables(element, task, True)
        for name in inherited:
            if name in self.job_variables:
                declared[name] = self.job_variables[name]
        resolved = ctx.resolve_variables(declared, self.job_variables, models, lines, task)
        return resolved, Scope({**self.job_variables, **resolved})

    def _attributes(
        self, element: etree._Element, task: str, scope: Scope, line: int
    ) -> dict[str, Any]:
        """One pass over the attributes present (most tasks set two or three)."""
        ctx = self.ctx
        fields = dict(_ATTRIBUTE_DEFAULTS)
        limit = ctx.limits.max_attribute_length
        # lxml's stubs say str | bytes; parsed documents give str.
        for key, value in cast("list[tuple[str, str]]", element.items()):
            if len(value) > limit:
                ctx.raw(element, key, task)  # raises WorkflowTooLarge, naming it
            spec = _ATTRIBUTES.get(key)
            if spec is None:
                continue
            if "$" in value:
                value = ctx.substitute(value, scope, f"attribute {key!r}", task, line)
            target, parse = spec
            try:
                result = parse(value)
            except ValueError as err:
                ctx.problem(str(err), task, line)
                continue
            if target is not None:
                fields[target] = result
        return fields

    def _walltime(self, generic: dict[str, str], task: str, line: int) -> float | None:
        """Task attribute first (already read), then the WALLTIME generic information."""
        text = generic.get("WALLTIME")
        if text is None:
            return self.default_walltime
        return self.ctx.convert(
            text,
            self.default_walltime,
            lambda v: parse_duration(v, "WALLTIME generic information", allow_zero=False),
            task,
            line,
        )

    def _nodes(self, element: etree._Element, task: str) -> int:
        return self.ctx.convert(
            self.ctx.raw(element, "numberOfNodes", task),
            1,
            lambda v: parse_int(v, "parallel numberOfNodes", minimum=1),
            task,
            line_of(element),
        )

    def _fork_environment(
        self, element: etree._Element, task: str, scope: Scope, fields: dict[str, Any]
    ) -> None:
        ctx = self.ctx
        working_dir = ctx.attribute(element, "workingDir", scope, task)
        if working_dir is not None and working_dir.strip():
            fields["working_dir"] = working_dir.strip()
        environment: dict[str, str] = {}
        for child in element:
            local = ctx.local(child)
            if local == "envScript":
                ctx.warn(f"line {line_of(child)}, task {task!r}: envScript is ignored")
            elif local == "SystemEnvironment":
                for var in child:
                    if ctx.local(var) != "variable":
                        continue
                    name = ctx.raw(var, "name", task)
                    if not name or "=" in name:
                        ctx.problem(
                            f"environment variable name {name!r} is empty or contains '='",
                            task,
                            line_of(var),
                        )
                        continue
                    environment[name] = ctx.attribute(var, "value", scope, task) or ""
                    if ctx.raw(var, "append", task) in ("true", "1"):
                        ctx.warn(
                            f"line {line_of(var)}, task {task!r}: append on environment "
                            f"variable {name!r} is ignored (the value replaces it)"
                        )
        fields["environment"] = environment

    def _control_flow(self, element: etree._Element, task: str) -> None:
        """`block="start|end|none"` alone is harmless (Studio writes it everywhere)."""
        for child in element:
            local = self.ctx.local(child)
            if local in _CONTROL_FLOW_ACTIONS:
                self.ctx.problem(
                    f"control flow <{local}> is not supported yet "
                    "(only plain dependencies run here)",
                    task,
                    line_of(child),
                )

    def _depends(self, element: etree._Element | None, task: str) -> list[tuple[str, int | None]]:
        refs: list[tuple[str, int | None]] = []
        if element is None:
            return refs
        for child in element:
            if self.ctx.local(child) != "task":
                continue
            ref = self.ctx.raw(child, "ref", task)
            if not ref:
                self.ctx.problem("<depends><task> without a ref", task, line_of(child))
            else:
                refs.append((ref, line_of(child)))
        return refs

    # -- executables -------------------------------------------------------------
    def _executable(
        self, elements: list[etree._Element], task: str, scope: Scope, line: int
    ) -> Executable | None:
        ctx = self.ctx
        if not elements:
            ctx.problem(
                "the task has no executable (nativeExecutable or scriptExecutable)", task, line
            )
            return None
        if len(elements) > 1:
            kinds = ", ".join(f"<{ctx.local(e)}>" for e in elements)
            ctx.problem(
                f"the task has {len(elements)} executables ({kinds}); it needs exactly one",
                task,
                line_of(elements[1]),
            )
            return None
        element = elements[0]
        kind = ctx.local(element)
        if kind == "nativeExecutable":
            return self._native(element, task, scope)
        if kind == "scriptExecutable":
            return self._script(element, "executable script", task)
        java_class = element.get("class") or "?"
        ctx.problem(
            f"javaExecutable (class {java_class}) is not supported: tasks here are native "
            "commands or bash/shell/sh scripts",
            task,
            line_of(element),
        )
        return None

    def _native(self, element: etree._Element, task: str, scope: Scope) -> NativeCommand | None:
        ctx = self.ctx
        command: etree._Element | None = None
        for child in element:
            local = ctx.local(child)
            if local == "staticCommand":
                command = child
            elif local == "dynamicCommand":
                ctx.problem(
                    "dynamicCommand (removed in schema 3.3) is not supported; use staticCommand",
                    task,
                    line_of(child),
                )
                return None
        if command is None:
            ctx.problem("<nativeExecutable> has no <staticCommand>", task, line_of(element))
            return None
        line = line_of(command)
        value = ctx.raw(command, "value", task)
        if value is None or not value.strip():
            ctx.problem("<staticCommand> has no value (the program to run)", task, line)
            return None
        if command.get("workingDir") is not None:
            ctx.warn(
                f"line {line}, task {task!r}: staticCommand workingDir is ignored "
                "(since schema 3.3); use <forkEnvironment workingDir=...>"
            )
        argv = [value]
        for child in command:
            if ctx.local(child) != "arguments":
                continue
            for arg in child:
                if ctx.local(arg) != "argument":
                    continue
                text = ctx.raw(arg, "value", task)
                if text is None:
                    ctx.problem("<argument> without a value", task, line_of(arg))
                else:
                    argv.append(text)
        for item in argv:  # substituted at run time, but a bomb is refused now
            ctx.check_substitution(item, scope, "command line", task, line)
        return NativeCommand(tuple(argv))

    def _script(self, holder: etree._Element, what: str, task: str) -> Script | None:
        ctx = self.ctx
        script = next((c for c in holder if ctx.local(c) == "script"), None)
        if script is None:
            ctx.problem(f"{what} has no <script>", task, line_of(holder))
            return None
        code: etree._Element | None = None
        for child in script:
            local = ctx.local(child)
            if local == "code":
                code = child
            elif local == "file":
                source = child.get("url") or child.get("path") or "?"
                kind = "url" if child.get("url") is not None else "file"
                ctx.problem(
                    f"{what}: a script loaded from a {kind} ({source}) is not supported; "
                    'inline it as <code language="bash">',
                    task,
                    line_of(child),
                )
                return None
        if code is None:
            ctx.problem(f"{what} has no <code>", task, line_of(script))
            return None
        language = (ctx.raw(code, "language", task) or "").strip()
        lang = language.lower()
        if lang not in SCRIPT_LANGUAGES:
            shown = repr(language) if language else "(none given)"
            ctx.problem(
                f"{what}: script language {shown} is not supported "
                f"(supported: {', '.join(SCRIPT_LANGUAGES)})",
                task,
                line_of(code),
            )
            return None
        body = text_of(code, strip=False) or ""
        if lang == "shell":
            body = body.lstrip()
            if not body.startswith("#!"):
                ctx.problem(
                    f"{what}: a 'shell' script must start with a #! line naming its interpreter",
                    task,
                    line_of(code),
                )
                return None
        return Script(lang, body)

"""ProActive job descriptor (XML) -> validated `Job`, in one walk over the tree.

The walk never stops at the first problem: it records each one with its task and line
and carries on, so the submitter sees everything wrong at once. Work is linear in the
document: no per-task XPath, name lookups through dicts, cycles found in O(V + E).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lxml import etree

from simple_scheduler.workflow import graph
from simple_scheduler.workflow.archive import is_zip, read_single_xml
from simple_scheduler.workflow.errors import Problem, WorkflowError, WorkflowTooLarge
from simple_scheduler.workflow.limits import Limits
from simple_scheduler.workflow.model import (
    ON_TASK_ERROR,
    PRIORITIES,
    Job,
    Task,
)
from simple_scheduler.workflow.tasks import TaskDraft, TaskReader
from simple_scheduler.workflow.util import Context, line_of, text_of
from simple_scheduler.workflow.values import parse_bool, parse_choice, parse_duration, parse_int
from simple_scheduler.workflow.variables import Scope
from simple_scheduler.workflow.xml import parse_tree

#: Namespaces of the schema versions we read, plus none (the seed's own format).
NAMESPACES = frozenset(
    [f"urn:proactive:jobdescriptor:3.{minor}" for minor in range(15)]
    + ["urn:proactive:jobdescriptor:dev"]
)
_DEFAULT_LIMITS = Limits()
#: Job children accepted and ignored without comment.
_QUIET_JOB_CHILDREN = frozenset(("metadata",))
#: Job children accepted and ignored, with a warning: they do not apply here.
_IGNORED_JOB_CHILDREN = frozenset(("inputSpace", "outputSpace", "globalSpace", "userSpace"))


def load_workflow_bytes(data: bytes, limits: Limits = _DEFAULT_LIMITS) -> bytes:
    """The XML document of an upload: unzipped if it is a zip, and size-checked."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"workflow data must be bytes, not {type(data).__name__}")
    data = bytes(data)
    if len(data) > limits.max_bytes:
        raise WorkflowTooLarge(
            f"the workflow is {len(data)} bytes, over the limit of {limits.max_bytes}"
        )
    if is_zip(data):
        data = read_single_xml(data, limits)
        if is_zip(data):
            raise WorkflowError("the zip archive holds another zip archive, not an XML file")
    return data


def parse_workflow(
    data: bytes,
    variables: Mapping[str, str] | None = None,
    limits: Limits = _DEFAULT_LIMITS,
) -> Job:
    """Parse and validate a job descriptor (XML bytes, or a zip holding one XML file).

    `variables` are submit-time values; they override the declared job variables.
    Raises WorkflowError, and only WorkflowError, for any invalid input.
    """
    root = parse_tree(load_workflow_bytes(data, limits), limits)
    return _JobReader(root, variables or {}, limits).read()


class _JobReader:
    """Reads the `<job>` element; task elements are delegated to `TaskReader`."""

    def __init__(self, root: etree._Element, overrides: Mapping[str, str], limits: Limits):
        self.root = root
        self.overrides = overrides
        self.limits = limits
        namespace = etree.QName(root).namespace
        self.ctx = Context(limits, f"{{{namespace}}}" if namespace else "")
        self.namespace = namespace

    def read(self) -> Job:
        ctx, root = self.ctx, self.root
        if ctx.local(root) != "job":
            raise WorkflowError(
                Problem(
                    f"the root element is <{etree.QName(root).localname}>, expected <job>",
                    None,
                    line_of(root),
                )
            )
        if self.namespace is not None and self.namespace not in NAMESPACES:
            ctx.problem(
                f"unsupported namespace {self.namespace!r}: expected "
                "urn:proactive:jobdescriptor:3.0 to 3.14, dev, or none",
                None,
                line_of(root),
            )
        sections: dict[str, etree._Element] = {}
        for child in root:
            name = ctx.local(child)
            if name in ("variables", "description", "genericInformation", "taskFlow"):
                if name in sections:
                    ctx.problem(f"<{name}> appears twice", None, line_of(child))
                sections[name] = child
            elif name in _IGNORED_JOB_CHILDREN:
                ctx.warn(f"line {line_of(child)}: <{name}> (data spaces) is ignored")
            elif name is not None and name not in _QUIET_JOB_CHILDREN:
                ctx.warn(f"line {line_of(child)}: unknown element <{name}> ignored")

        job_vars = self._variables(sections.get("variables"))
        scope = Scope(job_vars)
        attrs = self._attributes(scope)
        generic = ctx.generic_information(sections.get("genericInformation"), scope, None)
        default_walltime = self._walltime_default(generic)
        description = text_of(sections["description"]) if "description" in sections else None

        flow = sections.get("taskFlow")
        drafts: list[TaskDraft] = []
        if flow is None:
            ctx.problem("the job has no <taskFlow>", None, line_of(root))
        else:
            reader = TaskReader(ctx, job_vars, scope, default_walltime)
            for child in flow:
                name = ctx.local(child)
                if name == "task":
                    if len(drafts) >= self.limits.max_tasks:
                        raise WorkflowTooLarge(
                            Problem(
                                f"the job has more than {self.limits.max_tasks} tasks",
                                None,
                                line_of(child),
                            )
                        )
                    drafts.append(reader.read(child, len(drafts)))
                elif name is not None:
                    ctx.warn(f"line {line_of(child)}: unknown element <{name}> ignored")
            if not drafts:
                ctx.problem("<taskFlow> has no tasks", None, line_of(flow))

        tasks = self._link(drafts)
        ctx.raise_if_problems()
        return Job(
            name=attrs["name"],
            tasks=tasks,
            priority=attrs["priority"],
            on_task_error=attrs["on_task_error"],
            max_number_of_execution=attrs["max_number_of_execution"],
            task_retry_delay=attrs["task_retry_delay"],
            project_name=attrs["project_name"],
            tags=attrs["tags"],
            description=description,
            variables=job_vars,
            generic_information=generic,
            namespace=self.namespace,
            warnings=ctx.warning_list(),
        )

    def _variables(self, element: etree._Element | None) -> dict[str, str]:
        """Declared job variables, overridden by submit-time values, resolved, checked."""
        ctx = self.ctx
        declared, models, lines, _ = ctx.read_variables(element, None, allow_inherited=False)
        for name, value in self.overrides.items():
            if not isinstance(name, str) or not isinstance(value, str):
                ctx.problem(f"submitted variable {name!r} must map a string to a string")
                continue
            if not name or "=" in name or "\x00" in name or "\x00" in value:
                ctx.problem(f"submitted variable {name!r} has an invalid name or value")
                continue
            declared[name] = value
        return ctx.resolve_variables(declared, None, models, lines, None)

    def _attributes(self, scope: Scope) -> dict[str, Any]:
        ctx, root = self.ctx, self.root
        line = line_of(root)

        def get(attr: str) -> str | None:
            return ctx.attribute(root, attr, scope, None)

        result: dict[str, Any] = {}
        name = get("name")
        if name is None or not name.strip():
            ctx.problem("the job has no name (the <job name=...> attribute)", None, line)
        result["name"] = (name or "").strip()
        result["priority"] = ctx.convert(
            get("priority"), "normal", lambda v: parse_choice(v, "priority", PRIORITIES), None, line
        )
        on_error = get("onTaskError")
        legacy = get("cancelJobOnError")
        if on_error is None and legacy is not None:
            cancel = ctx.convert(
                legacy, False, lambda v: parse_bool(v, "cancelJobOnError"), None, line
            )
            on_error = "cancelJob" if cancel else None
        result["on_task_error"] = ctx.convert(
            on_error,
            "continueJobExecution",
            lambda v: _job_policy(v),
            None,
            line,
        )
        result["max_number_of_execution"] = ctx.convert(
            get("maxNumberOfExecution"),
            1,
            lambda v: parse_int(v, "maxNumberOfExecution", minimum=1),
            None,
            line,
        )
        result["task_retry_delay"] = ctx.convert(
            get("taskRetryDelay"), None, lambda v: parse_duration(v, "taskRetryDelay"), None, line
        )
        ctx.convert(
            get("restartTaskOnError"),
            None,
            lambda v: parse_choice(v, "restartTaskOnError", ("anywhere", "elsewhere")),
            None,
            line,
        )
        project = get("projectName")
        result["project_name"] = project.strip() if project and project.strip() else None
        result["tags"] = self._tags(get("tags"))
        return result

    def _tags(self, text: str | None) -> tuple[str, ...]:
        if text is None or not text.strip():
            return ()
        tags = tuple(tag.strip() for tag in text.split(","))
        if any(not tag for tag in tags):
            self.ctx.problem(
                f"tags {text!r} contain an empty tag (tags are comma-separated words)",
                None,
                line_of(self.root),
            )
        return tags

    def _walltime_default(self, generic: dict[str, str]) -> float | None:
        text = generic.get("WALLTIME")
        if text is None:
            return None
        return self.ctx.convert(
            text,
            None,
            lambda v: parse_duration(v, "WALLTIME generic information", allow_zero=False),
            None,
            line_of(self.root),
        )

    def _link(self, drafts: list[TaskDraft]) -> tuple[Task, ...]:
        """Resolve `depends` names to indexes, then refuse duplicates and cycles."""
        ctx = self.ctx
        index: dict[str, int] = {}
        for draft in drafts:
            if draft.name in index:
                first = drafts[index[draft.name]]
                ctx.problem(
                    f"duplicate task name (first defined on line {first.line})",
                    draft.name,
                    draft.line,
                )
            else:
                index[draft.name] = draft.index
        parents: list[tuple[int, ...]] = []
        for draft in drafts:
            resolved: dict[int, None] = {}
            for ref, line in draft.depends:
                parent = index.get(ref)
                if parent is None:
                    ctx.problem(f"depends on unknown task {ref!r}", draft.name, line)
                else:
                    resolved[parent] = None
            parents.append(tuple(resolved))
        for cycle in graph.find_cycles(parents, ctx.limits.max_problems):
            first = drafts[cycle[0]]
            path = " -> ".join(drafts[i].name for i in cycle)
            ctx.problem(f"dependency cycle: {path}", first.name, first.line)
        if ctx.has_problems():
            return ()
        return tuple(d.build(p) for d, p in zip(drafts, parents, strict=True))


def _job_policy(text: str) -> str:
    value = parse_choice(text, "onTaskError", (*ON_TASK_ERROR, "none"))
    return "continueJobExecution" if value == "none" else value

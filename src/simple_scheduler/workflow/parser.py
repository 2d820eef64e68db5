"""ProActive job descriptor (XML) -> validated `Job`, in one walk over the tree.

The walk never stops at the first problem: it records each one with its task and line
and carries on, so the submitter sees everything wrong at once. Work is linear in the
document: no per-task XPath, name lookups through dicts, cycles found in O(V + E).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lxml import etree

from simple_scheduler.workflow import graph, values
from simple_scheduler.workflow.archive import is_zip, read_single_xml
from simple_scheduler.workflow.context import Context, line_of, text_of
from simple_scheduler.workflow.errors import Problem, WorkflowError, WorkflowTooLarge
from simple_scheduler.workflow.limits import Limits
from simple_scheduler.workflow.model import (
    DEFAULT_ON_TASK_ERROR,
    PRIORITIES,
    Job,
    Task,
)
from simple_scheduler.workflow.taskreader import TaskDraft, TaskReader
from simple_scheduler.workflow.values import parse_bool, parse_choice, parse_duration, parse_int
from simple_scheduler.workflow.variables import Scope
from simple_scheduler.workflow.xml import (
    check_depth,
    check_parsed,
    check_prolog,
    iterparse,
    syntax_problem,
)

#: Namespaces of the schema versions we read, plus none (the seed's own format).
NAMESPACES = frozenset(
    [f"urn:proactive:jobdescriptor:3.{minor}" for minor in range(15)]
    + ["urn:proactive:jobdescriptor:dev"]
)
_DEFAULT_LIMITS = Limits()
#: Job children read by name; each may appear once.
_SECTIONS = frozenset(("variables", "description", "genericInformation", "taskFlow"))
#: Tasks read between two releases of the tree behind them.
_BATCH = 256
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
    document = load_workflow_bytes(data, limits)
    check_prolog(document)
    # The cyclic GC stays on: it is process-wide state, and parses run in worker threads
    # (toggling it around each parse could leave it off for good).
    return _JobReader(document, variables or {}, limits).read()


class _JobReader:
    """Streams the document: each task is read as soon as its element ends, then freed.

    Streaming keeps the live part of the tree small, so per-task cost stays flat from
    1,000 to 100,000 tasks instead of growing with cache misses over a huge tree. The
    job's own children (variables, genericInformation) come before `taskFlow` in the
    schema, so they are complete when the first task ends.
    """

    def __init__(self, document: bytes, overrides: Mapping[str, str], limits: Limits):
        self.document = document
        self.overrides = overrides
        self.limits = limits
        self.ctx = Context(limits, "")
        self.namespace: str | None = None
        self.root: etree._Element | None = None
        self.line: int | None = None
        self.order: tuple[int, ...] = ()
        self.flow: etree._Element | None = None
        self.sections: dict[str, etree._Element] = {}
        self.reader: TaskReader | None = None
        self.job_vars: dict[str, str] = {}
        self.attrs: dict[str, Any] = {}
        self.generic: dict[str, str] = {}

    def read(self) -> Job:
        drafts = self._stream()
        root = self.root
        assert root is not None
        ctx = self.ctx
        if self.reader is None:  # no task found: read the job's own parts now
            self._header(root)
        self._trailer(root)
        if self.flow is None:
            ctx.problem("the job has no <taskFlow>", None, line_of(root))
        elif not drafts:
            ctx.problem("<taskFlow> has no tasks", None, line_of(self.flow))
        tasks = self._link(drafts)
        ctx.raise_if_problems()
        attrs = self.attrs
        description = self.sections.get("description")
        return Job(
            name=attrs["name"],
            tasks=tasks,
            priority=attrs["priority"],
            on_task_error=attrs["on_task_error"],
            max_number_of_execution=attrs["max_number_of_execution"],
            task_retry_delay=attrs["task_retry_delay"],
            project_name=attrs["project_name"],
            tags=attrs["tags"],
            description=text_of(description) if description is not None else None,
            variables=self.job_vars,
            generic_information=self.generic,
            namespace=self.namespace,
            warnings=ctx.warning_list(),
            order=self.order,
        )

    def _stream(self) -> list[TaskDraft]:
        """Read every top-level task; the tree behind them is freed in batches."""
        limits = self.limits
        drafts: list[TaskDraft] = []
        events = iterparse(self.document)
        while (element := _next_task(events, limits)) is not None:
            parent = element.getparent()
            if self.reader is None:
                root = _job_of(parent)
                if root is None:
                    continue  # a <depends><task ref> before the first task ends
                self._start(root)
            reader = self.reader
            if parent is not self.flow or reader is None or reader.ctx.local(element) != "task":
                continue  # a <depends><task ref>, or a task outside the first taskFlow
            if len(drafts) >= limits.max_tasks:
                raise WorkflowTooLarge(
                    Problem(
                        f"the job has more than {limits.max_tasks} tasks", None, line_of(element)
                    )
                )
            drafts.append(reader.read(element, len(drafts)))
            if len(drafts) % _BATCH == 0:
                self._release(element)
        root = events.root
        if root is None:
            raise WorkflowError("not an XML document")
        check_parsed(root)
        check_depth(root, 1, limits)
        if self.root is None:
            self._check_root(root)
        return drafts

    def _start(self, root: etree._Element) -> None:
        """At the first task: the root is known and everything before taskFlow is read."""
        self._check_root(root)
        self._header(root)

    def _check_root(self, root: etree._Element) -> None:
        self.root = root
        self.line = line_of(root)
        qname = etree.QName(root)
        self.namespace = qname.namespace
        self.ctx = ctx = Context(self.limits, f"{{{qname.namespace}}}" if qname.namespace else "")
        if qname.localname != "job":
            raise WorkflowError(
                Problem(
                    f"the root element is <{qname.localname}>, expected <job>",
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

    def _header(self, root: etree._Element) -> None:
        """The job's attributes and the children before (and including) taskFlow."""
        ctx = self.ctx
        for child in root:
            name = ctx.local(child)
            if name in _SECTIONS:
                if name in self.sections:
                    ctx.problem(f"<{name}> appears twice", None, line_of(child))
                    continue
                self.sections[name] = child
                if name == "taskFlow":
                    self.flow = child
                    break
            elif name in _IGNORED_JOB_CHILDREN:
                ctx.warn(f"line {line_of(child)}: <{name}> (data spaces) is ignored")
            elif name is not None and name not in _QUIET_JOB_CHILDREN:
                ctx.warn(f"line {line_of(child)}: unknown element <{name}> ignored")
        self.job_vars = self._variables(self.sections.get("variables"))
        scope = Scope(self.job_vars)
        self.attrs = self._attributes(root, scope)
        self.generic = ctx.generic_information(self.sections.get("genericInformation"), scope, None)
        walltime = self._walltime_default(self.generic)
        self.reader = TaskReader(ctx, self.job_vars, scope, walltime)

    def _trailer(self, root: etree._Element) -> None:
        """Children after taskFlow, and stray elements left inside it."""
        ctx = self.ctx
        after = False
        for child in root:
            name = ctx.local(child)
            if child is self.flow:
                after = True
            elif after and name in _SECTIONS:
                ctx.problem(f"<{name}> appears twice or after <taskFlow>", None, line_of(child))
            elif after and name in _IGNORED_JOB_CHILDREN:
                ctx.warn(f"line {line_of(child)}: <{name}> (data spaces) is ignored")
            elif after and name is not None and name not in _QUIET_JOB_CHILDREN:
                ctx.warn(f"line {line_of(child)}: unknown element <{name}> ignored")
        if self.flow is not None:
            for child in self.flow:
                self._stray(child)

    def _stray(self, child: etree._Element) -> None:
        name = self.ctx.local(child)
        if name is not None and name != "task":
            self.ctx.warn(f"line {line_of(child)}: unknown element <{name}> ignored")

    def _release(self, element: etree._Element) -> None:
        """Check the depth of the tasks read so far, then free them (not `element`
        itself: libxml2 may still link the next sibling to it)."""
        flow = self.flow
        assert flow is not None
        check_depth(flow, 2, self.limits)
        element.clear()
        while (previous := element.getprevious()) is not None:
            self._stray(previous)
            del flow[0]

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

    def _attributes(self, root: etree._Element, scope: Scope) -> dict[str, Any]:
        ctx = self.ctx
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
            DEFAULT_ON_TASK_ERROR,
            lambda v: values.parse_on_task_error(v) or DEFAULT_ON_TASK_ERROR,
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
                self.line,
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
            self.line,
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
        order, cycles = graph.order_or_cycles(parents, ctx.limits.max_problems)
        self.order = tuple(order)
        for cycle in cycles:
            first = drafts[cycle[0]]
            path = " -> ".join(drafts[i].name for i in cycle)
            ctx.problem(f"dependency cycle: {path}", first.name, first.line)
        if ctx.has_problems():
            return ()
        return tuple(d.build(p) for d, p in zip(drafts, parents, strict=True))


def _next_task(events: Any, limits: Limits) -> etree._Element | None:
    """The next `task` element to end, None at the end; only lxml's errors are
    translated here, so a bug in the reader still surfaces as itself."""
    try:
        _, element = next(events)
    except StopIteration:
        return None
    except etree.XMLSyntaxError as err:
        raise WorkflowError(syntax_problem(err, limits)) from None
    except (etree.LxmlError, ValueError) as err:
        raise WorkflowError(f"not a readable XML document: {err}") from None
    return element if isinstance(element, etree._Element) else None


def _job_of(parent: etree._Element | None) -> etree._Element | None:
    """The root element if `parent` is a `taskFlow` directly under it, else None."""
    if parent is None or etree.QName(parent).localname != "taskFlow":
        return None
    root = parent.getparent()
    return root if root is not None and root.getparent() is None else None


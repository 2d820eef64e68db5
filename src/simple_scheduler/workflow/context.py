"""Shared reading helpers: problem collection, attribute access with limits and
substitution, and the variable and generic-information blocks used by jobs and tasks."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from lxml import etree

from simple_scheduler.workflow.errors import Problem, WorkflowError, WorkflowTooLarge
from simple_scheduler.workflow.limits import Limits
from simple_scheduler.workflow.values import parse_bool
from simple_scheduler.workflow.variables import Scope, SubstitutionTooLarge
from simple_scheduler.workflow.varmodels import check_model

T = TypeVar("T")


def line_of(element: etree._Element) -> int | None:
    """The element's line in the document (approximate past line 65,535: libxml2)."""
    line = element.sourceline
    return line if isinstance(line, int) else None


def text_of(element: etree._Element, strip: bool = True) -> str | None:
    """An element's text content (CDATA included), stripped; None when empty."""
    if len(element) == 0:
        text = element.text or ""
    else:
        text = "".join(t for t in element.itertext() if isinstance(t, str))
    if strip:
        text = text.strip()
    return text or None


class Context:
    """State of one parse: limits, the document's namespace, problems and warnings."""

    def __init__(self, limits: Limits, prefix: str) -> None:
        self.limits = limits
        self.prefix = prefix
        self._plen = len(prefix)
        self._locals: dict[str, str | None] = {}  # tag -> local name, a per-parse cache
        self._substituted = 0  # characters produced by substitution so far
        self._problems: list[Problem] = []
        self._more_problems = 0
        self._warnings: list[str] = []
        self._more_warnings = 0

    # -- reporting -------------------------------------------------------------
    def problem(self, message: str, task: str | None = None, line: int | None = None) -> None:
        if len(self._problems) < self.limits.max_problems:
            self._problems.append(Problem(message, task, line))
        else:
            self._more_problems += 1

    def warn(self, message: str) -> None:
        if len(self._warnings) < self.limits.max_problems:
            self._warnings.append(message)
        else:
            self._more_warnings += 1

    def has_problems(self) -> bool:
        return bool(self._problems)

    def raise_if_problems(self) -> None:
        if self._problems:
            problems = list(self._problems)
            if self._more_problems:
                problems.append(Problem(f"... and {self._more_problems} more problems"))
            raise WorkflowError(problems)

    def warning_list(self) -> tuple[str, ...]:
        more = [f"... and {self._more_warnings} more warnings"] if self._more_warnings else []
        return (*self._warnings, *more)

    # -- elements and attributes --------------------------------------------------
    def local(self, element: etree._Element) -> str | None:
        """The local name of an element of the job's namespace; None for any other."""
        tag = element.tag
        try:
            return self._locals[tag]
        except KeyError:
            pass
        local: str | None = None
        if isinstance(tag, str):
            if self._plen:
                local = tag[self._plen :] if tag.startswith(self.prefix) else None
            elif not tag.startswith("{"):
                local = tag
        self._locals[tag] = local
        return local

    def raw(self, element: etree._Element, name: str, task: str | None) -> str | None:
        """An attribute as written, refused past `max_attribute_length`."""
        value = element.get(name)
        if value is not None and len(value) > self.limits.max_attribute_length:
            raise WorkflowTooLarge(
                Problem(
                    f"attribute {name!r} is {len(value)} characters long, over the limit "
                    f"of {self.limits.max_attribute_length}",
                    task,
                    line_of(element),
                )
            )
        return value

    def attribute(
        self, element: etree._Element, name: str, scope: Scope, task: str | None
    ) -> str | None:
        """An attribute with variables substituted (ProActive's parse-time rule)."""
        value = self.raw(element, name, task)
        if value is None or "$" not in value:
            return value
        return self.substitute(value, scope, f"attribute {name!r}", task, line_of(element))

    def substitute(
        self, value: str, scope: Scope, what: str, task: str | None, line: int | None
    ) -> str:
        try:
            result = scope.substitute(value, self.limits.max_attribute_length)
        except SubstitutionTooLarge:
            self.problem(
                f"{what}: substituting variables makes it longer than "
                f"{self.limits.max_attribute_length} characters",
                task,
                line,
            )
            return value
        if result is not value:
            self._substituted += len(result)
            if self._substituted > self.limits.max_substituted_bytes:
                raise WorkflowTooLarge(
                    Problem(
                        "variable substitution over the whole workflow produces more than "
                        f"{self.limits.max_substituted_bytes} characters",
                        task,
                        line,
                    )
                )
        return result

    def check_substitution(
        self, value: str, scope: Scope, what: str, task: str | None, line: int | None
    ) -> None:
        """Refuse now what run-time substitution would refuse (each text once per scope)."""
        if "$" in value and value not in scope.checked:
            scope.checked.add(value)
            self.substitute(value, scope, what, task, line)

    def convert(
        self,
        text: str | None,
        default: T,
        parse: Callable[[str], T],
        task: str | None,
        line: int | None,
    ) -> T:
        """`parse(text)`, or `default` when absent; a ValueError becomes a problem."""
        if text is None:
            return default
        try:
            return parse(text)
        except ValueError as err:
            self.problem(str(err), task, line)
            return default

    # -- blocks shared by jobs and tasks ------------------------------------------
    def generic_information(
        self, element: etree._Element | None, scope: Scope, task: str | None
    ) -> dict[str, str]:
        """`<genericInformation><info name value/>`, values substituted."""
        info: dict[str, str] = {}
        if element is None:
            return info
        for child in element:
            if self.local(child) != "info":
                continue
            name = self.raw(child, "name", task)
            value = self.attribute(child, "value", scope, task)
            if not name:
                self.problem("generic information <info> without a name", task, line_of(child))
                continue
            info[name] = value or ""
        return info

    def read_variables(
        self, element: etree._Element | None, task: str | None, allow_inherited: bool
    ) -> tuple[dict[str, str], dict[str, str], dict[str, int | None], set[str]]:
        """Declared variables as written: (values, models, lines, inherited names)."""
        values: dict[str, str] = {}
        models: dict[str, str] = {}
        lines: dict[str, int | None] = {}
        inherited: set[str] = set()
        if element is None:
            return values, models, lines, inherited
        for child in element:
            if self.local(child) != "variable":
                continue
            line = line_of(child)
            name = self.raw(child, "name", task)
            if not name or "=" in name:
                self.problem(f"variable name {name!r} is empty or contains '='", task, line)
                continue
            if name in values:
                self.problem(f"variable {name!r} is declared twice", task, line)
            values[name] = self.raw(child, "value", task) or ""
            lines[name] = line
            model = self.raw(child, "model", task)
            if model:
                models[name] = model
            flag = self.raw(child, "inherited", task)
            if (
                flag is not None
                and allow_inherited
                and self.convert(flag, False, _inherited_flag, task, line)
            ):
                inherited.add(name)
        return values, models, lines, inherited

    def resolve_variables(
        self,
        declared: dict[str, str],
        outer: dict[str, str] | None,
        models: dict[str, str],
        lines: dict[str, int | None],
        task: str | None,
    ) -> dict[str, str]:
        """Substitute variables into each other, then check each value's model."""
        scope = Scope({**outer, **declared} if outer else declared)
        resolved: dict[str, str] = {}
        for name, value in declared.items():
            line = lines.get(name)
            resolved[name] = self.substitute(value, scope, f"variable {name!r}", task, line)
        for name, model in models.items():
            if name in resolved:
                why = check_model(model, resolved[name])
                if why is not None:
                    self.problem(
                        f"variable {name!r} fails its model {model}: {why}", task, lines.get(name)
                    )
        return resolved


def _inherited_flag(text: str) -> bool:
    return parse_bool(text, "inherited")

"""What the submit page shows before anything is stored: the workflow's variables as a
form, and every problem with its task and line.

The parsed `Job` keeps only final variable values; the form also needs each variable's
model, description, group and the advanced/hidden flags, so the job's own `<variables>`
are read once more here, as written (with the same hardened parser settings). The verdict
on validity is always `parse_workflow`'s, with the values the user typed.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lxml import etree

from simple_scheduler.workflow import Limits, WorkflowError, load_workflow_bytes, parse_workflow
from simple_scheduler.workflow.context import line_of
from simple_scheduler.workflow.varmodels import check_model
from simple_scheduler.workflow.xml import check_prolog, parser_options

_TRUE = ("true", "1", "yes")


@dataclass(frozen=True, slots=True)
class DeclaredVariable:
    """A job variable as the workflow declares it."""

    name: str
    value: str
    model: str | None
    description: str | None
    group: str | None
    advanced: bool
    hidden: bool
    line: int | None


def _local(tag: object) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def declared_variables(document: bytes) -> list[DeclaredVariable]:
    """The job-level `<variables>` in document order; stops reading at `taskFlow`, so a
    100,000-task workflow costs no more than a small one. Raises XMLSyntaxError."""
    found: list[DeclaredVariable] = []
    depth = 0
    events = etree.iterparse(io.BytesIO(document), events=("start", "end"), **parser_options())
    for event, element in events:
        if event == "start":
            depth += 1
            if depth == 2 and _local(element.tag) == "taskFlow":
                break
            continue
        depth -= 1
        if depth == 1 and _local(element.tag) == "variables":
            found.extend(_variable(child) for child in element if _local(child.tag) == "variable")
            break
    return [v for v in found if v.name]


def _variable(element: etree._Element) -> DeclaredVariable:
    def attr(name: str) -> str | None:
        value = element.get(name)
        return None if value is None else str(value)

    return DeclaredVariable(
        name=attr("name") or "",
        value=attr("value") or "",
        model=attr("model") or None,
        description=attr("description") or None,
        group=attr("group") or None,
        advanced=(attr("advanced") or "").strip().lower() in _TRUE,
        hidden=(attr("hidden") or "").strip().lower() in _TRUE,
        line=line_of(element),
    )


def inspect_workflow(data: bytes, overrides: Mapping[str, str], limits: Limits) -> dict[str, Any]:
    """The submit form's model: variables (with the value that would be used and why it
    fails its model, if it does), problems, warnings, and whether submitting would work.

    Raises WorkflowError only for an upload that is not a workflow document at all (too
    large, a zip without one XML file); everything else is reported as problems.
    """
    document = load_workflow_bytes(data, limits)
    check_prolog(document)
    try:
        declared = declared_variables(document)
    except etree.XMLSyntaxError:
        declared = []  # parse_workflow reports the syntax error with its line
    name: str | None = None
    warnings: list[str] = []
    resolved: Mapping[str, str] = {}
    try:
        job = parse_workflow(document, overrides, limits)
    except WorkflowError as exc:
        problems = [{"message": p.message, "task": p.task, "line": p.line} for p in exc.problems]
    else:
        problems = []
        name = job.name
        warnings = list(job.warnings)
        resolved = job.variables
    variables = []
    for var in declared:
        value = overrides.get(var.name, var.value)
        checked = resolved.get(var.name, value)
        error = check_model(var.model, checked) if var.model and "$" not in checked else None
        variables.append(
            {
                "name": var.name,
                "value": value,
                "default": var.value,
                "resolved": resolved.get(var.name),
                "model": var.model,
                "description": var.description,
                "group": var.group,
                "advanced": var.advanced,
                "hidden": var.hidden,
                "line": var.line,
                "error": error,
            }
        )
    return {
        "valid": not problems,
        "name": name,
        "variables": variables,
        "problems": problems,
        "warnings": warnings,
    }

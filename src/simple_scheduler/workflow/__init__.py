"""ProActive job descriptors (XML) into a validated, typed job model.

`parse_workflow` is the entry point; everything it raises for bad input is a
`WorkflowError` listing every problem found, each with its task and line.
"""

from simple_scheduler.workflow.errors import Problem, WorkflowError, WorkflowTooLarge
from simple_scheduler.workflow.graph import find_cycles, topological_order
from simple_scheduler.workflow.limits import Limits
from simple_scheduler.workflow.model import (
    ON_TASK_ERROR,
    PRIORITIES,
    SCRIPT_LANGUAGES,
    Executable,
    Job,
    NativeCommand,
    Script,
    Task,
)
from simple_scheduler.workflow.parser import NAMESPACES, load_workflow_bytes, parse_workflow
from simple_scheduler.workflow.variables import (
    SYSTEM_VARIABLES,
    SubstitutionTooLarge,
    script_environment,
    substitute,
    system_variables,
    task_id,
)

__all__ = [
    "NAMESPACES",
    "ON_TASK_ERROR",
    "PRIORITIES",
    "SCRIPT_LANGUAGES",
    "SYSTEM_VARIABLES",
    "Executable",
    "Job",
    "Limits",
    "NativeCommand",
    "Problem",
    "Script",
    "SubstitutionTooLarge",
    "Task",
    "WorkflowError",
    "WorkflowTooLarge",
    "find_cycles",
    "load_workflow_bytes",
    "parse_workflow",
    "script_environment",
    "substitute",
    "system_variables",
    "task_id",
    "topological_order",
]

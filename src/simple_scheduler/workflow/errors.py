"""The one exception type the parser raises, carrying every problem found.

A submitter fixes a workflow faster when told everything wrong with it at once, so the
parser collects `Problem`s instead of stopping at the first, and each names where it is.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a workflow: what, in which task, on which line of the XML."""

    message: str
    task: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = []
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.task is not None:
            where.append(f"task {self.task!r}")
        return f"{', '.join(where)}: {self.message}" if where else self.message


class WorkflowError(Exception):
    """An invalid workflow; `problems` lists all that one pass found (never empty)."""

    def __init__(self, problems: Iterable[Problem] | Problem | str) -> None:
        if isinstance(problems, str):
            problems = [Problem(problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = list(problems) or [Problem("invalid workflow")]
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


class WorkflowTooLarge(WorkflowError):
    """The input breaks a size limit; the REST layer answers 413 rather than 422."""

"""Attribute value parsers. Each returns the value or raises ValueError with a message
fit to show the submitter (the parser adds the task and line)."""

from __future__ import annotations

import re

from simple_scheduler.workflow.model import ON_TASK_ERROR

_INT = re.compile(r"[+-]?[0-9]+")
_DURATION = re.compile(r"([0-9]+)(?::([0-9]{1,2}))?(?::([0-9]{1,2}))?")
_TRUE = frozenset(("true", "1"))
_FALSE = frozenset(("false", "0"))
#: Java's int range, which ProActive's counters use.
INT_MAX = 2**31 - 1


def parse_int(text: str, what: str, minimum: int = 0, maximum: int = INT_MAX) -> int:
    """A decimal integer in [minimum, maximum] (no spaces, no `_`, ASCII digits only)."""
    value = text.strip()
    if not _INT.fullmatch(value):
        raise ValueError(f"{what} must be an integer, not {text!r}")
    number = int(value)
    if not minimum <= number <= maximum:
        raise ValueError(f"{what} must be between {minimum} and {maximum}, not {number}")
    return number


def parse_bool(text: str, what: str) -> bool:
    """xsd:boolean: true/false/1/0 (case-insensitive, as ProActive reads it)."""
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{what} must be true or false, not {text!r}")


def parse_duration(text: str, what: str, allow_zero: bool = True) -> float:
    """ProActive's duration: `ss`, `mm:ss` or `hh:mm:ss`, in seconds.

    The leading field may be any size (`90` is 90 s); later fields are below 60.
    """
    value = text.strip()
    match = _DURATION.fullmatch(value)
    if not match:
        raise ValueError(f"{what} must be a duration ss, mm:ss or hh:mm:ss, not {text!r}")
    fields = [int(f) for f in match.groups() if f is not None]
    if any(f >= 60 for f in fields[1:]):
        raise ValueError(f"{what}: minutes and seconds must be below 60 in {text!r}")
    seconds = 0
    for f in fields:
        seconds = seconds * 60 + f
    if seconds == 0 and not allow_zero:
        raise ValueError(f"{what} must be longer than 0 seconds")
    return float(seconds)


def parse_choice(text: str, what: str, choices: tuple[str, ...]) -> str:
    """One of `choices`, matched case-insensitively and returned in canonical spelling."""
    value = text.strip().lower()
    for choice in choices:
        if choice.lower() == value:
            return choice
    raise ValueError(f"{what} must be one of {', '.join(choices)}; not {text!r}")


def parse_on_task_error(text: str) -> str | None:
    """An `onTaskError` value; None for "none": a task then inherits the job's policy,
    a job takes the default."""
    value = parse_choice(text, "onTaskError", (*ON_TASK_ERROR, "none"))
    return None if value == "none" else value

"""Variable models (`model="PA:INTEGER[0,10]"`): ProActive rejects a submission whose
variable value fails its model, so we check them at parse time, after substitution.

Models other than those below (PA:URL, PA:JSON, PA:CREDENTIAL, ...) are accepted as text.
Model names are case-insensitive, as the catalog's `PA:Integer` shows.
"""

from __future__ import annotations

import math
import re

_MODEL = re.compile(r"\s*PA:([A-Za-z_]+)\s*(.*)", re.DOTALL)
_INT = re.compile(r"[+-]?[0-9]+")
# Patterns here must stay linear: values come from the submitter and may be 128 KiB long.
_FLOAT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[fFdD]?")
#: Longest PA:REGEXP pattern we analyse and run; longer ones are accepted unchecked.
MAX_CHECKED_PATTERN = 1000
#: Rough bound on backtracking steps we allow one PA:REGEXP check.
_REGEXP_WORK = 10**7
_NESTED_QUANTIFIER = re.compile(r"[*+}|][^()]*\)[*+{]|\\[1-9]")
_BITS = {"INTEGER": 32, "LONG": 64}


def check_model(model: str, value: str) -> str | None:
    """Why `value` fails `model`, or None if it passes (or the model is not checked)."""
    match = _MODEL.fullmatch(model)
    if not match:
        return None
    kind, rest = match.group(1).upper(), match.group(2).strip()
    if kind in _BITS:
        return _check_number(kind, rest, value, integral=True)
    if kind in ("FLOAT", "DOUBLE"):
        return _check_number(kind, rest, value, integral=False)
    if kind == "BOOLEAN":
        ok = value.strip().lower() in ("true", "false")
        return None if ok else f"{value!r} is not a boolean (true or false)"
    if kind == "NOT_EMPTY_STRING":
        return None if value.strip() else "the value must not be empty"
    if kind == "LIST":
        return _check_list(rest, value)
    if kind == "REGEXP":
        return _check_regexp(rest, value)
    return None


def _to_float(text: str) -> float:
    return float(text.rstrip("fFdD"))


def _check_number(kind: str, rest: str, value: str, integral: bool) -> str | None:
    text = value.strip()
    if not (_INT if integral else _FLOAT).fullmatch(text):
        return f"{value!r} is not a valid {kind.lower()}"
    number = int(text) if integral else _to_float(text)
    bits = _BITS.get(kind)
    if bits is not None and not -(2 ** (bits - 1)) <= number < 2 ** (bits - 1):
        return f"{value!r} is out of range for a {kind.lower()}"
    if not rest:
        return None
    parts = rest[1:-1].split(",") if rest.startswith("[") and rest.endswith("]") else []
    if len(parts) != 2:
        return f"invalid model range {rest!r} (expected [min,max])"
    low_text, high_text = parts[0].strip(), parts[1].strip()
    try:
        low = _to_float(low_text) if low_text else None
        high = _to_float(high_text) if high_text else None
    except ValueError:
        return f"invalid model range {rest!r} (expected [min,max])"
    if (low is not None and number < low) or (high is not None and number > high):
        return f"{value!r} is outside the range {rest}"
    return None


def _check_list(rest: str, value: str) -> str | None:
    if not (rest.startswith("(") and rest.endswith(")")):
        return f"invalid list model {rest!r} (expected PA:LIST(a,b,...))"
    choices = [c.strip() for c in rest[1:-1].split(",")]
    if value.strip() in choices:
        return None
    return f"{value!r} is not one of {', '.join(choices)}"


def _check_regexp(rest: str, value: str) -> str | None:
    if not (rest.startswith("(") and rest.endswith(")")):
        return f"invalid regexp model {rest!r} (expected PA:REGEXP(pattern))"
    pattern_text = rest[1:-1]
    if not _safe_to_run(pattern_text, value):
        return None
    try:
        pattern = re.compile(pattern_text)
    except re.error as err:
        return f"invalid regular expression in model: {err}"
    if pattern.fullmatch(value):
        return None
    return f"{value!r} does not match the regular expression {pattern_text!r}"


def _safe_to_run(pattern: str, value: str) -> bool:
    """Whether matching is cheap enough to run in the web process.

    Python's `re` backtracks and has no timeout, and the submitter picks both the
    pattern and the value: `(a+)+$` is exponential, `(a+)(a+)...` polynomial of degree
    the number of quantifiers. So a pattern runs only if it has no nested quantifier
    and len(value) ** (quantifiers + 1) stays small; otherwise it is accepted unchecked.
    """
    if len(pattern) > MAX_CHECKED_PATTERN or _NESTED_QUANTIFIER.search(pattern):
        return False
    quantifiers = sum(pattern.count(q) for q in "*+?{")
    return (quantifiers + 1) * math.log(max(len(value), 2)) <= math.log(_REGEXP_WORK)

"""JSON from users, read within size and nesting limits (any process role may import it).

`json.loads` recurses once per nesting level: 100,000 `[` raise RecursionError, which
is no `ValueError`, so a handler would answer 500. The nesting is measured first, by
a scan that does not recurse (strings removed by one regular expression, then a count of
the brackets left), and the text is parsed only when it is within both limits.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

#: Deeper than any document a client of ours sends (variables are one flat object).
MAX_DEPTH = 32
#: Larger than any variables part or credential a client sends.
MAX_BYTES = 1024 * 1024

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")
_OPENING = frozenset("[{")


class JsonTooLarge(ValueError):
    """The text is over the size or nesting limit; the message says which."""


def nesting_depth(text: str) -> int:
    """How deeply arrays and objects nest in `text` (0: a scalar), without recursing."""
    brackets = _BRACKET.findall(_STRING.sub("", text))
    if not brackets:
        return 0
    return max(0, *accumulate(1 if b in _OPENING else -1 for b in brackets))


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON value")


def loads_bounded(text: str, *, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """`json.loads` (NaN and Infinity refused) once the text is within the limits.

    Raises `JsonTooLarge` over a limit, `ValueError` for text that is not JSON.
    """
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise JsonTooLarge(f"{size} bytes, over the limit of {max_bytes}")
    depth = nesting_depth(text)
    if depth > max_depth:
        raise JsonTooLarge(f"nested {depth} levels deep, over the limit of {max_depth}")
    return json.loads(text, parse_constant=_no_constant)

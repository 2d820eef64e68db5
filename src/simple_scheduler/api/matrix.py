"""JAX-RS matrix parameters (`/submit;VAR=a;B=c`), which ProActive uses for variables."""

from __future__ import annotations

from urllib.parse import unquote

from werkzeug.routing import BaseConverter


class MatrixConverter(BaseConverter):
    """Matches an optional `;k=v;...` suffix glued to the previous path segment."""

    regex = r"(?:;[^/]*)?"
    part_isolating = False

    def to_python(self, value: str) -> dict[str, str]:
        return parse_matrix(value)

    def to_url(self, value: object) -> str:
        if isinstance(value, dict):
            return "".join(f";{k}={v}" for k, v in value.items())
        return str(value)


def parse_matrix(text: str) -> dict[str, str]:
    """`;A=1;B=x%20y` -> {"A": "1", "B": "x y"}; a bare `;A` means an empty value."""
    out: dict[str, str] = {}
    for item in text.split(";"):
        if not item:
            continue
        name, _, value = item.partition("=")
        out[unquote(name)] = unquote(value)
    return out

"""Turning untrusted bytes into an lxml tree, safely and within limits.

No DTD is loaded, no entity is expanded, nothing is fetched from the network, and a
DOCTYPE is refused outright: a job descriptor never needs one, and refusing it is the
simplest complete defence against billion-laughs and XXE files.
"""

from __future__ import annotations

import io
import re
from typing import Any

from lxml import etree

from simple_scheduler.workflow.errors import Problem, WorkflowError, WorkflowTooLarge
from simple_scheduler.workflow.limits import Limits

#: What may precede a DOCTYPE: BOM, XML declaration, whitespace, comments, PIs.
_PROLOG = re.compile(r"\ufeff?(?:\s+|<\?.*?\?>|<!--.*?-->)*", re.DOTALL)
_PROLOG_BYTES = re.compile(rb"(?:\xef\xbb\xbf)?(?:\s+|<\?.*?\?>|<!--.*?-->)*", re.DOTALL)


def parser_options() -> dict[str, bool]:
    """lxml parser settings for untrusted input (used for every parse)."""
    return {
        "resolve_entities": False,
        "no_network": True,
        "load_dtd": False,
        "dtd_validation": False,
        "huge_tree": False,
        "remove_comments": True,
        "remove_pis": True,
        "collect_ids": False,
    }


def iterparse(data: bytes) -> Any:
    """Events for the end of each `task` element, in any namespace.

    A fresh parser per document: lxml parsers must not be shared across threads. The
    thread's error log is cleared first so a parse error reports this document's cause.
    """
    etree.clear_error_log()
    return etree.iterparse(io.BytesIO(data), events=("end",), tag="{*}task", **parser_options())


def _has_doctype(data: bytes) -> bool:
    """Whether a DOCTYPE opens the document (one inside CDATA text is harmless).

    Checked on the raw bytes so a hostile DTD never reaches libxml2; the tree's
    docinfo is checked again after parsing for encodings this does not decode.
    """
    boms = (b"\xff\xfe", b"\xfe\xff")
    if data[:2] in boms or b"\x00" in data[:4]:
        if data[:2] in boms:
            codec = "utf-16"
        else:
            codec = "utf-16-le" if data[1:2] == b"\x00" else "utf-16-be"
        text = data.decode(codec, errors="replace")
        at = text.find("<!DOCTYPE")
        match = _PROLOG.match(text, 0, max(at, 0))
        return at >= 0 and match is not None and match.end() == at
    at = data.find(b"<!DOCTYPE")
    raw = _PROLOG_BYTES.match(data, 0, max(at, 0))
    return at >= 0 and raw is not None and raw.end() == at


def check_prolog(data: bytes) -> None:
    """Refuse empty documents and DOCTYPEs before libxml2 sees them."""
    if not data or data.isspace():  # isspace: no copy of a large document
        raise WorkflowError("the workflow is empty")
    if _has_doctype(data):
        raise WorkflowError(DOCTYPE_MESSAGE)


def check_parsed(root: etree._Element) -> None:
    """After parsing: a DOCTYPE in an encoding the prolog check does not decode."""
    if getattr(root.getroottree().docinfo, "doctype", None):
        raise WorkflowError(DOCTYPE_MESSAGE)


DOCTYPE_MESSAGE = (
    "DOCTYPE declarations are not allowed in a job descriptor "
    "(no DTDs, no entities: this also refuses billion-laughs and XXE files)"
)


def syntax_problem(err: etree.XMLSyntaxError, limits: Limits) -> Problem:
    """A readable problem for a parse error: libxml2's first error is the cause (the
    exception's own text can be a generic "no element found" when streaming)."""
    log: Any = err.error_log  # iterable of entries; the stubs do not say so
    entries = list(log) if log is not None else []
    if entries:
        message, line = str(entries[0].message), entries[0].line or None
    else:
        message, line = str(err.msg or err), err.lineno or None
    if "Excessive depth" in message:
        return Problem(f"elements nest deeper than the limit of {limits.max_depth}", None, line)
    if "ntity" in message:
        return Problem(f"entities are not allowed in a job descriptor ({message})", None, line)
    # lxml may append ", line N, column M", which the Problem already says.
    message = re.sub(r", line \d+, column \d+$", "", message)
    return Problem(f"not well-formed XML: {message}", None, line)


def check_depth(element: etree._Element, depth: int, limits: Limits) -> None:
    """Refuse elements nested deeper than `max_depth` below `element` (itself at `depth`),
    with one XPath evaluation in C over the subtree."""
    steps = limits.max_depth + 1 - depth
    if steps < 1:
        number = element.sourceline
        raise WorkflowTooLarge(
            Problem(
                f"elements nest deeper than the limit of {limits.max_depth}",
                None,
                number if isinstance(number, int) else None,
            )
        )
    path = "/".join(["*"] * steps)
    if not element.xpath(f"boolean({path})"):
        return
    found = element.xpath(f"({path})[1]")
    line = None
    if isinstance(found, list) and found and isinstance(found[0], etree._Element):
        number = found[0].sourceline
        line = number if isinstance(number, int) else None
    raise WorkflowTooLarge(
        Problem(f"elements nest deeper than the limit of {limits.max_depth}", None, line)
    )

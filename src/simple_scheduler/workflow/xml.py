"""Turning untrusted bytes into an lxml tree, safely and within limits.

No DTD is loaded, no entity is expanded, nothing is fetched from the network, and a
DOCTYPE is refused outright: a job descriptor never needs one, and refusing it is the
simplest complete defence against billion-laughs and XXE files.
"""

from __future__ import annotations

import re

from lxml import etree

from simple_scheduler.workflow.errors import Problem, WorkflowError, WorkflowTooLarge
from simple_scheduler.workflow.limits import Limits

#: What may precede a DOCTYPE: BOM, XML declaration, whitespace, comments, PIs.
_PROLOG = re.compile(r"\ufeff?(?:\s+|<\?.*?\?>|<!--.*?-->)*", re.DOTALL)
_PROLOG_BYTES = re.compile(rb"(?:\xef\xbb\xbf)?(?:\s+|<\?.*?\?>|<!--.*?-->)*", re.DOTALL)


def _make_parser() -> etree.XMLParser:
    # A fresh parser per document: lxml parsers must not be shared across threads.
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        collect_ids=False,
    )


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


def parse_tree(data: bytes, limits: Limits) -> etree._Element:
    """The root element of `data`; WorkflowError if it is not safe, well-formed XML."""
    if not data.strip():
        raise WorkflowError("the workflow is empty")
    if _has_doctype(data):
        raise WorkflowError(_DOCTYPE_MESSAGE)
    try:
        root = etree.fromstring(data, _make_parser())
    except etree.XMLSyntaxError as err:
        raise WorkflowError(_syntax_problem(err, limits)) from None
    except (etree.LxmlError, ValueError) as err:
        raise WorkflowError(f"not a readable XML document: {err}") from None
    if root is None:
        raise WorkflowError("not an XML document")
    if getattr(root.getroottree().docinfo, "doctype", None):
        raise WorkflowError(_DOCTYPE_MESSAGE)
    _check_depth(root, limits)
    return root


_DOCTYPE_MESSAGE = (
    "DOCTYPE declarations are not allowed in a job descriptor "
    "(no DTDs, no entities: this also refuses billion-laughs and XXE files)"
)


def _syntax_problem(err: etree.XMLSyntaxError, limits: Limits) -> Problem:
    message = str(err.msg or err)
    line = err.lineno or None
    if "Excessive depth" in message:
        return Problem(f"elements nest deeper than the limit of {limits.max_depth}", None, line)
    if "entity" in message.lower() or "Entity" in message:
        return Problem(f"entities are not allowed in a job descriptor ({message})", None, line)
    # lxml appends ", line N, column M" which the Problem already says.
    message = re.sub(r", line \d+, column \d+$", "", message)
    return Problem(f"not well-formed XML: {message}", None, line)


def _check_depth(root: etree._Element, limits: Limits) -> None:
    """Refuse documents nested deeper than `max_depth`, with one pass in C (XPath)."""
    probe = "boolean(/" + "/".join(["*"] * (limits.max_depth + 1)) + ")"
    if root.xpath(probe):
        deepest = root.xpath("/" + "/".join(["*"] * (limits.max_depth + 1)))
        line = None
        if isinstance(deepest, list) and deepest and isinstance(deepest[0], etree._Element):
            found = deepest[0].sourceline
            line = found if isinstance(found, int) else None
        raise WorkflowTooLarge(
            Problem(f"elements nest deeper than the limit of {limits.max_depth}", None, line)
        )

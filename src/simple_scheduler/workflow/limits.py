"""Bounds on what a submitted workflow may cost to read.

Every limit is checked before the work it guards (size before parsing, declared zip
sizes before inflating), so hostile input is rejected in time proportional to the limit.
"""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """Configurable parser limits; the defaults suit a shared server."""

    #: Size of the XML document (after unzipping), in bytes.
    max_bytes: int = 10 * MIB
    #: Element nesting depth. Real workflows need 6; libxml2 itself stops at 256.
    max_depth: int = 32
    #: Tasks in one job.
    max_tasks: int = 100_000
    #: Length of an attribute value, and of one value after variable substitution.
    #: 128 KiB is Linux's limit on a single argv element (MAX_ARG_STRLEN).
    max_attribute_length: int = 128 * 1024
    #: Characters variable substitution may produce over the whole workflow: each value is
    #: capped above, but one large variable referenced 100,000 times would not be.
    max_substituted_bytes: int = 64 * MIB
    #: Problems kept in one WorkflowError; the rest are counted, not listed.
    max_problems: int = 100
    #: Entries in an uploaded zip archive (directories included).
    max_zip_members: int = 16
    #: Sum of the declared uncompressed sizes of the archive's members.
    max_zip_total_bytes: int = 16 * MIB
    #: Uncompressed / compressed size of the XML member, checked past 1 MiB.
    max_zip_ratio: float = 200.0

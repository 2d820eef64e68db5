"""Zip uploads: the seed's clients send the job XML inside a zip archive.

The archive is read in memory and never extracted to disk. Declared sizes are checked
before inflating, and the member is read with a bounded read, because a zip's headers
can lie about sizes (zip bombs).
"""

from __future__ import annotations

import io
import zipfile
import zlib

from simple_scheduler.workflow.errors import Problem, WorkflowError, WorkflowTooLarge
from simple_scheduler.workflow.limits import MIB, Limits

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


def is_zip(data: bytes) -> bool:
    """Whether `data` starts like a zip archive (a local header or an empty archive)."""
    return data[:4] in ZIP_MAGIC


def _skipped(info: zipfile.ZipInfo) -> bool:
    """Directories and macOS resource forks are not candidates for the job file."""
    return info.is_dir() or info.filename.startswith("__MACOSX/")


def read_single_xml(data: bytes, limits: Limits) -> bytes:
    """The bytes of the archive's one file; WorkflowError for anything else."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            if len(infos) > limits.max_zip_members:
                raise WorkflowTooLarge(
                    f"zip archive has {len(infos)} entries; at most "
                    f"{limits.max_zip_members} are accepted (it should hold one XML file)"
                )
            total = sum(i.file_size for i in infos)
            if total > limits.max_zip_total_bytes:
                raise WorkflowTooLarge(
                    f"zip archive would inflate to {total} bytes, over the limit of "
                    f"{limits.max_zip_total_bytes}"
                )
            files = [i for i in infos if not _skipped(i)]
            if len(files) != 1:
                names = ", ".join(repr(i.filename) for i in files[:5]) or "none"
                raise WorkflowError(
                    f"zip archive must hold exactly one XML file, found {len(files)}: {names}"
                )
            return _read_member(archive, files[0], limits)
    except WorkflowError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError) as err:
        raise WorkflowError(f"not a readable zip archive: {err}") from None
    except (RuntimeError, NotImplementedError, ValueError, OSError) as err:
        # Encrypted members, unsupported compression methods, corrupt headers.
        raise WorkflowError(f"cannot read the zip archive: {err}") from None


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limits: Limits) -> bytes:
    name = info.filename
    if info.file_size > limits.max_bytes:
        raise WorkflowTooLarge(
            f"{name!r} in the zip archive is {info.file_size} bytes, over the limit of "
            f"{limits.max_bytes}"
        )
    _check_ratio(name, info.file_size, info.compress_size, limits)
    with archive.open(info) as member:
        content = member.read(limits.max_bytes + 1)
    if len(content) > limits.max_bytes:
        raise WorkflowTooLarge(
            Problem(f"{name!r} in the zip archive inflates past {limits.max_bytes} bytes")
        )
    _check_ratio(name, len(content), info.compress_size, limits)
    return content


def _check_ratio(name: str, size: int, compressed: int, limits: Limits) -> None:
    """Past 1 MiB, refuse members that inflate more than `max_zip_ratio` times."""
    if size > MIB and size > limits.max_zip_ratio * max(compressed, 1):
        raise WorkflowTooLarge(
            f"{name!r} in the zip archive inflates {size / max(compressed, 1):.0f} times "
            f"(limit {limits.max_zip_ratio:.0f}): refused as a possible zip bomb"
        )

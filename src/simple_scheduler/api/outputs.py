"""Reading task output by byte offset: the pieces the log and result endpoints share.

Sizes are taken once per request, so a growing file gives a consistent answer; bodies are
streamed in chunks, so a 10 GB log never sits in memory. The files are found through the
execution seam (`Scheduler.files`), never by building paths here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from quart import Response

from simple_scheduler.api.context import services
from simple_scheduler.execution.backend import OutputKind, TaskFiles
from simple_scheduler.store import jobstore
from simple_scheduler.store.db import Row

CHUNK = 64 * 1024
STREAMS: dict[str, tuple[OutputKind, ...]] = {
    "out": ("stdout",),
    "err": ("stderr",),
    "all": ("stdout", "stderr"),
}
TEXT = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class Segment:
    path: Path
    start: int  # first byte to send
    end: int  # size when the request was made


def task_output_files(
    job_id: int, task: Row, kinds: Sequence[OutputKind], files: TaskFiles | None = None
) -> list[Path]:
    """The task's output files over its attempts (1..attempts), through the seam
    (`files`: the scheduler's, given where no request context is, e.g. a stream)."""
    files = files or services().scheduler.files
    index = int(task["task_index"])
    return [
        Path(files.output_path(job_id, index, attempt, kind))
        for attempt in range(1, int(task["attempts"]) + 1)
        for kind in kinds
    ]


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def from_offset(paths: Iterable[Path], offset: int) -> tuple[list[Segment], int]:
    """Segments for the bytes after `offset` of the concatenation, and its total size."""
    segments: list[Segment] = []
    position = 0
    for path in paths:
        size = file_size(path)
        if size and position + size > offset:
            segments.append(Segment(path, max(0, offset - position), size))
        position += size
    return segments, position


def read_segments(segments: Sequence[Segment]) -> bytes:
    """The segments' bytes in one piece (blocking: for worker threads)."""
    parts: list[bytes] = []
    for segment in segments:
        try:
            with segment.path.open("rb") as f:
                f.seek(segment.start)
                parts.append(f.read(segment.end - segment.start))
        except FileNotFoundError:
            continue  # removed meanwhile (job deleted)
    return b"".join(parts)


async def chunks(segments: Sequence[Segment]) -> AsyncIterator[bytes]:
    for segment in segments:
        try:
            with segment.path.open("rb") as f:
                f.seek(segment.start)
                remaining = segment.end - segment.start
                while remaining > 0:
                    data = f.read(min(CHUNK, remaining))
                    if not data:
                        break
                    remaining -= len(data)
                    yield data
        except FileNotFoundError:
            continue  # removed meanwhile (job deleted): what was sent stays valid


#: Output up to this size is read at once and sent with its length, in one write; larger
#: output is streamed a CHUNK at a time. A read of a few KiB from the page cache costs less
#: than the extra loop turns and writes of a chunked answer.
INLINE_BYTES = CHUNK


def stream(segments: Sequence[Segment], next_offset: int) -> Response:
    if sum(s.end - s.start for s in segments) <= INLINE_BYTES:
        response = Response(read_segments(segments), content_type=TEXT)
    else:
        response = Response(chunks(segments), content_type=TEXT)
    response.headers["X-Next-Offset"] = str(next_offset)
    return response


#: Per stream in a JSON answer that carries outputs (ProActive caps its full logs at 10 MB).
MAX_OUTPUT_BYTES = 10 * 1024 * 1024


def read_tail(paths: Sequence[Path], endpoint: str) -> str:
    """The concatenated files as text, their last MAX_OUTPUT_BYTES when longer, after a
    line saying what was left out and where it is (`endpoint`). Blocking: for worker
    threads; a JSON answer never holds more of a log than that."""
    total = sum(file_size(p) for p in paths)
    start = max(0, total - MAX_OUTPUT_BYTES)
    segments, _ = from_offset(paths, start)
    text = read_segments(segments).decode("utf-8", "replace")
    if start:
        text = f"[first {start} bytes omitted: {endpoint} has them all]\n" + text
    return text


def task_log(job: Row, task: Row, kinds: Sequence[OutputKind], offset: int) -> Response:
    """One task's streams over its attempts, from byte `offset` of their concatenation."""
    segments, total = from_offset(task_output_files(int(job["id"]), task, kinds), offset)
    return stream(segments, max(offset, total))


async def job_paths(job: Row, kinds: Sequence[OutputKind]) -> list[Path]:
    """Every task's output files, in task order."""
    job_id = int(job["id"])
    tasks = await jobstore.list_tasks(services().store, job_id, 0, int(job["total_tasks"]))
    files = services().scheduler.files
    # 100,000 tasks make 200,000 paths: built in a worker thread, not on the loop.
    return await asyncio.to_thread(
        lambda: [p for t in tasks for p in task_output_files(job_id, t, kinds, files)]
    )


async def job_log(job: Row, offset: int) -> Response:
    """Every task's output in task order, from byte `offset`."""
    paths = await job_paths(job, STREAMS["all"])
    segments, total = await asyncio.to_thread(from_offset, paths, offset)  # a stat per file
    return stream(segments, max(offset, total))

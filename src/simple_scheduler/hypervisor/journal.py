"""The live journal: the unreleased executions, from which a restarted hypervisor
rebuilds its view."""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass

from simple_scheduler.hypervisor.records import Execution

log = logging.getLogger("simple_scheduler.hypervisor")

JOURNAL = ".live.journal"
JOURNAL_COMPACT_BYTES = 1 << 20

_UNESCAPE = re.compile(rb"\\(.)", re.DOTALL)


def _escape(raw: bytes) -> bytes:
    if b"\\" in raw or b"\n" in raw:
        raw = raw.replace(b"\\", b"\\\\").replace(b"\n", b"\\n")
    return raw


def _unescape(raw: bytes) -> bytes:
    if b"\\" not in raw:
        return raw
    return _UNESCAPE.sub(lambda m: b"\n" if m.group(1) == b"n" else m.group(1), raw)


@dataclass(frozen=True, slots=True)
class LiveEntry:
    key: str
    task_dir: str
    monitor_pid: int
    monitor_start: int
    semaphore: str | None
    started: bool = True


class LiveJournal:
    """The unreleased executions, as an append-only journal (no file per execution).

    One line per change, appended (O_APPEND) by the hypervisor:

        P <key> <semaphore or -> <task_dir>                                 prepared
        S <key> <monitor_pid> <monitor_start> <semaphore or -> <task_dir>   spawned
        G <key>                                                             started
        R <key>                                                             released

    `P` is written to the file before the spawn request goes to the fork server: once a
    monitor may exist, a restarted hypervisor knows of it (else the execution could run
    twice: once unknown, once again when the scheduler re-sends it). Fork requests are
    queued and sent once per loop iteration, after the journal write, so the spawns of
    one iteration cost one journal write.
    (`task_dir` runs to the end of the line, `\\` and newline backslash-escaped.) Lines
    are buffered and written once per loop iteration, before any reply goes out, so
    a client never hears of a spawn or release that the file does not hold. No fsync:
    the page cache survives the hypervisor's death, which is what the journal is for
    (after a machine crash no monitor is left to find). A restarted hypervisor replays
    it, then compacts it (a fresh file with only the unreleased entries, renamed over);
    so does a running one whenever it has grown past a bound proportional to the live
    set, keeping the work per change O(1) amortized.

    An execution with a semaphore (spawned held, start=False) is started only once its
    `G` line is in the file: `Hypervisor.op_start` writes it before the `sem_post`, so
    a restarted hypervisor, and through it the scheduler, never takes a command that
    ran for one that was only prepared, nor the reverse (a `G` whose post was lost with
    the hypervisor is posted again on recovery: a second post wakes nobody twice).
    """

    def __init__(self, directory: str) -> None:
        self.path = os.path.join(directory, JOURNAL)
        self.pending = bytearray()
        self.fd = -1
        self.size = 0
        self.limit = JOURNAL_COMPACT_BYTES

    @staticmethod
    def spawn_line(ex: Execution) -> bytes:
        """`S` once the monitor's pid is known, `P` before."""
        sem = os.fsencode(ex.semaphore) if ex.semaphore else b"-"
        task_dir = _escape(os.fsencode(ex.task_dir))
        if not ex.monitor_pid:
            return b"P %s %s %s\n" % (ex.key.encode(), sem, task_dir)
        return b"S %s %d %d %s %s\n" % (
            ex.key.encode(),
            ex.monitor_pid,
            ex.monitor_start,
            sem,
            task_dir,
        )

    @classmethod
    def live_lines(cls, ex: Execution) -> bytes:
        """What a compacted journal holds of `ex`: its spawn line, and `G` if started."""
        line = cls.spawn_line(ex)
        if ex.semaphore and ex.started:
            line += b"G %s\n" % ex.key.encode()
        return line

    def prepared(self, ex: Execution) -> None:
        """Journal an execution about to be forked (on file before its fork request
        leaves: `Hypervisor._flush` writes the journal first)."""
        self.pending += self.spawn_line(ex)

    def spawned(self, ex: Execution) -> None:
        self.pending += self.spawn_line(ex)

    def started(self, key: str) -> None:
        """Journal that a held execution is started; `flush` before posting it."""
        self.pending += b"G %s\n" % key.encode()

    def released(self, key: str) -> None:
        self.pending += b"R %s\n" % key.encode()

    def replay(self) -> dict[str, LiveEntry]:
        """The unreleased entries the file holds (a torn or bad line is skipped)."""
        entries: dict[str, LiveEntry] = {}
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return entries
        lines = data.split(b"\n")
        if lines.pop():
            log.warning("ignoring a torn last line in %s", self.path)
        for line in lines:
            try:
                if line.startswith(b"P "):
                    _, key, sem, tdir = line.split(b" ", 3)
                    entries[key.decode()] = LiveEntry(
                        key.decode(),
                        os.fsdecode(_unescape(tdir)),
                        0,
                        0,
                        None if sem == b"-" else os.fsdecode(sem),
                        sem == b"-",
                    )
                elif line.startswith(b"S "):
                    _, key, mpid, mstart, sem, tdir = line.split(b" ", 5)
                    entries[key.decode()] = LiveEntry(
                        key.decode(),
                        os.fsdecode(_unescape(tdir)),
                        int(mpid),
                        int(mstart),
                        None if sem == b"-" else os.fsdecode(sem),
                        # an S line after a G (a held monitor's pid learnt late) keeps it
                        sem == b"-" or (key.decode() in entries and entries[key.decode()].started),
                    )
                elif line.startswith(b"G "):
                    key_s = line[2:].decode()
                    if key_s in entries:
                        e = entries[key_s]
                        entries[key_s] = LiveEntry(
                            e.key, e.task_dir, e.monitor_pid, e.monitor_start, e.semaphore, True
                        )
                elif line.startswith(b"R "):
                    entries.pop(line[2:].decode(), None)
                elif line:
                    raise ValueError("unknown record")
            except ValueError as exc:
                log.warning("ignoring bad line in %s: %r (%s)", self.path, line[:200], exc)
        return entries

    def compact(self, live: list[Execution]) -> None:
        """Replace the file by one holding just `live`; drops what is pending."""
        data = b"".join(self.live_lines(ex) for ex in live)
        tmp = self.path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.rename(tmp, self.path)
        if self.fd >= 0:
            os.close(self.fd)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        self.size = len(data)
        self.limit = max(JOURNAL_COMPACT_BYTES, 4 * self.size)
        self.pending.clear()

    def flush(self) -> bool:
        """Write what is pending; True when the file outgrew its bound (compact it)."""
        pending = self.pending
        while pending:
            n = os.write(self.fd, pending)
            del pending[:n]
            self.size += n
        return self.size > self.limit

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

"""The hypervisor: the one process that starts tasks, and keeps track of them.

Single-threaded, one `epoll` loop, no asyncio. It owns:

- the client socket (Unix stream, mode 0600) speaking `protocol` frames;
- the report socket `<socket>.report` (Unix datagram, mode 0600) where monitors send
  STARTED / HEARTBEAT / EXITED reports (`wire` defines the layout);
- the fork server, a fresh `python -I -S` that immediately enters `_core`'s C loop, so
  every monitor is forked from a tiny process that never runs Python again;
- the live journal `<process_directory>/.live.journal` (`LiveJournal`: task dir,
  monitor pid and start time per unreleased execution), from which a restarted
  hypervisor rebuilds its view: status file present -> exited; monitor alive (pid +
  start time) -> running; else lost.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import heapq
import logging
import os
import pwd
import select
import signal
import socket
import stat
import time
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar

from simple_scheduler.execution import protocol, taskdir
from simple_scheduler.execution.backend import (
    KEY_PATTERN,
    BackendError,
    Event,
    Exited,
    ExitStatus,
    Lost,
    Started,
    UnknownExecution,
)
from simple_scheduler.hypervisor import cgroups, posix, wire
from simple_scheduler.hypervisor.forkserver import ForkServer
from simple_scheduler.hypervisor.journal import LiveJournal
from simple_scheduler.hypervisor.records import Execution
from simple_scheduler.states import EXECUTION_ALIVE

log = logging.getLogger("simple_scheduler.hypervisor")

LIVENESS_INTERVAL = 1.0
#: After a restart, how long an execution journaled as prepared (its monitor's pid never
#: recorded) waits for its monitor to report (heartbeats come every 2 s) before it is lost.
PREPARED_GRACE_S = 10.0
REPORT_SUFFIX = ".report"
#: TERM -> KILL grace for what a task leaves behind, unless its spec says otherwise.
DEFAULT_GRACE_S = 5.0
def describe_wait_status(status: int) -> str:
    w = posix.decode_wait_status(status)
    if w.signal is not None:
        return f"killed by signal {w.signal}" + (" (core dumped)" if w.core_dumped else "")
    return f"exited with code {w.exit_code}"



class _Conn:
    __slots__ = ("decoder", "mask", "out", "sock", "subscribed")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.decoder = protocol.FrameDecoder()
        self.out = bytearray()
        self.subscribed = False
        self.mask = select.EPOLLIN  #: what epoll watches for it now


_Op = Callable[["Hypervisor", _Conn, int, dict[str, Any]], dict[str, Any] | None]


class AlreadyRunning(RuntimeError):
    """Another hypervisor serves this socket."""


def _single_instance_lock(socket_path: str) -> int:
    """Hold `<socket>.lock` for the process's life: one hypervisor per socket.

    Two would steal each other's socket and journal. flock is released by the kernel
    however the holder dies (SIGKILL included), so a stale lock cannot block a restart;
    the descriptor is close-on-exec, so the fork server and monitors never hold it.
    """
    fd = os.open(socket_path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise AlreadyRunning(f"another hypervisor already serves {socket_path}") from None
    return fd


def _bind_unix(path: str, kind: socket.SocketKind) -> socket.socket:
    """Bind a Unix socket at `path` with mode 0600, replacing a stale socket (only)."""
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise RuntimeError(f"{path} exists and is not a socket")
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, kind)
    old = os.umask(0o177)
    try:
        sock.bind(path)
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.setblocking(False)
    return sock


class Hypervisor:
    """The loop and the state. `run()` is the process entry; tests may drive it too."""

    def __init__(
        self,
        socket_path: str,
        process_directory: str,
        *,
        fsync: bool = True,
        idle_exit_s: float | None = None,
        task_cgroups: bool = False,
    ) -> None:
        self.fsync = fsync  #: monitors fsync the status file (after their report)
        #: Stop after this long with no client and no execution running (None: never).
        self.idle_exit_s = idle_exit_s
        #: A client stopping cleanly asked us to stop as soon as nothing runs.
        self.stop_when_idle = False
        self._idle_since = time.monotonic()
        self.socket_path = os.path.abspath(socket_path)
        self.report_path = self.socket_path + REPORT_SUFFIX
        if len(self.report_path.encode()) >= 108:
            raise ValueError(f"socket path too long for AF_UNIX: {self.report_path}")
        self.process_directory = os.path.abspath(process_directory)
        os.makedirs(self.process_directory, exist_ok=True)
        taskdir.mark_top_directory(self.process_directory)
        self.lock_fd = _single_instance_lock(self.socket_path)
        self.journal = LiveJournal(self.process_directory)
        self.namespace = self.process_directory
        #: Monitors make their task's cgroup at `<it>.<key>` ("": none; see `cgroups`).
        self.cgroup_prefix = (
            cgroups.task_cgroup_prefix(self.process_directory) if task_cgroups else ""
        )

        self.fork_server = ForkServer()
        self.execs: dict[str, Execution] = {}
        self.by_monitor: dict[int, Execution] = {}
        self.unowned: set[Execution] = set()
        self.pending: dict[int, tuple[_Conn | None, int, Execution]] = {}
        self.conns: dict[int, _Conn] = {}
        self.dirty: set[_Conn] = set()
        self.timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = 0
        self._next_spawn_id = 1

        self.reports = _bind_unix(self.report_path, socket.SOCK_DGRAM)
        with contextlib.suppress(OSError):
            self.reports.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.listener = _bind_unix(self.socket_path, socket.SOCK_STREAM)
        self.listener.listen(128)

        self.epoll = select.epoll()
        self.epoll.register(self.listener.fileno(), select.EPOLLIN)
        self.epoll.register(self.reports.fileno(), select.EPOLLIN)
        self.epoll.register(self.fork_server.fileno(), select.EPOLLIN)
        self._fs_mask = select.EPOLLIN
        #: Signals recorded by the handlers, dispatched by the loop (`_dispatch_signals`).
        self.signals: deque[int] = deque()
        self.stopping = False
        self._wakeup_installed = False
        self._signal_r, self._signal_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.epoll.register(self._signal_r, select.EPOLLIN)
        self._recover()
        self._later(LIVENESS_INTERVAL, self._check_liveness)

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT stop the loop. The handler only records the signal; the
        wakeup fd (written by the interpreter at C level) makes `epoll.poll` return, and
        the loop acts on it between two steps, never in the middle of one."""
        signal.set_wakeup_fd(self._signal_w, warn_on_full_buffer=False)
        self._wakeup_installed = True
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._record_signal)

    def _record_signal(self, signum: int, frame: object) -> None:
        self.signals.append(signum)

    def _dispatch_signals(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._signal_r, 512):
                pass
        while self.signals:
            signum = self.signals.popleft()
            if signum in (signal.SIGTERM, signal.SIGINT):
                log.info("%s received", signal.Signals(signum).name)
                self.stopping = True

    # ------------------------------------------------------------ loop

    def serve_forever(self) -> None:
        """Serve until a stop signal has been dispatched (see `install_signal_handlers`)."""
        lfd, rfd, sfd = self.listener.fileno(), self.reports.fileno(), self._signal_r
        while not self.stopping:
            timeout = -1.0
            if self.timers:
                timeout = max(0.0, self.timers[0][0] - time.monotonic())
            for fd, ev in self.epoll.poll(timeout):
                if fd == rfd:
                    self._drain_reports()
                elif fd == lfd:
                    self._accept()
                elif fd == sfd:
                    self._dispatch_signals()
                elif fd == self.fork_server.fileno():
                    if ev & select.EPOLLOUT:
                        self.fork_server.flush()
                    if ev & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR):
                        self._fork_server_readable()
                    self._fs_interest()
                else:
                    conn = self.conns.get(fd)
                    if conn is not None:
                        if ev & select.EPOLLOUT:
                            self.dirty.add(conn)
                        if ev & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR):
                            self._conn_readable(conn)
            now = time.monotonic()
            while self.timers and self.timers[0][0] <= now:
                _, _, fn = heapq.heappop(self.timers)
                fn()
            if self.dirty or self.journal.pending or self.fork_server.wants_write:
                self._flush()
            if self.signals:
                self._dispatch_signals()

    def close(self) -> None:
        """Stop serving: sockets closed, the fork server ends; monitors keep running."""
        if self.journal.pending:
            self.journal.flush()
        self.journal.close()
        for conn in list(self.conns.values()):
            self._drop(conn)
        self.epoll.close()
        self.listener.close()
        self.reports.close()
        for path in (self.socket_path, self.report_path):
            with contextlib.suppress(OSError):
                os.unlink(path)
        self.fork_server.close()
        cgroups.remove_stale(self.cgroup_prefix, keep=set())  # the empty ones only
        os.close(self.lock_fd)
        if self._wakeup_installed:
            signal.set_wakeup_fd(-1)
        os.close(self._signal_r)
        os.close(self._signal_w)

    def _later(self, delay: float, fn: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self.timers, (time.monotonic() + delay, self._seq, fn))

    def _fs_interest(self) -> None:
        mask = select.EPOLLIN | (select.EPOLLOUT if self.fork_server.wants_write else 0)
        if mask != self._fs_mask:
            self.epoll.modify(self.fork_server.fileno(), mask)
            self._fs_mask = mask

    # ------------------------------------------------------------ client connections

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except BlockingIOError:
                return
            sock.setblocking(False)
            conn = _Conn(sock)
            self.conns[sock.fileno()] = conn
            self.epoll.register(sock.fileno(), select.EPOLLIN)

    def _drop(self, conn: _Conn) -> None:
        fd = conn.sock.fileno()
        if self.conns.pop(fd, None) is None:
            return
        with contextlib.suppress(OSError):
            self.epoll.unregister(fd)
        conn.sock.close()
        self.dirty.discard(conn)
        if not self.conns:
            self._idle_since = time.monotonic()
            self._check_idle()

    def _check_idle(self) -> None:
        """Stop when no client is connected, nothing runs, and either the last client
        asked for it or `idle_exit_s` has passed. Executions that ended but were not
        released stay in the journal (and their status files): the next hypervisor
        reports them, so no outcome is lost."""
        if self.conns or self.stopping:
            return
        if not self.stop_when_idle and (
            self.idle_exit_s is None or time.monotonic() - self._idle_since < self.idle_exit_s
        ):
            return
        if any(ex.state in ("spawned", "running") for ex in self.execs.values()):
            return
        log.info("no client and nothing running: stopping")
        self.stopping = True

    def _conn_readable(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(1 << 18)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            if conn.decoder.pending:
                log.warning("connection closed inside a frame (truncated)")
            self._drop(conn)
            return
        try:
            frames = conn.decoder.feed(data)
        except protocol.ProtocolError as exc:
            log.warning("closing connection: %s", exc)
            self._drop(conn)
            return
        for frame in frames:
            if frame.type != protocol.REQUEST:
                log.warning("closing connection: unexpected frame type %d", frame.type)
                self._drop(conn)
                return
            self._handle(conn, frame.request_id, frame.body)

    def _send(self, conn: _Conn | None, msg_type: int, rid: int, body: dict[str, Any]) -> None:
        if conn is None or conn.sock.fileno() < 0:
            return
        conn.out += protocol.encode(msg_type, rid, body)
        self.dirty.add(conn)

    def _flush(self) -> None:
        # The journal first: no fork request, and no reply, may announce a spawn or
        # release the file does not hold.
        if self.journal.pending and self.journal.flush():
            self._compact_journal()
        if self.fork_server.wants_write:
            self.fork_server.flush()
            self._fs_interest()
        for conn in list(self.dirty):
            self.dirty.discard(conn)
            if conn.sock.fileno() < 0:
                continue
            try:
                n = conn.sock.send(conn.out)
            except BlockingIOError:
                n = 0
            except OSError:
                self._drop(conn)
                continue
            del conn.out[:n]
            mask = select.EPOLLIN | (select.EPOLLOUT if conn.out else 0)
            if mask != conn.mask:
                self.epoll.modify(conn.sock.fileno(), mask)
                conn.mask = mask

    def _emit(self, event: Event) -> None:
        frame = protocol.encode(protocol.EVENT, 0, protocol.event_to_dict(event))
        for conn in self.conns.values():
            if conn.subscribed:
                conn.out += frame
                self.dirty.add(conn)

    def _handle(self, conn: _Conn, rid: int, body: dict[str, Any]) -> None:
        op = body.get("op")
        handler = self._ops.get(op) if isinstance(op, str) else None
        try:
            if handler is None:
                raise protocol.BadRequest(f"unknown op {op!r}")
            result = handler(self, conn, rid, body)
        except (BackendError, OSError, ValueError, KeyError, TypeError) as exc:
            self._send(conn, protocol.ERROR, rid, protocol.error_body(exc))
            return
        if result is not None:
            self._send(conn, protocol.REPLY, rid, result)

    # ------------------------------------------------------------ requests

    def op_spawn(self, conn: _Conn, rid: int, body: dict[str, Any]) -> dict[str, Any] | None:
        spec = body["spec"]
        key = spec["key"]
        if not isinstance(key, str) or not KEY_PATTERN.match(key) or key.startswith("."):
            raise BackendError(f"invalid key {key!r}")
        if key in self.execs:
            raise BackendError(f"duplicate key {key!r}")
        argv = spec["argv"]
        env = spec.get("env") or {}
        cwd = spec.get("cwd") or ""
        if not argv or not all(isinstance(a, str) for a in argv):
            raise BackendError("argv must be a non-empty list of strings")
        if not all(
            isinstance(k, str) and isinstance(v, str) and "=" not in k for k, v in env.items()
        ):
            raise BackendError("env must map names without '=' to strings")
        task_dir = os.path.abspath(spec["task_dir"])
        start = bool(body.get("start", True))
        self._make_task_dir(task_dir)

        ex = Execution(key, task_dir, released_sem=start, started=start)
        sem_path = ""
        if not start:
            ex.semaphore = posix.semaphore_name(self.namespace, key)
            try:
                posix.sem_create(ex.semaphore, 0)
            except posix.CallError as exc:
                if exc.errno != errno.EEXIST:
                    raise
                posix.sem_unlink(ex.semaphore)
                posix.sem_create(ex.semaphore, 0)
            sem_path = posix.semaphore_path(ex.semaphore)
        identity = self._identity(spec.get("user"), env)
        job, task = spec.get("job_id", "?"), spec.get("task_name", key)
        title = f"simple-scheduler: monitor job {job} task {task}"
        strings = [
            key,
            title,
            task_dir,
            cwd,
            self.report_path,
            sem_path,
            env.get("PATH", os.defpath),
            self.cgroup_prefix,
            *argv,
        ]
        strings += [f"{k}={v}" for k, v in env.items()]
        try:
            data = os.fsencode("\0".join(strings)) + b"\0"
        except (UnicodeEncodeError, TypeError) as exc:
            self._forget_semaphore(ex)
            raise BackendError(f"spec is not encodable: {exc}") from None
        if data.count(b"\0") != len(strings):
            self._forget_semaphore(ex)
            raise BackendError("strings in the spec must not contain NUL")
        spawn_id = self._next_spawn_id
        self._next_spawn_id += 1
        flags = (0 if start else wire.FS_FLAG_SEMAPHORE) | (
            0 if self.fsync else wire.FS_FLAG_NO_FSYNC
        )
        uid, gid, groups = 0, 0, tuple[int, ...]()
        if identity is not None:
            flags |= wire.FS_FLAG_IDENTITY
            uid, gid, groups = identity
        grace = spec.get("kill_grace", DEFAULT_GRACE_S)
        message = wire.pack_request(
            flags=flags,
            request_id=spawn_id,
            argc=len(argv),
            envc=len(env),
            strings=data,
            uid=uid,
            gid=gid,
            groups=groups,
            grace_ms=int(float(grace) * 1000),
        )
        if len(message) > wire.FS_REQUEST_MAX or len(strings) + 2 > wire.FS_MAX_STRINGS:
            self._forget_semaphore(ex)
            raise BackendError(f"spec too large ({len(message)} bytes)")
        self.execs[key] = ex
        self.pending[spawn_id] = (conn, rid, ex)
        self.journal.prepared(ex)
        self.fork_server.send(message)
        return None

    def _make_task_dir(self, task_dir: str) -> None:
        """Create `task_dir` in as few syscalls as the common case allows.

        Usually the attempt directory is new and so is its parent (a task's first
        attempt): mkdir the parent, then the directory, two syscalls. A directory that
        already exists (re-sent spawn after a reconnect) is cleared of stale state.
        """
        parent = os.path.dirname(task_dir)
        try:
            os.mkdir(parent)
        except FileExistsError:
            pass
        except FileNotFoundError:
            os.makedirs(parent, exist_ok=True)
        try:
            os.mkdir(task_dir)
        except FileExistsError:
            for stale in (taskdir.CANCEL, taskdir.STATUS):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(task_dir, stale))

    def _identity(
        self, user: object, env: dict[str, str]
    ) -> tuple[int, int, tuple[int, ...]] | None:
        """(uid, gid, groups) of the account a task runs as; None: the hypervisor's own.

        Resolved here, where NSS may be used, so that the task child only makes system
        calls. The account's HOME, USER and LOGNAME replace the server's in `env`."""
        if user is None or user == "":
            return None
        if not isinstance(user, str):
            raise BackendError("user must be a string")
        try:
            pw = pwd.getpwnam(user)
        except KeyError:
            raise BackendError(f"no such account {user!r} to run the task as") from None
        if pw.pw_uid == os.geteuid():
            return None
        groups = tuple(os.getgrouplist(user, pw.pw_gid))[: wire.FS_MAX_GROUPS]
        env.update(HOME=pw.pw_dir, USER=user, LOGNAME=user)
        return pw.pw_uid, pw.pw_gid, groups

    def op_start(self, conn: _Conn, rid: int, body: dict[str, Any]) -> dict[str, Any]:
        """Let a held execution's command run: `G` journaled, written, then posted.

        Written here rather than with the iteration's other lines: a start is the
        critical path of a chain's edge (see the scheduler's pre-spawn), and this is one
        small write. A cancelled execution (killed or released while held) stays so."""
        ex = self._get(body["key"])
        if ex.started or ex.released_sem:
            return {}
        ex.started = True
        self.journal.started(ex.key)
        if self.journal.flush():
            self._compact_journal()
        self._release_semaphore(ex)
        return {}

    def op_kill(self, conn: _Conn, rid: int, body: dict[str, Any]) -> dict[str, Any]:
        ex = self._get(body["key"])
        grace = float(body.get("grace", 5.0))
        if ex.state not in EXECUTION_ALIVE:
            return {"alive": False}
        if ex.pid is not None:
            self._terminate(ex, grace)
        else:
            # Not started yet (or its STARTED report is in flight): cancel it, and signal
            # it when the report comes.
            ex.kill_grace = grace
            with contextlib.suppress(OSError):
                open(os.path.join(ex.task_dir, taskdir.CANCEL), "wb").close()
            self._release_semaphore(ex)
        return {"alive": True}

    def op_list(self, conn: _Conn, rid: int, body: dict[str, Any]) -> dict[str, Any]:
        return {"tasks": [protocol.record_to_dict(ex.record()) for ex in self.execs.values()]}

    def op_release(self, conn: _Conn, rid: int, body: dict[str, Any]) -> dict[str, Any]:
        """{"key": k} or {"keys": [k, ...]}: one round trip for a whole flushed batch."""
        keys = body["keys"] if "keys" in body else [body["key"]]
        if not isinstance(keys, list):
            raise BackendError("keys must be a list")
        for key in keys:
            self._release(key)
        return {}

    def _release(self, key: Any) -> None:
        ex = self.execs.get(key) if isinstance(key, str) else None
        if ex is None:
            return
        if ex.state == "spawned" and not ex.released_sem:
            # Nobody will ever start it: let it see the cancel file rather than wait forever.
            with contextlib.suppress(OSError):
                open(os.path.join(ex.task_dir, taskdir.CANCEL), "wb").close()
            self._release_semaphore(ex)
        del self.execs[ex.key]
        cgroups.remove(self.cgroup_prefix, ex.key)  # its monitor's, if that one died
        if self.by_monitor.get(ex.monitor_pid) is ex:
            del self.by_monitor[ex.monitor_pid]
        self.unowned.discard(ex)
        self.journal.released(ex.key)

    def op_subscribe(self, conn: _Conn, rid: int, body: dict[str, Any]) -> dict[str, Any]:
        conn.subscribed = True
        return {}

    def op_ping(self, conn: _Conn, rid: int, body: dict[str, Any]) -> dict[str, Any]:
        return {"pid": os.getpid(), "executions": len(self.execs)}

    def op_stop_when_idle(self, conn: _Conn, rid: int, body: dict[str, Any]) -> dict[str, Any]:
        """The server stops cleanly: stop once it is gone and nothing runs."""
        self.stop_when_idle = True
        return {}

    _ops: ClassVar[dict[str, _Op]] = {
        protocol.OP_SPAWN: op_spawn,
        protocol.OP_START: op_start,
        protocol.OP_KILL: op_kill,
        protocol.OP_LIST: op_list,
        protocol.OP_RELEASE: op_release,
        protocol.OP_SUBSCRIBE: op_subscribe,
        protocol.OP_PING: op_ping,
        protocol.OP_STOP_WHEN_IDLE: op_stop_when_idle,
    }
    assert set(_ops) == protocol.OPS

    def _get(self, key: Any) -> Execution:
        ex = self.execs.get(key) if isinstance(key, str) else None
        if ex is None:
            raise UnknownExecution(f"unknown execution {key!r}")
        return ex

    def _release_semaphore(self, ex: Execution) -> None:
        if ex.released_sem or ex.semaphore is None:
            ex.released_sem = True
            return
        ex.released_sem = True
        try:
            posix.sem_post(ex.semaphore)
        except posix.CallError as exc:
            if exc.errno != errno.ENOENT:  # gone: the monitor already unlinked it
                raise

    def _forget_semaphore(self, ex: Execution) -> None:
        if ex.semaphore is not None:
            posix.sem_unlink(ex.semaphore)

    def _terminate(self, ex: Execution, grace: float) -> None:
        assert ex.pid is not None
        pgid = ex.pid
        posix.killpg(pgid, signal.SIGTERM)

        def escalate() -> None:
            with contextlib.suppress(OSError):
                posix.killpg(pgid, signal.SIGKILL)

        self._later(grace, escalate)

    # ------------------------------------------------------------ fork server

    def _fork_server_readable(self) -> None:
        records = self.fork_server.receive()
        if records is None:
            self._fork_server_died()
            return
        for _, kind, spawn_id, pid, value, ticks in records:
            if kind == wire.FS_ENDED:
                self._monitor_ended(pid, value)
                continue
            entry = self.pending.pop(spawn_id, None)
            if entry is None:
                continue
            conn, rid, ex = entry
            if kind == wire.FS_SPAWNED:
                ex.monitor_pid, ex.monitor_start = pid, ticks
                self.by_monitor[pid] = ex
                if self.execs.get(ex.key) is ex:  # else released while it was spawning
                    self.journal.spawned(ex)
                self._send(conn, protocol.REPLY, rid, {"monitor_pid": pid})
            else:
                if self.execs.get(ex.key) is ex:
                    del self.execs[ex.key]
                    self.journal.released(ex.key)  # it was journaled as prepared
                self._forget_semaphore(ex)
                msg = f"fork server could not spawn the monitor: {os.strerror(value)}"
                self._send(conn, protocol.ERROR, rid, protocol.error_body(BackendError(msg)))

    def _fork_server_died(self) -> None:
        log.error("the fork server died; starting a new one")
        with contextlib.suppress(OSError):
            self.epoll.unregister(self.fork_server.fileno())
        self.fork_server.close()
        for conn, rid, ex in self.pending.values():
            if self.execs.get(ex.key) is ex:
                del self.execs[ex.key]
            self._forget_semaphore(ex)
            self._send(
                conn,
                protocol.ERROR,
                rid,
                protocol.error_body(BackendError("the fork server died")),
            )
        self.pending.clear()
        for ex in self.by_monitor.values():
            ex.owned = False
            self.unowned.add(ex)
        self.by_monitor.clear()
        self.fork_server = ForkServer()
        self.epoll.register(self.fork_server.fileno(), select.EPOLLIN)
        self._fs_mask = select.EPOLLIN

    def _monitor_ended(self, monitor_pid: int, status: int) -> None:
        ex = self.by_monitor.pop(monitor_pid, None)
        if ex is None or ex.state not in EXECUTION_ALIVE:
            return
        self._drain_reports()  # its last report may still be queued
        if ex.state in EXECUTION_ALIVE:
            self._settle(ex, f"monitor died without a report: {describe_wait_status(status)}")

    # ------------------------------------------------------------ monitor reports

    def _drain_reports(self) -> None:
        recv = self.reports.recv
        size = wire.REPORT.size
        while True:
            try:
                data = recv(size + 64)
            except BlockingIOError:
                return
            r = wire.unpack_report(data)
            if r is None:
                continue
            ex = self.execs.get(wire.c_string(r.key))
            if ex is None or (ex.monitor_pid and ex.monitor_pid != r.monitor_pid):
                continue
            if not ex.monitor_pid:
                self._adopt_monitor(ex, r.monitor_pid)
            if r.kind == wire.REPORT_HEARTBEAT:
                ex.last_heartbeat = time.time()
            elif r.kind == wire.REPORT_STARTED:
                self._started(ex, r.pid, r.pid_start_ticks, r.start_ms / 1000.0)
            elif r.kind == wire.REPORT_EXITED and ex.state in EXECUTION_ALIVE:
                announce = r.pid > 0 and ex.pid is None  # no STARTED came: Exited says it
                if announce:
                    ex.pid, ex.pid_start = r.pid, r.pid_start_ticks
                status = ExitStatus(
                    exit_code=r.exit_code if r.exit_code >= 0 else None,
                    signal=r.signal or None,
                    core_dumped=bool(r.core_dumped),
                    start_time=r.start_ms / 1000.0,
                    end_time=r.end_ms / 1000.0,
                    error=wire.c_string(r.error) if r.has_error else None,
                    leftovers=r.leftovers,
                )
                if r.leftovers:
                    log.info("task %s left %d processes behind: ended them", ex.key, r.leftovers)
                self._exited(ex, status, announce_pid=announce)

    def _started(self, ex: Execution, pid: int, ticks: int, when: float) -> None:
        if ex.pid is not None or ex.state != "spawned":
            return
        ex.move("running")
        ex.pid, ex.pid_start = pid, ticks
        ex.last_heartbeat = time.time()
        self._emit(Started(ex.key, pid, ticks, when))
        if ex.kill_grace is not None:
            self._terminate(ex, ex.kill_grace)

    def _exited(self, ex: Execution, status: ExitStatus, *, announce_pid: bool = False) -> None:
        ex.move("exited")
        ex.status = status
        self.unowned.discard(ex)
        pid, ticks = (ex.pid, ex.pid_start) if announce_pid else (None, None)
        self._emit(Exited(ex.key, status, pid, ticks))

    def _settle(self, ex: Execution, reason: str) -> None:
        """The monitor is gone without a report: the status file decides exited vs lost."""
        status = taskdir.read_status(ex.task_dir)
        if status is not None:
            self._exited(ex, status)
            return
        ex.move("lost")
        ex.reason = self._end_orphan(ex, reason)
        self.unowned.discard(ex)
        self._emit(Lost(ex.key, ex.reason))

    def _end_orphan(self, ex: Execution, reason: str) -> str:
        """Nobody watches the task any more: end it, or a retry would run it twice."""
        if ex.semaphore is not None and not ex.released_sem:
            # Held and never started: cancelled, it exits without running its command.
            with contextlib.suppress(OSError):
                open(os.path.join(ex.task_dir, taskdir.CANCEL), "wb").close()
            with contextlib.suppress(OSError):
                self._release_semaphore(ex)
        pid, ticks = ex.pid, ex.pid_start
        if pid is None:
            info = taskdir.read_pid(ex.task_dir)
            if info is not None:
                pid, ticks = info.pid, info.pid_start_time
        alive = pid is not None and ticks is not None and posix.process_alive(pid, ticks)
        if alive:
            assert pid is not None
            posix.killpg(pid, signal.SIGKILL)
        # Its cgroup holds whatever the task started, in its process group or not.
        in_cgroup = cgroups.kill(self.cgroup_prefix, ex.key)
        if alive:
            return reason + "; its task was killed"
        return reason + ("; its cgroup was killed" if in_cgroup else "")

    def _adopt_monitor(self, ex: Execution, monitor_pid: int) -> None:
        """A recovered prepared execution's monitor spoke: now we know who it is.

        It is alive (it just sent a datagram), so its pid cannot have been reused yet and
        its start time read now identifies it.
        """
        with contextlib.suppress(OSError):
            ex.monitor_pid = monitor_pid
            ex.monitor_start = posix.proc_start_ticks(monitor_pid)
            self.journal.spawned(ex)

    def _check_liveness(self) -> None:
        self._later(LIVENESS_INTERVAL, self._check_liveness)
        self._check_idle()
        for ex in list(self.unowned):
            if ex.state not in EXECUTION_ALIVE:
                self.unowned.discard(ex)
            elif not ex.monitor_pid:
                # Prepared when the last hypervisor died: wait for a report, a status file,
                # or the end of the grace period.
                status = taskdir.read_status(ex.task_dir)
                if status is not None:
                    self._exited(ex, status)
                elif time.monotonic() > ex.grace_until:
                    self._settle(ex, "its monitor never reported after a hypervisor restart")
            elif not posix.process_alive(ex.monitor_pid, ex.monitor_start):
                self._drain_reports()
                if ex.state in EXECUTION_ALIVE:
                    self._settle(ex, "monitor vanished without a report")

    # ------------------------------------------------------------ live index / restart

    def _compact_journal(self) -> None:
        self.journal.compact(list(self.execs.values()))

    def _recover(self) -> None:
        """Rebuild the view of unreleased executions left by a previous hypervisor."""
        for e in self.journal.replay().values():
            ex = Execution(
                e.key,
                e.task_dir,
                monitor_pid=e.monitor_pid,
                monitor_start=e.monitor_start,
                owned=False,
                semaphore=e.semaphore,
                started=e.started,
            )
            self.execs[e.key] = ex
            if e.semaphore is not None and e.started:
                # Its `G` is on file: post again, in case the post died with us.
                with contextlib.suppress(OSError):
                    self._release_semaphore(ex)
            status = taskdir.read_status(ex.task_dir)
            pid = taskdir.read_pid(ex.task_dir)
            if pid is not None:
                ex.move("running")
                ex.pid, ex.pid_start = pid.pid, pid.pid_start_time
            if status is not None:
                ex.move("exited")
                ex.status = status
            elif not ex.monitor_pid:  # prepared: its monitor may still speak up
                ex.grace_until = time.monotonic() + PREPARED_GRACE_S
                self.unowned.add(ex)
            elif posix.process_alive(ex.monitor_pid, ex.monitor_start):
                self.unowned.add(ex)
            else:
                ex.move("lost")
                ex.reason = self._end_orphan(ex, "monitor vanished while the hypervisor was down")
        self._compact_journal()
        # Folders of monitors that died with no hypervisor to release them.
        cgroups.remove_stale(self.cgroup_prefix, keep=set(self.execs))
        log.info("recovered %d executions", len(self.execs))

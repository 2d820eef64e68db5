"""The one test harness: waiting for a condition, short temporary folders, the hypervisor
under test, and finding the processes a test run leaves behind.

Every process a test starts can be found again, whatever happened in the test:

- its working directory is inside a folder made by `short_tmp()`, whose names all start
  with this run's `RUN_PREFIX` (the hypervisor runs in its process directory, monitors
  inherit it, tasks run in their task directories); or
- it carries `TOKEN_VAR` in its environment, set to `RUN_TOKEN` (inherited from this
  pytest process) or to a test's own token, which starts with `RUN_TOKEN` (a task run in a
  working directory elsewhere gets it from the scheduler's base environment).

So a fixture kills everything under its folder at teardown, and the session ends by
failing if anything of this run survived (`survivors`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from simple_scheduler.execution import protocol
from simple_scheduler.execution.backend import Event, Exited, Lost, Started, TaskSpec
from simple_scheduler.execution.client import HypervisorClient
from simple_scheduler.execution.launcher import spawn_hypervisor
from simple_scheduler.scheduler.core import Scheduler
from simple_scheduler.store.db import Store

T = TypeVar("T")

TOKEN_VAR = "SIMPLE_SCHEDULER_TEST_RUN"
#: This run's token: the prefix of every token a test hands out.
RUN_TOKEN = uuid.uuid4().hex[:12]
#: Every temporary folder of this run is named so (short: AF_UNIX paths are limited to
#: 108 bytes).
_TMP = os.path.realpath("/tmp")
_RUN_NAME = f"ss-{RUN_TOKEN[:8]}-"
RUN_PREFIX = os.path.join(_TMP, _RUN_NAME)
BIN_PATH = "/usr/local/bin:/usr/bin:/bin"
#: Process titles of our own long-lived processes (set by `posix.set_proc_title`).
OUR_TITLES = ("simple-scheduler: hypervisor", "simple-scheduler: monitor")

# -- waiting -----------------------------------------------------------------------------

POLL_S = 0.02


def wait_for(predicate: Callable[[], T | None], timeout: float = 30.0, what: str = "") -> T:
    """Poll `predicate` until it returns something truthy, and return that; fail with
    `what` (and the last value seen) when `timeout` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s: {what or predicate} ({value!r})")
        time.sleep(POLL_S)


async def wait_for_async(
    predicate: Callable[[], Awaitable[T | None]], timeout: float = 30.0, what: str = ""
) -> T:
    """`wait_for` for a coroutine predicate: the event loop runs while it waits."""
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s: {what or predicate} ({value!r})")
        await asyncio.sleep(POLL_S)


# -- processes ---------------------------------------------------------------------------


def _pids() -> Iterable[int]:
    me = os.getpid()
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != me:
            yield int(name)


def _cwd(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/cwd").removesuffix(" (deleted)")
    except OSError:
        return None


def _token(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            environ = f.read()
    except OSError:
        return None
    key = TOKEN_VAR.encode() + b"="
    for item in environ.split(b"\0"):
        if item.startswith(key):
            return item[len(key) :].decode(errors="replace")
    return None


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def is_zombie(pid: int) -> bool:
    """Also true when it is gone: either way it runs no more."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def with_env(variable: str) -> list[int]:
    """Live processes whose environment holds `variable` ("NAME=value"), which every
    descendant inherits: how a test finds what a task started, wherever it went."""
    needle = variable.encode()
    found = []
    for pid in _pids():
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if needle in f.read().split(b"\0"):
                    found.append(pid)
        except OSError:
            continue
    return found


def processes_under(root: str) -> list[int]:
    """Pids whose working directory is inside `root`."""
    return [pid for pid in _pids() if (cwd := _cwd(pid)) and (cwd + "/").startswith(root + "/")]


def kill_under(root: str | Path, token: str | None = None) -> None:
    """SIGKILL every process whose working directory is inside `root` or whose
    environment carries `token`, until none is left (zombies aside)."""
    root = os.path.realpath(root)

    def none_left() -> bool:
        found = [
            pid
            for pid in _pids()
            if not is_zombie(pid)
            and (
                ((cwd := _cwd(pid)) is not None and (cwd + "/").startswith(root + "/"))
                or (token is not None and _token(pid) == token)
            )
        ]
        for pid in found:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        return not found

    wait_for(none_left, 10, f"the processes under {root} to die")


def survivors() -> list[str]:
    """Processes of this run still alive ("pid cmdline"): under one of its folders, or
    carrying its token. Another run's (or another user's) processes never match."""
    found = []
    for pid in _pids():
        cwd, token = _cwd(pid), _token(pid)
        ours = (token is not None and token.startswith(RUN_TOKEN)) or (
            cwd is not None and cwd.startswith(RUN_PREFIX)
        )
        if ours and not is_zombie(pid):
            found.append(f"{pid} {_cmdline(pid)!r}")
    return found


def children_zombies(ppids: set[int]) -> list[int]:
    out = []
    for pid in _pids():
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z" and int(fields[1]) in ppids:
            out.append(pid)
    return out


# -- folders -----------------------------------------------------------------------------


@contextlib.contextmanager
def short_tmp(kind: str = "") -> Iterator[Path]:
    """A fresh folder named after this run; what runs inside it is killed on exit."""
    root = Path(tempfile.mkdtemp(prefix=_RUN_NAME + kind, dir=_TMP))
    try:
        yield root
    finally:
        kill_under(root)
        shutil.rmtree(root, ignore_errors=True)


def new_token() -> str:
    """A token for one test's processes (it starts with this run's)."""
    return f"{RUN_TOKEN}.{uuid.uuid4().hex[:8]}"


# -- the hypervisor ----------------------------------------------------------------------


class Hypervisor:
    """A real `simple-scheduler hypervisor` process under test, started by the product's
    own launcher, that a test may kill and restart; with helpers to drive it."""

    def __init__(self, root: Path, token: str) -> None:
        self.root = root
        self.token = token
        self.socket_path = str(root / "hv.sock")
        self.process_directory = root / "tasks"
        self.log_path = root / "hypervisor.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, task_cgroups: bool = False) -> None:
        """Start it and return once it serves: it listens before it has recovered the
        executions of its predecessor, and answers only after. `task_cgroups`: as the
        server starts its own."""
        with open(self.log_path, "ab") as log:
            self.proc = spawn_hypervisor(
                self.socket_path,
                str(self.process_directory),
                stderr=log.fileno(),
                task_cgroups=task_cgroups,
            )
        self.ping()

    def ping(self) -> dict[str, object]:
        """One round trip on a fresh connection (usable from sync and async tests)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(30)
            s.connect(self.socket_path)
            s.sendall(protocol.encode(protocol.REQUEST, 1, {"op": "ping"}))
            decoder = protocol.FrameDecoder()
            while True:
                data = s.recv(65536)
                if not data:
                    raise ConnectionError("the hypervisor closed the connection")
                if frames := decoder.feed(data):
                    return frames[0].body

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)

    def fork_server_pid(self) -> int:
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
            return int(f.read().split()[0])

    def spec(
        self,
        key: str,
        argv: list[str],
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        job_id: int = 1,
        task: str | None = None,
    ) -> TaskSpec:
        return TaskSpec(
            key=key,
            job_id=job_id,
            task_name=task or key,
            argv=argv,
            env={"PATH": BIN_PATH} if env is None else env,
            task_dir=os.path.join(self.process_directory, str(job_id), key, "0"),
            cwd=cwd,
        )

    def run(self, fn: Callable[[HypervisorClient], Awaitable[T]], timeout: float = 60) -> T:
        """Run `fn` with a fresh client (from synchronous tests)."""

        async def main() -> T:
            client = await HypervisorClient.connect(self.socket_path)
            try:
                return await asyncio.wait_for(fn(client), timeout)
            finally:
                await client.close()

        return asyncio.run(main())

    def run_tasks(self, specs: list[TaskSpec], timeout: float = 60) -> dict[str, Event]:
        """Spawn and start `specs`, return the final event (Exited or Lost) of each."""

        async def go(client: HypervisorClient) -> dict[str, Event]:
            for spec in specs:
                await client.spawn(spec)
            done = await wait_final(client, {s.key for s in specs})
            for spec in specs:
                await client.release(spec.key)
            return done

        return self.run(go, timeout)


async def wait_final(client: HypervisorClient, keys: set[str]) -> dict[str, Event]:
    done: dict[str, Event] = {}
    async for event in client.events():
        if event.key in keys and isinstance(event, Exited | Lost):
            done[event.key] = event
            if len(done) == len(keys):
                break
    return done


async def wait_started(client: HypervisorClient, keys: set[str]) -> dict[str, Started]:
    seen: dict[str, Started] = {}
    async for event in client.events():
        if event.key in keys and isinstance(event, Started):
            seen[event.key] = event
            if len(seen) == len(keys):
                break
    return seen


def make_scheduler(
    store: Store, hv: Hypervisor, workers: int = 4, grace: float = 1.0, *, relaunch: bool = False
) -> Scheduler:
    """The server's own local scheduler over `hv`; its tasks carry the test's token."""
    from simple_scheduler.server import local_scheduler

    return local_scheduler(
        store,
        hv.socket_path,
        process_directory=hv.process_directory,
        nb_of_workers=workers,
        kill_grace=grace,
        base_env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), TOKEN_VAR: hv.token},
        relaunch=relaunch,
    )

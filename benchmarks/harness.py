"""The real server as a user runs it, for benchmarks that talk to it over HTTP only.

`LiveServer` starts `python -m simple_scheduler run-server` on a temporary data folder and
a free port (settings through `SIMPLE_SCHEDULER_*` variables), creates its user (an admin
unless told otherwise) and any others with the `create-user` command, and waits for
`/rest/health`; `login()` and `request()` call its REST API with the standard library.
It imports nothing of the package, so it keeps working while the package's insides move.

Every process of the run carries a marker: the server's environment holds
`SS_BENCH_RUN=<id>` (inherited by the hypervisor), and the hypervisor, fork server,
monitors and tasks work under the data folder. `stop()` SIGTERMs the server and then
SIGKILLs whatever still carries either mark (the server leaves its hypervisor running
on stop, by design), so a benchmark leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Mapping
from pathlib import Path

import psutil

MARKER = "SS_BENCH_RUN"
NS = "urn:proactive:jobdescriptor:3.14"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def native_task(name: str, command: str = "/bin/true", depends: str | None = None) -> str:
    """One `nativeExecutable` task: argv without a shell, like `tsp CMD` and `sbatch`."""
    deps = f'<depends><task ref="{depends}"/></depends>' if depends else ""
    return (
        f'<task name="{name}">{deps}<nativeExecutable>'
        f'<staticCommand value="{command}"/></nativeExecutable></task>'
    )


def job_xml(name: str, tasks: list[str]) -> bytes:
    return f'<job xmlns="{NS}" name="{name}"><taskFlow>{"".join(tasks)}</taskFlow></job>'.encode()


class LiveServer:
    """A run-server process on its own data folder; `stop()` leaves no process behind."""

    def __init__(
        self,
        prefix: str,
        settings: dict[str, str] | None = None,
        user: str = "bench",
        password: str = "bench-pw",
        *,
        admin: bool = True,
        more_users: Mapping[str, str] | None = None,
        folder: str = "/tmp",
    ) -> None:
        """`settings`: `SIMPLE_SCHEDULER_<KEY>` values; `more_users`: name -> password of
        users (not admins) made besides `user`; `folder`: where the data folder is made."""
        self.root = Path(tempfile.mkdtemp(prefix=prefix, dir=folder))
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.run_id = uuid.uuid4().hex
        self.user, self.password = user, password
        self.users = [(user, password, admin)]
        self.users += [(name, secret, False) for name, secret in (more_users or {}).items()]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SIMPLE_SCHEDULER_")}
        env.update(
            {
                "SIMPLE_SCHEDULER_DATA_DIR": str(self.root / "data"),
                "SIMPLE_SCHEDULER_PORT": str(self.port),
                "SIMPLE_SCHEDULER_BCRYPT_ROUNDS": "4",
                "SIMPLE_SCHEDULER_LOG_LEVEL": "WARNING",  # no access log line per request
                MARKER: self.run_id,
            }
        )
        env.update({f"SIMPLE_SCHEDULER_{k.upper()}": v for k, v in (settings or {}).items()})
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.root / "server.log"

    def start(self, timeout: float = 60.0) -> None:
        cmd = [sys.executable, "-m", "simple_scheduler"]
        for name, secret, admin in self.users:
            subprocess.run(
                [*cmd, "create-user", name, secret, *(["--admin"] if admin else [])],
                cwd=self.root,
                env=self.env,
                check=True,
                capture_output=True,
            )
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [*cmd, "run-server"],
                cwd=self.root,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"{self.base}/rest/health", timeout=1).read()
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"server did not start; see {self.log_path}")
            time.sleep(0.05)

    def request(
        self,
        method: str,
        path: str,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 60.0,
    ) -> bytes:
        """The body of `method /rest{path}`; an answer other than 2xx raises HTTPError."""
        req = urllib.request.Request(
            f"{self.base}/rest{path}", data=data, method=method, headers=dict(headers or {})
        )
        with urllib.request.urlopen(req, timeout=timeout) as response:
            body: bytes = response.read()
            return body

    def login(self, user: str | None = None, password: str | None = None) -> str:
        """A session token for `user` (by default the server's own user)."""
        form = {"username": user or self.user, "password": password or self.password}
        return self.request(
            "POST",
            "/scheduler/login",
            urllib.parse.urlencode(form).encode(),
            {"Content-Type": "application/x-www-form-urlencoded"},
        ).decode()

    def ours(self, proc: psutil.Process) -> bool:
        """Whether `proc` belongs to this run: works under our folder or carries our mark."""
        if proc.pid == os.getpid():
            return False
        with contextlib.suppress(psutil.Error, OSError):
            cwd = proc.cwd()
            if cwd == str(self.root) or cwd.startswith(f"{self.root}/"):
                return True
        with contextlib.suppress(psutil.Error, OSError):
            return bool(proc.environ().get(MARKER) == self.run_id)
        return False

    def processes(self, title: str) -> list[psutil.Process]:
        """This run's processes whose command line starts with `title`."""
        found = []
        for proc in psutil.process_iter(["cmdline"]):
            cmdline = " ".join(proc.info["cmdline"] or [])
            if cmdline.startswith(title) and self.ours(proc):
                found.append(proc)
        return found

    def stop(self, keep_files: bool = False) -> None:
        """SIGTERM the server, then SIGKILL everything of this run that is left."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for _ in range(10):  # a fork server may still fork while we kill: scan again
            left = [p for p in psutil.process_iter() if self.ours(p)]
            if not left:
                break
            for proc in left:
                with contextlib.suppress(psutil.Error):
                    proc.kill()
            psutil.wait_procs(left, timeout=2)
        if not keep_files:
            shutil.rmtree(self.root, ignore_errors=True)

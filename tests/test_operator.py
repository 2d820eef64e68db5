"""Operator experience against the real `run-server`: the quick start run twice, one
server per data directory, a taken port, and a hypervisor that does not outlive its use."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from conftest import TOKEN_VAR, kill_everything_under
from test_e2e import Server, free_port, submit
from wfxml import job_xml

pytestmark = pytest.mark.slow


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def hypervisors(root: Path) -> list[psutil.Process]:
    """This test's hypervisor processes: they run in its process directory (the title
    they set overwrites their environment, so the run token cannot be read there)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            title = " ".join(proc.info["cmdline"] or [])
            if title.startswith("simple-scheduler: hypervisor") and proc.cwd().startswith(
                str(root)
            ):
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found


@pytest.fixture
def server() -> Iterator[Server]:
    root = Path(tempfile.mkdtemp(prefix="ss-op-", dir="/tmp"))
    srv = Server(root, uuid.uuid4().hex)
    srv.env["SIMPLE_SCHEDULER_ADMIN_PASSWORD"] = "admin-pw"
    try:
        yield srv
    finally:
        srv.kill()
        kill_everything_under(root, srv.env[TOKEN_VAR])
        shutil.rmtree(root, ignore_errors=True)


def run_server(srv: Server, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run a server that is expected to refuse to start: its exit code and output."""
    done = subprocess.run(
        [sys.executable, "-m", "simple_scheduler", "run-server", *args],
        cwd=srv.root,
        env=env or srv.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode, done.stdout + done.stderr


def test_quick_start_works_twice_and_a_clean_stop_takes_the_idle_hypervisor(
    server: Server,
) -> None:
    server.start("--create-admin", "admin")
    assert server.login("admin", "admin-pw")
    assert len(hypervisors(server.root)) == 1
    assert server.kill(signal.SIGTERM) == 0
    wait_for(lambda: not hypervisors(server.root), 20, "the idle hypervisor to stop")
    log = server.log.read_text()
    assert f"created a new data directory at {server.root / 'data'}" in log

    server.start("--create-admin", "admin")  # the same command, again
    assert server.login("admin", "admin-pw")
    assert "user 'admin' exists: not created again" in server.log.read_text()


def test_a_second_server_on_the_same_data_directory_is_refused(server: Server) -> None:
    server.start("--create-admin", "admin")
    env = dict(server.env, SIMPLE_SCHEDULER_PORT=str(free_port()))
    code, out = run_server(server, env=env)
    assert code == 1
    assert f"another server (pid {server.proc.pid if server.proc else 0}," in out
    assert f":{server.port})" in out and "Traceback" not in out
    assert server.login("admin", "admin-pw")  # the first one still serves


def test_a_taken_port_is_one_line(server: Server) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", server.port))
        taken.listen()
        code, out = run_server(server, "--create-admin", "admin")
    assert code == 1
    assert f"cannot listen on 127.0.0.1:{server.port}" in out
    assert "Traceback" not in out
    wait_for(lambda: not hypervisors(server.root), 20, "the failed start's hypervisor to stop")


def test_hypervisor_outlives_a_dead_server_only_while_tasks_run(server: Server) -> None:
    server.env["SIMPLE_SCHEDULER_HYPERVISOR_IDLE_EXIT_S"] = "1"
    flag = server.root / "go"
    server.start("--create-admin", "admin")
    c = httpx.Client(
        base_url=server.url, headers={"sessionid": server.login("admin", "admin-pw")}
    )
    wait_script = f"while [ ! -e {flag} ]; do sleep 0.05; done; echo done"
    job = submit(c, job_xml([{"name": "A", "bash": wait_script}], name="held"))
    wait_for(
        lambda: c.get(f"/scheduler/jobs/{job}/info").json()["status"] == "RUNNING",
        30,
        "the task to run",
    )
    server.kill(signal.SIGKILL)
    (hv,) = hypervisors(server.root)
    # Idle for longer than its limit, but a task runs: it stays.
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        assert hv.is_running() and hv.status() != psutil.STATUS_ZOMBIE
        time.sleep(0.1)
    flag.touch()
    wait_for(lambda: not hypervisors(server.root), 20, "the hypervisor to exit once the task ended")

    server.start()  # the outcome is collected by the next server
    c.headers["sessionid"] = server.login("admin", "admin-pw")
    wait_for(
        lambda: c.get(f"/scheduler/jobs/{job}/info").json()["status"] == "FINISHED",
        30,
        "the job's outcome to be collected",
    )
    out = c.get(f"/scheduler/jobs/{job}/tasks/A/result/log/out").text
    assert out == "done\n"
    assert os.path.exists(server.root / "data")

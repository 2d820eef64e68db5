"""The real `simple-scheduler run-server` process driven over HTTP with httpx.

One server per module and store engine (a fresh data folder, a free port; a SQLite file
in it, or a fresh PostgreSQL database); the restart test SIGKILLs it mid-job and starts it
again on the same data. Every process started here (the server,
the hypervisor it spawns, monitors and tasks) runs with its working directory in the
module's folder and carries the run token in its environment, so teardown finds and
kills all of them whatever happened.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from conftest import store_engines
from harness import TOKEN_VAR, kill_under, new_token, short_tmp, wait_for
from pgserver import PgServer
from wfxml import job_xml

pytestmark = pytest.mark.slow

DIAMOND = job_xml(
    [
        {"name": "A", "bash": "echo A"},
        {"name": "B", "depends": ["A"], "bash": "echo B"},
        {"name": "C", "depends": ["A"], "bash": "echo C"},
        {"name": "D", "depends": ["B", "C"], "bash": "echo D"},
    ],
    name="diamond",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`python -m simple_scheduler run-server` on a temporary data folder."""

    def __init__(self, root: Path, token: str, database_url: str | None = None) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/rest"
        self.env = dict(
            os.environ,
            SIMPLE_SCHEDULER_DATA_DIR=str(root / "data"),
            SIMPLE_SCHEDULER_PORT=str(self.port),
            SIMPLE_SCHEDULER_BCRYPT_ROUNDS="4",
            SIMPLE_SCHEDULER_NB_OF_WORKERS="4",
            SIMPLE_SCHEDULER_KILL_GRACE_S="1",
            **{TOKEN_VAR: token},
        )
        self.env.pop("SIMPLE_SCHEDULER_CONFIG", None)
        self.env.pop("SIMPLE_SCHEDULER_DATABASE_URL", None)
        if database_url is not None:  # else the default: a SQLite file in the data folder
            self.env["SIMPLE_SCHEDULER_DATABASE_URL"] = database_url
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = root / "server.log"

    def cli(self, *args: str) -> None:
        subprocess.run(
            [sys.executable, "-m", "simple_scheduler", *args],
            cwd=self.root,
            env=self.env,
            check=True,
            capture_output=True,
            timeout=60,
        )

    def start(self, *args: str) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "simple_scheduler", "run-server", *args],
                cwd=self.root,
                env=self.env,
                stdout=log,
                stderr=log,
            )
        proc = self.proc

        def answers() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(f"{self.url}/health", timeout=1).status_code == 200
            return False

        wait_for(answers, 30, "the server to answer")

    def kill(self, sig: int = signal.SIGKILL) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(20)

    def login(self, user: str, password: str) -> str:
        response = httpx.post(
            f"{self.url}/scheduler/login", data={"username": user, "password": password}
        )
        assert response.status_code == 200, response.text
        return response.text


@pytest.fixture(scope="module", params=store_engines())
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    database_url = None
    if request.param == "postgresql":
        pg: PgServer = request.getfixturevalue("pg_server")
        database_url = pg.new_database()
    token = new_token()
    with short_tmp("e2e-") as root:
        srv = Server(root, token, database_url)
        try:
            srv.cli("create-user", "alice", "alice-pw")
            srv.cli("create-user", "bob", "bob-pw")
            srv.start()
            yield srv
        finally:
            srv.kill()
            kill_under(root, token)


def client(server: Server, user: str = "alice") -> httpx.Client:
    token = server.login(user, f"{user}-pw")
    return httpx.Client(base_url=server.url, headers={"sessionid": token}, timeout=10)


def submit(c: httpx.Client, xml: bytes) -> int:
    response = c.post("/scheduler/submit", files={"file": ("job.xml", xml, "application/xml")})
    assert response.status_code == 200, response.text
    return int(response.json()["id"])


def wait(c: httpx.Client, job_id: int, statuses: set[str], timeout: float = 30) -> dict[str, Any]:

    def reached() -> dict[str, Any] | None:
        info: dict[str, Any] = c.get(f"/scheduler/jobs/{job_id}/info").json()
        return info if info["status"] in statuses else None

    return wait_for(reached, timeout, f"job {job_id} to be one of {statuses}")


def wait_task(c: httpx.Client, job_id: int, name: str, status: str) -> None:
    def task_status() -> bool:
        state = c.get(f"/scheduler/jobs/{job_id}/tasks/{name}").json()
        return bool(state["taskInfo"]["taskStatus"] == status)

    wait_for(task_status, 30, f"task {name} to be {status}")


def test_diamond_runs_and_outputs_are_read(server: Server) -> None:
    with client(server) as c:
        job_id = submit(c, DIAMOND)
        info = wait(c, job_id, {"FINISHED", "CANCELED", "FAILED", "KILLED"})
        assert info["status"] == "FINISHED" and info["numberOfFinishedTasks"] == 4
        for name in "ABCD":
            out = c.get(f"/scheduler/jobs/{job_id}/tasks/{name}/result/log/out")
            assert out.text == f"{name}\n"
        assert sorted(c.get(f"/scheduler/jobs/{job_id}/result/log/all").text.split()) == list(
            "ABCD"
        )
        assert c.get("/scheduler/jobs").json()["list"][0] == str(job_id)


def test_kill_a_running_job(server: Server) -> None:
    with client(server) as c:
        job_id = submit(
            c, job_xml([{"name": "s", "bash": "sleep 60"}, {"name": "t", "depends": ["s"]}])
        )
        wait_task(c, job_id, "s", "RUNNING")
        assert c.put(f"/scheduler/jobs/{job_id}/kill").json() is True
        assert wait(c, job_id, {"KILLED"})["status"] == "KILLED"
        wait_task(c, job_id, "s", "ABORTED")
        assert (
            c.get(f"/scheduler/jobs/{job_id}/tasks/t").json()["taskInfo"]["taskStatus"]
            == "NOT_STARTED"
        )


def test_sigkill_mid_job_and_restart(server: Server) -> None:
    xml = job_xml(
        [
            {"name": "slow", "bash": "sleep 2; echo slow done"},
            {"name": "next", "depends": ["slow"], "bash": "echo next done"},
        ]
    )
    with client(server) as c:
        job_id = submit(c, xml)
        wait_task(c, job_id, "slow", "RUNNING")
    server.kill(signal.SIGKILL)
    server.start()
    with client(server) as c:
        info = wait(c, job_id, {"FINISHED", "CANCELED", "FAILED", "KILLED"})
        assert info["status"] == "FINISHED", info
        slow = c.get(f"/scheduler/jobs/{job_id}/tasks/slow").json()["taskInfo"]
        assert slow["numberOfExecutionLeft"] == 0 and slow["exitCode"] == 0
        assert c.get(f"/scheduler/jobs/{job_id}/tasks/slow/result/log/out").text == "slow done\n"
        assert c.get(f"/scheduler/jobs/{job_id}/tasks/next/result/log/out").text == "next done\n"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_auth_refusals(server: Server) -> None:
    url = server.url
    private_pem = (server.root / "data" / "keys" / "private.pem").read_bytes()
    public_pem = (server.root / "data" / "keys" / "public.pem").read_bytes()
    with client(server) as c:
        alice_job = submit(c, DIAMOND)
    alice = server.login("alice", "alice-pw")
    now = int(time.time())
    claims = {"sub": "alice", "adm": True, "iat": now, "exp": now + 600, "jti": uuid.uuid4().hex}
    head, _payload, sig = alice.split(".")
    tampered_payload = _b64(json.dumps(dict(claims, sub="bob")).encode())
    hs_header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    hs_body = _b64(json.dumps(claims).encode())
    hs_sig = _b64(hmac.new(public_pem, f"{hs_header}.{hs_body}".encode(), hashlib.sha256).digest())
    none_header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    expired = jwt.encode(
        dict(claims, iat=now - 7200, exp=now - 3600), private_pem, algorithm="RS256"
    )
    revoked = server.login("alice", "alice-pw")
    assert httpx.put(f"{url}/common/logout", headers={"sessionid": revoked}).status_code == 204
    bad_tokens = {
        "tampered": f"{head}.{tampered_payload}.{sig}",
        "expired": expired,
        "alg none": f"{none_header}.{hs_body}.",
        "HS256 with the public key": f"{hs_header}.{hs_body}.{hs_sig}",
        "revoked": revoked,
    }
    target = f"{url}/scheduler/jobs/{alice_job}/info"
    assert httpx.get(target, headers={"sessionid": alice}).status_code == 200
    assert httpx.get(target).status_code == 401
    for what, token in bad_tokens.items():
        for headers in ({"sessionid": token}, {"Authorization": f"Bearer {token}"}):
            response = httpx.get(target, headers=headers)
            assert response.status_code == 401, (what, response.text)
            assert response.json()["httpErrorCode"] == 401
    bob = server.login("bob", "bob-pw")
    assert httpx.get(target, headers={"sessionid": bob}).status_code == 404
    assert (
        httpx.put(f"{url}/scheduler/jobs/{alice_job}/kill", headers={"sessionid": bob}).status_code
        == 404
    )


def test_sigterm_stops_cleanly(server: Server) -> None:
    with client(server) as c:
        job_id = submit(c, job_xml([{"name": "s", "bash": "sleep 1; echo after stop"}]))
        wait_task(c, job_id, "s", "RUNNING")
    assert server.kill(signal.SIGTERM) == 0
    assert "stopped" in server.log.read_text()
    server.start()
    with client(server) as c:
        assert wait(c, job_id, {"FINISHED"})["status"] == "FINISHED"
        out = c.get(f"/scheduler/jobs/{job_id}/tasks/s/result/log/out")
        assert out.text == "after stop\n"


def test_unreachable_postgresql_stops_the_start_with_a_message(short_tmp: Path) -> None:
    token = uuid.uuid4().hex
    srv = Server(short_tmp, token, "postgresql://sched:s3cret@127.0.0.1:1/scheduler")
    try:
        with srv.log.open("wb") as log:  # a file: the hypervisor it started keeps a pipe open
            code = subprocess.run(
                [sys.executable, "-m", "simple_scheduler", "run-server"],
                cwd=short_tmp,
                env=srv.env,
                stdout=log,
                stderr=log,
                timeout=60,
            ).returncode
    finally:
        kill_under(short_tmp, token)  # the hypervisor it started first
    output = srv.log.read_text()
    assert code == 1, output
    assert "cannot start: database postgresql://sched:***@127.0.0.1:1/scheduler" in output
    assert "s3cret" not in output and "Traceback" not in output

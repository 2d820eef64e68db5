"""The client verbs, run as a user runs them: `python -m simple_scheduler VERB` subprocesses
against a real `run-server`, with HOME and XDG_CONFIG_HOME in a temporary folder.

Nothing is mocked and nothing sleeps for a fixed time: tests wait on conditions (a job's
status over HTTP, a line on the CLI's stdout, a file a task creates) with deadlines. Every
process started here is killed at teardown (CLI processes by the test, the server and
everything it spawned by `kill_everything_under`).
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from harness import RUN_PREFIX, TOKEN_VAR, kill_under, new_token
from test_e2e import DIAMOND, Server, wait_task
from test_e2e import wait as wait_job
from test_layout import _modules_after
from wfxml import job_xml

pytestmark = pytest.mark.slow

TERMINAL = {"FINISHED", "CANCELED", "FAILED", "KILLED"}
JOB_KEYS = {
    "id",
    "name",
    "owner",
    "status",
    "priority",
    "submitted_at",
    "started_at",
    "finished_at",
    "tasks",
}
COUNT_KEYS = {"total", "pending", "running", "finished", "failed", "faulty", "in_error"}
TASK_KEYS = {
    "name",
    "status",
    "attempts",
    "max_attempts",
    "started_at",
    "finished_at",
    "duration_s",
    "exit_code",
    "signal",
    "reason",
}


def until(condition: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    """Poll `condition` until it returns something true; fail naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


class Cli:
    """Runs `python -m simple_scheduler ...` with its own HOME and config folder."""

    def __init__(self, server: Server, home: Path) -> None:
        self.server = server
        self.home = home
        self.config = home / "config"
        self.env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith("SIMPLE_SCHEDULER_") and name != "NO_COLOR"
        }
        self.env.update(
            HOME=str(home), XDG_CONFIG_HOME=str(self.config), **{TOKEN_VAR: server.env[TOKEN_VAR]}
        )
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def base_url(self) -> str:
        return self.server.url.removesuffix("/rest")

    @property
    def session_file(self) -> Path:
        return self.config / "simple-scheduler" / "session.json"

    def _env(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        return {**self.env, **(extra or {})}

    def run(
        self,
        *args: str,
        stdin: str | bytes | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        data = stdin.encode() if isinstance(stdin, str) else stdin
        done = subprocess.run(
            [sys.executable, "-m", "simple_scheduler", *args],
            cwd=self.home,
            env=self._env(env),
            input=data if data is not None else b"",
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        return subprocess.CompletedProcess(
            done.args,
            done.returncode,
            done.stdout.decode("utf-8", "replace"),
            done.stderr.decode("utf-8", "replace"),
        )

    def ok(self, *args: str, **kwargs: Any) -> str:
        done = self.run(*args, **kwargs)
        assert done.returncode == 0, (args, done.returncode, done.stdout, done.stderr)
        return done.stdout

    def popen(self, *args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "simple_scheduler", *args],
            cwd=self.home,
            env=self._env(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.procs.append(proc)
        return proc

    def login(self, user: str = "alice") -> None:
        self.ok("login", self.base_url, "--user", user, "--password-stdin", stdin=f"{user}-pw\n")

    def token(self) -> str:
        return str(json.loads(self.session_file.read_text())["token"])

    def http(self) -> httpx.Client:
        """An HTTP client with this CLI's session, to check the server's side of things."""
        return httpx.Client(
            base_url=self.server.url, headers={"sessionid": self.token()}, timeout=10
        )

    def submit(self, xml: bytes, *args: str, expect: int = 0) -> int:
        """Submit `xml`; the job id (the CLI must exit with `expect`)."""
        path = self.home / f"job-{uuid.uuid4().hex[:8]}.xml"
        path.write_bytes(xml)
        done = self.run("submit", str(path), *args)
        assert done.returncode == expect, (args, done.returncode, done.stdout, done.stderr)
        return int(done.stdout.split()[0])

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    # Run-named folder and token: the session-end check sees what a test leaves behind.
    root = Path(tempfile.mkdtemp(prefix=f"{RUN_PREFIX}cli-"))
    token = new_token()
    srv = Server(root, token)
    try:
        srv.cli("create-user", "alice", "alice-pw")
        srv.cli("create-user", "bob", "bob-pw")
        srv.start()
        yield srv
    finally:
        srv.kill()
        kill_under(root, token)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def anonymous(server: Server) -> Iterator[Cli]:
    """A CLI with an empty config folder: not logged in."""
    home = Path(tempfile.mkdtemp(prefix="home-", dir=server.root))
    cli = Cli(server, home)
    try:
        yield cli
    finally:
        cli.stop()


@pytest.fixture
def cli(anonymous: Cli) -> Cli:
    """A CLI logged in as alice."""
    anonymous.login()
    return anonymous


def read_lines_until(
    proc: subprocess.Popen[bytes],
    lines: list[str],
    predicate: Callable[[list[str]], bool],
    *,
    stderr: bool = False,
) -> None:
    """Read `proc`'s stdout (or stderr) line by line into `lines` until `predicate(lines)`."""
    stream = proc.stderr if stderr else proc.stdout
    assert stream is not None
    deadline = time.monotonic() + 30
    while not predicate(lines):
        left = deadline - time.monotonic()
        assert left > 0, f"timed out; read so far: {lines}"
        ready, _, _ = select.select([stream], [], [], left)
        if ready:
            line = stream.readline()
            assert line, f"closed early ({proc.wait()}); read so far: {lines}"
            lines.append(line.decode().rstrip("\n"))


def run_in_pty(cli: Cli, args: list[str], env: Mapping[str, str]) -> tuple[int, bytes]:
    """Run the CLI with stdin, stdout and stderr on a pseudo-terminal; (exit code, output)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "simple_scheduler", *args],
        cwd=cli.home,
        env={**cli.env, "TERM": "xterm-256color", **env},
        stdin=slave,
        stdout=slave,
        stderr=slave,
    )
    cli.procs.append(proc)
    os.close(slave)
    chunks = []
    try:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the other side is closed
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
    return proc.wait(30), b"".join(chunks)


def polling(proc: subprocess.Popen[bytes]) -> bool:
    """The CLI process is past its start-up and talking to the server (its keep-alive
    connection is open), so it has seen the job at least once."""
    with contextlib.suppress(psutil.Error):
        return any(
            c.status == psutil.CONN_ESTABLISHED
            for c in psutil.Process(proc.pid).net_connections("tcp")
        )
    return False


# Sessions.


def test_login_saves_a_private_session(anonymous: Cli) -> None:
    done = anonymous.run(
        "login", anonymous.base_url, "-u", "alice", "--password-stdin", stdin="alice-pw\n"
    )
    assert done.returncode == 0, done.stderr
    assert "logged in" in done.stderr and "alice" in done.stderr
    path = anonymous.session_file
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    saved = json.loads(path.read_text())
    assert saved["url"] == anonymous.base_url and saved["user"] == "alice"
    assert json.loads(anonymous.ok("jobs", "--json")) == []
    # Logging in again (same server, remembered user) rewrites the file, still 0600.
    anonymous.ok("login", "--password-stdin", stdin="alice-pw\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["token"] != saved["token"]


def test_login_refused_and_not_logged_in(anonymous: Cli) -> None:
    done = anonymous.run("jobs")
    assert done.returncode == 3 and "not logged in" in done.stderr
    done = anonymous.run(
        "login", anonymous.base_url, "-u", "alice", "--password-stdin", stdin="wrong\n"
    )
    assert done.returncode == 3 and "login refused" in done.stderr
    assert not anonymous.session_file.exists()
    assert anonymous.run("status", "1").returncode == 3


def test_server_unreachable(anonymous: Cli) -> None:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        url = f"http://127.0.0.1:{port}"
        done = anonymous.run("login", url, "--password-stdin", stdin="x\n")
        assert done.returncode == 3 and "cannot reach the server" in done.stderr
        env = {"SIMPLE_SCHEDULER_URL": url, "SIMPLE_SCHEDULER_TOKEN": "a.b.c"}
        done = anonymous.run("jobs", env=env)
        assert done.returncode == 3 and f"cannot reach the server at {url}" in done.stderr


def test_login_with_a_credential_file(anonymous: Cli) -> None:
    credential = anonymous.home / "alice.cred"
    anonymous.server.cli("create-credential-token", "alice", "alice-pw", "-o", str(credential))
    anonymous.ok("login", anonymous.base_url, "--credential", str(credential))
    assert json.loads(anonymous.session_file.read_text())["user"] == "alice"
    job_id = anonymous.submit(DIAMOND, "--wait")
    assert anonymous.ok("status", str(job_id), "--json")
    garbage = anonymous.home / "garbage.cred"
    garbage.write_bytes(b"not a credential")
    done = anonymous.run("login", anonymous.base_url, "--credential", str(garbage))
    assert done.returncode == 3 and "credential refused" in done.stderr


def test_url_and_token_from_the_environment(cli: Cli) -> None:
    token = cli.token()
    cli.session_file.unlink()
    env = {"SIMPLE_SCHEDULER_URL": cli.server.url, "SIMPLE_SCHEDULER_TOKEN": token}
    job_id = int(cli.ok("submit", str(write(cli.home / "d.xml", DIAMOND)), env=env))
    assert cli.run("wait", str(job_id), env=env).returncode == 0
    assert not cli.session_file.exists()


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_logout_revokes_the_session(cli: Cli) -> None:
    token = cli.token()
    done = cli.run("logout")
    assert done.returncode == 0 and "logged out" in done.stderr
    assert not cli.session_file.exists()
    done = cli.run(
        "jobs", env={"SIMPLE_SCHEDULER_TOKEN": token, "SIMPLE_SCHEDULER_URL": cli.base_url}
    )
    assert done.returncode == 3
    assert "session expired: log in again" in done.stderr
    assert cli.run("logout").returncode == 0  # nothing to do is not an error
    # A token from the environment is revoked; the saved session (another one) stays.
    cli.login()
    saved = cli.token()
    other = cli.server.login("alice", "alice-pw")
    assert cli.ok("logout", env={"SIMPLE_SCHEDULER_TOKEN": other}) == ""
    assert cli.token() == saved
    assert (
        httpx.get(f"{cli.server.url}/common/connected", headers={"sessionid": other}).json()
        is False
    )
    assert cli.ok("jobs", "--json")


def test_session_expiry_says_log_in_again_but_a_wait_outlives_it() -> None:
    root = Path(tempfile.mkdtemp(prefix=f"{RUN_PREFIX}cli-exp-"))
    token = new_token()
    srv = Server(root, token)
    srv.env["SIMPLE_SCHEDULER_TOKEN_LIFETIME_S"] = "6"
    cli = Cli(srv, root / "home")
    cli.home.mkdir()
    gate = root / "gate"
    try:
        srv.cli("create-user", "alice", "alice-pw")
        srv.start()
        cli.login()
        job_id = cli.submit(
            job_xml([{"name": "t", "bash": f"until [ -e {gate} ]; do sleep 0.01; done"}])
        )
        waiting = cli.popen("wait", str(job_id))
        until(lambda: polling(waiting), "wait to poll the server")
        expired = until(
            lambda: (done := cli.run("jobs")).returncode == 3 and done,
            "the session to expire",
        )
        assert "session expired: log in again" in expired.stderr
        assert "simple-scheduler login" in expired.stderr
        assert "Traceback" not in expired.stderr
        # The wait started with a valid session renewed it as it went.
        assert waiting.poll() is None
        gate.touch()
        _, stderr = waiting.communicate(timeout=30)
        assert waiting.returncode == 0, stderr
        cli.login()
        assert cli.ok("status", str(job_id))
    finally:
        cli.stop()
        srv.kill()
        kill_under(root, token)
        shutil.rmtree(root, ignore_errors=True)


# Submitting and waiting.


FAILING = job_xml(
    [{"name": "ok", "bash": "echo fine"}, {"name": "bad", "bash": "echo broken >&2; exit 3"}],
    name="failing",
)


def test_submit_prints_the_id_and_wait_exits_with_the_outcome(cli: Cli) -> None:
    job_id = cli.submit(DIAMOND)
    done = cli.run("wait", str(job_id))
    assert done.returncode == 0, done.stderr
    assert f"job {job_id} FINISHED: 4/4 tasks done, 0 failed" in done.stderr
    # FINISHED, but with a faulty task: exit 1.
    failing = cli.submit(FAILING)
    done = cli.run("wait", str(failing), "--json")
    assert done.returncode == 1
    summary = json.loads(done.stdout)
    assert set(summary) == JOB_KEYS and set(summary["tasks"]) == COUNT_KEYS
    assert summary["status"] == "FINISHED" and summary["tasks"]["faulty"] == 1
    assert cli.run("wait", "999999").returncode == 2


def test_submit_wait_and_json(cli: Cli) -> None:
    path = write(cli.home / "diamond.xml", DIAMOND)
    done = cli.run("submit", str(path), "--wait")
    assert done.returncode == 0, done.stderr
    job_id = int(done.stdout.split()[0])
    assert "FINISHED: 4/4 tasks done, 0 failed" in done.stderr
    assert "\x1b[" not in done.stdout + done.stderr  # no terminal, no escape codes
    done = cli.run("submit", str(path), "--json")
    assert done.returncode == 0
    assert set(json.loads(done.stdout)) == {"id", "name"}
    assert json.loads(done.stdout)["id"] > job_id
    done = cli.run("submit", str(write(cli.home / "f.xml", FAILING)), "--wait", "--json")
    assert done.returncode == 1
    assert json.loads(done.stdout)["tasks"]["faulty"] == 1


def test_submit_variables_and_stdin(cli: Cli) -> None:
    xml = job_xml(
        [{"name": "t", "bash": 'echo "greeting=$variables_GREETING"'}],
        variables={"GREETING": "hello"},
    )
    job_id = cli.submit(xml, "-v", "GREETING=bonjour", "--wait")
    assert cli.ok("logs", str(job_id), "t") == "greeting=bonjour\n"
    job_id = int(cli.ok("submit", "-", "--wait", stdin=xml).split()[0])
    assert cli.ok("logs", str(job_id), "t") == "greeting=hello\n"
    done = cli.run("submit", str(write(cli.home / "v.xml", xml)), "-v", "NOEQUALS")
    assert done.returncode == 2 and "NAME=VALUE" in done.stderr


def test_invalid_input_exits_2(cli: Cli) -> None:
    bad = write(
        cli.home / "bad.xml",
        b'<?xml version="1.0"?>\n<job xmlns="urn:proactive:jobdescriptor:3.14" name="x">\n'
        b'<taskFlow>\n<task name="a"><depends><task ref="nope"/></depends>\n'
        b'<scriptExecutable><script><code language="bash">true</code></script>'
        b"</scriptExecutable></task>\n</taskFlow></job>\n",
    )
    done = cli.run("validate", str(bad))
    assert done.returncode == 2
    assert "line " in done.stdout and "nope" in done.stdout
    done = cli.run("submit", str(bad))
    assert done.returncode == 2 and "nope" in done.stderr and "line " in done.stderr
    assert cli.run("validate", str(write(cli.home / "ok.xml", DIAMOND))).stdout.endswith("valid\n")
    assert cli.run("submit", str(cli.home / "missing.xml")).returncode == 2
    assert cli.run("status", "not-a-number").returncode == 2
    assert cli.run("jobs", "--no-such-option").returncode == 2
    done = cli.run("jobs", "--status", "BOGUS")
    assert done.returncode == 2 and "unknown job status" in done.stderr


def test_help_documents_the_exit_codes(anonymous: Cli) -> None:
    for args in (["--help"], ["submit", "--help"], ["wait", "--help"]):
        text = " ".join(anonymous.ok(*args).split())
        assert "Exit codes: 0 the job FINISHED with no failed or faulty task" in text
        assert "3 server unreachable or not logged in" in text


def gated_job(directory: Path) -> bytes:
    """Two tasks that take turns through files, plus a flood of lines from each."""
    d = str(directory)

    def after(name: str) -> str:
        return f"until [ -e {d}/{name} ]; do sleep 0.01; done"

    a = "\n".join(
        [
            "echo ready",
            after("go"),
            f"echo a1; touch {d}/a1",
            after("b1"),
            f"echo a2; touch {d}/a2",
            after("b2"),
            "echo a3",
            'for i in $(seq 300); do echo "a-$i"; done',
        ]
    )
    b = "\n".join(
        [
            after("a1"),
            f"echo b1; echo b1err >&2; touch {d}/b1",
            after("a2"),
            f"touch {d}/b2",
            'for i in $(seq 300); do echo "b-$i"; done',
            "printf 'b-last-without-newline'",
        ]
    )
    return job_xml([{"name": "A", "bash": a}, {"name": "B", "bash": b}], name="gated")


def test_follow_streams_interleaved_output_prefixed_by_task(cli: Cli) -> None:
    gates = cli.home / "gates"
    gates.mkdir()
    path = write(cli.home / "gated.xml", gated_job(gates))
    proc = cli.popen("submit", str(path), "--follow")
    lines: list[str] = []
    # The first line is the job id; "ready" is printed while A still runs (it waits for
    # "go"): the output streams, it is not printed at the end.
    read_lines_until(proc, lines, lambda seen: "A | ready" in seen)
    (gates / "go").touch()
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    lines += stdout.decode().splitlines()
    assert lines[0].isdigit()
    body = lines[1:]
    assert all(line.startswith(("A | ", "B | ")) for line in body), body
    by_a = [line[4:] for line in body if line.startswith("A | ")]
    by_b = [line[4:] for line in body if line.startswith("B | ")]
    assert by_a == ["ready", "a1", "a2", "a3"] + [f"a-{i}" for i in range(1, 301)]
    assert by_b == ["b1"] + [f"b-{i}" for i in range(1, 301)] + ["b-last-without-newline"]
    assert "B | b1err" in stderr.decode().splitlines()
    assert f"job {lines[0]} FINISHED: 2/2 tasks done, 0 failed" in stderr.decode()


def test_wait_sees_the_end_through_the_events_socket(cli: Cli) -> None:
    """`wait` subscribes to the events WebSocket (the server logs the CLI's subscription)
    and is woken by the job's end; `logs -f` uses the socket too."""
    gate = cli.home / "gate"
    script = f"until [ -e {gate} ]; do sleep 0.01; done; echo done"
    job_id = cli.submit(job_xml([{"name": "g", "bash": script}]))
    line = "events subscriber of alice connected (simple-scheduler-cli)"
    before = cli.server.log.read_text().count(line)
    with cli.http() as http:
        wait_task(http, job_id, "g", "RUNNING")
        waiting = cli.popen("wait", str(job_id))
        following = cli.popen("logs", str(job_id), "-f")
        until(
            lambda: cli.server.log.read_text().count(line) == before + 2,
            "wait and logs -f to subscribe",
        )
        gate.touch()
    _, stderr = waiting.communicate(timeout=30)
    assert waiting.returncode == 0, stderr
    assert f"job {job_id} FINISHED: 1/1 tasks done, 0 failed" in stderr.decode()
    stdout, stderr = following.communicate(timeout=30)
    assert following.returncode == 0, stderr
    assert stdout.decode().splitlines() == ["g | done"]


def test_wait_on_a_job_killed_meanwhile(cli: Cli) -> None:
    job_id = cli.submit(
        job_xml([{"name": "s", "bash": "sleep 60"}, {"name": "t", "depends": ["s"]}])
    )
    with cli.http() as http:
        wait_task(http, job_id, "s", "RUNNING")
        waiting = cli.popen("wait", str(job_id))
        until(lambda: polling(waiting), "wait to poll the server")
        assert cli.ok("kill", str(job_id)) == f"job {job_id} killed\n"
        wait_job(http, job_id, {"KILLED"})
    _, stderr = waiting.communicate(timeout=30)
    assert waiting.returncode == 1
    assert f"job {job_id} KILLED" in stderr.decode()
    done = cli.run("kill", str(job_id))
    assert done.returncode == 1 and "already ended" in done.stderr


def test_wait_on_a_job_removed_meanwhile(cli: Cli) -> None:
    job_id = cli.submit(job_xml([{"name": "s", "bash": "sleep 60"}]))
    with cli.http() as http:
        wait_task(http, job_id, "s", "RUNNING")
        waiting = cli.popen("wait", str(job_id))
        until(lambda: polling(waiting), "wait to poll the server")
        assert cli.ok("rm", str(job_id)) == f"job {job_id} removed\n"
    _, stderr = waiting.communicate(timeout=30)
    assert waiting.returncode == 1, stderr
    # rm kills a live job first: the wait may see it KILLED, or gone.
    text = stderr.decode()
    assert f"job {job_id} was removed" in text or f"job {job_id} KILLED" in text, text
    assert cli.run("status", str(job_id)).returncode == 2


# Listing and inspecting.


def test_jobs_lists_live_jobs_or_all(cli: Cli) -> None:
    finished = cli.submit(DIAMOND, "--wait")
    running = cli.submit(job_xml([{"name": "s", "bash": "sleep 60"}], name="sleeper"))
    try:
        live = json.loads(cli.ok("jobs", "--json"))
        assert running in [j["id"] for j in live] and finished not in [j["id"] for j in live]
        assert all(set(j) == JOB_KEYS and set(j["tasks"]) == COUNT_KEYS for j in live)
        everything = json.loads(cli.ok("jobs", "--all", "--json"))
        ids = [j["id"] for j in everything]
        assert running in ids and finished in ids and ids == sorted(ids, reverse=True)
        only = json.loads(cli.ok("jobs", "--status", "finished", "--json"))
        assert finished in [j["id"] for j in only] and {j["status"] for j in only} == {"FINISHED"}
        assert len(json.loads(cli.ok("jobs", "--all", "--limit", "1", "--json"))) == 1
        done = cli.run("jobs", "--all", "--limit", "1")
        assert len(done.stdout.splitlines()) == 2 and "the newest 1 shown" in done.stderr
        table = cli.ok("jobs", "--all").splitlines()
        assert table[0].split() == [
            "ID", "NAME", "OWNER", "STATUS", "TASKS", "FAILED", "SUBMITTED", "DURATION"
        ]  # fmt: skip
        row = next(line.split() for line in table[1:] if line.split()[0] == str(finished))
        assert row[1:6] == ["diamond", "alice", "FINISHED", "4/4", "0"]
        assert all(line == line.rstrip() for line in table)
    finally:
        cli.ok("kill", str(running))


def test_status_table_and_json(cli: Cli) -> None:
    job_id = cli.submit(FAILING, "--wait", expect=1)
    done = cli.run("status", str(job_id))
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert lines[0] == f"job {job_id} (failing, alice): FINISHED, 2/2 tasks done, 1 failed"
    assert lines[1].split() == ["TASK", "STATUS", "ATTEMPTS", "DURATION", "EXIT", "REASON"]
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert rows["ok"][1:3] == ["FINISHED", "1/1"] and rows["ok"][4] == "0"
    assert rows["bad"][1:3] == ["FAULTY", "1/1"] and rows["bad"][4] == "3"
    assert rows["bad"][5:] == ["exit", "code", "3"]
    report = json.loads(cli.ok("status", str(job_id), "--json"))
    assert set(report) == {"job", "tasks"} and set(report["job"]) == JOB_KEYS
    assert [t["name"] for t in report["tasks"]] == ["ok", "bad"]
    bad = report["tasks"][1]
    assert set(bad) == TASK_KEYS
    assert bad["status"] == "FAULTY" and bad["exit_code"] == 3 and bad["signal"] is None
    assert bad["reason"] == "exit code 3" and bad["attempts"] == 1
    assert isinstance(bad["duration_s"], float) and bad["started_at"].endswith("+00:00")


def test_logs_of_a_job_a_task_and_stderr(cli: Cli) -> None:
    job_id = cli.submit(FAILING, "--wait", expect=1)
    assert cli.ok("logs", str(job_id)).splitlines() == ["ok  | fine"]
    done = cli.run("logs", str(job_id), "--err")
    assert done.returncode == 0 and "bad | broken" in done.stderr.splitlines()
    assert cli.ok("logs", str(job_id), "bad", "--err") == "broken\n"
    assert cli.ok("logs", str(job_id), "ok") == "fine\n"
    done = cli.run("logs", str(job_id), "nope")
    assert done.returncode == 2 and "nope" in done.stderr


def test_logs_follow_a_task_until_it_ends(cli: Cli) -> None:
    gate = cli.home / "release"
    script = f"echo first; until [ -e {gate} ]; do sleep 0.01; done; echo second"
    job_id = cli.submit(job_xml([{"name": "t", "bash": script}, {"name": "u", "bash": "true"}]))
    tail = cli.popen("logs", str(job_id), "t", "-f")
    lines: list[str] = []
    read_lines_until(tail, lines, lambda seen: seen == ["first"])
    assert tail.poll() is None  # still following: the task has not ended
    gate.touch()
    stdout, stderr = tail.communicate(timeout=30)
    assert tail.returncode == 0, stderr
    assert lines + stdout.decode().splitlines() == ["first", "second"]
    # The whole job, followed after it ended, prints everything and returns.
    assert cli.ok("logs", str(job_id), "-f").splitlines() == ["t | first", "t | second"]


def test_a_closed_stdout_exits_141_quietly(cli: Cli) -> None:
    job_id = cli.submit(job_xml([{"name": "t", "bash": "seq 200000"}]), "--wait")
    for args in ([str(job_id), "t"], [str(job_id)]):
        reader = cli.popen("logs", *args)
        assert reader.stdout is not None and reader.stdout.readline() in (b"1\n", b"t | 1\n")
        reader.stdout.close()
        _, stderr = reader.communicate(timeout=30)
        assert reader.returncode == 141 and stderr == b""


# Acting on jobs.


def test_pause_and_resume(cli: Cli) -> None:
    gate = cli.home / "pause-gate"
    xml = job_xml(
        [
            {"name": "s", "bash": f"until [ -e {gate} ]; do sleep 0.01; done"},
            {"name": "t", "depends": ["s"], "bash": "echo t ran"},
        ]
    )
    job_id = cli.submit(xml)
    with cli.http() as http:
        wait_task(http, job_id, "s", "RUNNING")
        assert cli.ok("resume", str(job_id)) == f"job {job_id} was not paused\n"
        assert cli.ok("pause", str(job_id)) == f"job {job_id} paused\n"
        gate.touch()
        wait_task(http, job_id, "s", "FINISHED")
        assert json.loads(cli.ok("status", str(job_id), "--json"))["job"]["status"] == "PAUSED"
        assert cli.ok("resume", str(job_id)) == f"job {job_id} resumed\n"
        assert cli.run("wait", str(job_id)).returncode == 0
    done = cli.run("resume", str(job_id))
    assert done.returncode == 1  # 409: the job has ended


def test_kill_one_task(cli: Cli) -> None:
    xml = job_xml([{"name": "s", "bash": "sleep 60"}, {"name": "u", "bash": "true"}])
    job_id = cli.submit(xml)
    with cli.http() as http:
        wait_task(http, job_id, "s", "RUNNING")
    assert cli.ok("kill", str(job_id), "s") == f"task s of job {job_id} killed\n"
    assert cli.run("wait", str(job_id)).returncode == 1
    done = cli.run("kill", str(job_id), "u")
    assert done.returncode == 1  # 409: not running


def test_restart_a_task_in_error(cli: Cli) -> None:
    marker = cli.home / "second-try"
    script = f"if [ -e {marker} ]; then echo second; else touch {marker}; echo first; exit 1; fi"
    xml = job_xml([{"name": "flaky", "bash": script}], on_error="suspendTask")
    job_id = cli.submit(xml)
    with cli.http() as http:
        wait_task(http, job_id, "flaky", "IN_ERROR")
    waiting = cli.popen("wait", str(job_id))
    said: list[str] = []
    read_lines_until(waiting, said, lambda seen: any("IN_ERROR" in s for s in seen), stderr=True)
    assert said == [f"job {job_id} is IN_ERROR: a task is suspended after an error"
                    " (`restart JOB TASK`, or `kill`); still waiting"]  # fmt: skip
    assert cli.ok("restart", str(job_id), "flaky") == f"task flaky of job {job_id} restarted\n"
    _, stderr = waiting.communicate(timeout=30)
    assert waiting.returncode == 0, stderr
    assert cli.ok("logs", str(job_id), "flaky") == "first\nsecond\n"
    done = cli.run("restart", str(job_id), "flaky")
    assert done.returncode == 1 and "FINISHED" in done.stderr


def test_rm(cli: Cli) -> None:
    first, second = cli.submit(DIAMOND, "--wait"), cli.submit(DIAMOND, "--wait")
    assert cli.ok("rm", str(first), str(second)).splitlines() == [
        f"job {first} removed",
        f"job {second} removed",
    ]
    assert cli.run("status", str(first)).returncode == 2
    assert cli.run("rm", str(first)).returncode == 2


def test_another_users_job_is_not_found(cli: Cli, server: Server) -> None:
    job_id = cli.submit(DIAMOND, "--wait")
    other = Cli(server, cli.home / "bob")
    other.home.mkdir()
    other.login("bob")
    done = other.run("status", str(job_id))
    assert done.returncode == 2 and "does not exist" in done.stderr
    assert job_id not in [j["id"] for j in json.loads(other.ok("jobs", "--all", "--json"))]


# Terminals.


def test_colours_and_bar_only_on_a_terminal_without_no_color(cli: Cli) -> None:
    job_id = cli.submit(DIAMOND, "--wait")
    code, shown = run_in_pty(cli, ["wait", str(job_id)], {})
    assert code == 0 and b"\x1b[" in shown  # the bar, on a terminal
    code, shown = run_in_pty(cli, ["status", str(job_id)], {})
    assert code == 0 and b"\x1b[" in shown and b"FINISHED" in shown
    for args in (["wait", str(job_id)], ["status", str(job_id)], ["jobs", "--all"]):
        code, shown = run_in_pty(cli, args, {"NO_COLOR": "1"})
        assert code == 0 and b"\x1b" not in shown, shown


def test_ctrl_c_while_waiting_exits_130_and_the_job_goes_on(cli: Cli) -> None:
    gate = cli.home / "ctrl-c-gate"
    job_id = cli.submit(
        job_xml([{"name": "s", "bash": f"until [ -e {gate} ]; do sleep 0.01; done"}])
    )
    waiting = cli.popen("wait", str(job_id))
    with cli.http() as http:
        wait_task(http, job_id, "s", "RUNNING")
        # SIGINT once the CLI is past its imports and polling (its first request is done).
        until(lambda: polling(waiting), "wait to poll the server")
        waiting.send_signal(signal.SIGINT)
        _, stderr = waiting.communicate(timeout=30)
        assert waiting.returncode == 130 and b"Traceback" not in stderr
        assert http.get(f"/scheduler/jobs/{job_id}/info").json()["status"] == "RUNNING"
        gate.touch()
        wait_job(http, job_id, TERMINAL)


def test_the_client_imports_nothing_of_the_server() -> None:
    loaded = _modules_after(
        "from simple_scheduler.client import action_verbs, inspect_verbs, rest\n"
        "from simple_scheduler.client import session_verbs, submit_verbs"
    )
    assert "simple_scheduler.client.rest" in loaded
    others = [m for m in loaded if not m.startswith("simple_scheduler.client")]
    assert others == ["simple_scheduler", "simple_scheduler.states"]

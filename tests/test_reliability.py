"""Issue 14: what an adversarial trial of the real server broke, each against `run-server`.

Every test starts its own server (a fresh data folder, a free port), because most of
them kill it, load it, or count what it did; teardown kills every process it started.
"""

from __future__ import annotations

import contextlib
import itertools
import select
import shutil
import signal
import socket
import sqlite3
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import kill_under
from test_e2e import Server, client, submit, wait, wait_task
from wfxml import job_xml

pytestmark = pytest.mark.slow


@pytest.fixture
def fresh() -> Iterator[Server]:
    """A server not started yet: the test sets its environment, then starts it."""
    root = Path(tempfile.mkdtemp(prefix="ss-rel-", dir="/tmp"))
    token = uuid.uuid4().hex
    srv = Server(root, token)
    try:
        srv.cli("create-user", "alice", "alice-pw")
        srv.cli("create-user", "bob", "bob-pw")
        yield srv
    finally:
        srv.kill()
        kill_under(root, token)
        shutil.rmtree(root, ignore_errors=True)


def test_acknowledged_job_runs_after_a_crash_right_after_submit(fresh: Server) -> None:
    """Issue 14.2: slots full, submit, SIGKILL on the answer, restart: the job runs."""
    fresh.env["SIMPLE_SCHEDULER_NB_OF_WORKERS"] = "1"
    fresh.start()
    with client(fresh) as c:
        filler = submit(c, job_xml([{"name": "busy", "bash": "sleep 60"}]))
        wait_task(c, filler, "busy", "RUNNING")
        job_id = submit(c, job_xml([{"name": "A", "bash": "echo A"}, {"name": "B"}]))
    fresh.kill(signal.SIGKILL)
    db = fresh.root / "data" / "simple-scheduler.sqlite"
    with sqlite3.connect(db) as conn:
        # Whatever the race gave, put the tasks where a kill inside the status window
        # leaves them: committed by submit (SUBMITTED), their PENDING never written.
        conn.execute(
            "UPDATE tasks SET status = 'SUBMITTED' WHERE job_id = ? AND status = 'PENDING'",
            (job_id,),
        )
        statuses = {
            s for (s,) in conn.execute("SELECT status FROM tasks WHERE job_id = ?", (job_id,))
        }
    conn.close()
    assert statuses == {"SUBMITTED"}
    fresh.start()
    with client(fresh) as c:
        assert c.put(f"/scheduler/jobs/{filler}/kill").json() is True
        info = wait(c, job_id, {"FINISHED", "CANCELED", "FAILED", "KILLED"})
        assert info["status"] == "FINISHED" and info["numberOfFinishedTasks"] == 2, info
        assert c.get(f"/scheduler/jobs/{job_id}/tasks/A/result/log/out").text == "A\n"


def _chunked_upload(port: int, path: str, token: str, size: int) -> tuple[int, int]:
    """POST a multipart body of about `size` bytes with `Transfer-Encoding: chunked` over
    a raw socket, stopping as soon as the server answers; (status, bytes sent)."""
    boundary = "b0undary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="j.xml"\r\n'
        "Content-Type: application/xml\r\n\r\n"
    ).encode()
    chunk = b"<" * 65536
    sent = 0
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            (
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nsessionid: {token}\r\n"
                f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                "Transfer-Encoding: chunked\r\n\r\n"
            ).encode()
        )
        answer = b""
        with contextlib.suppress(OSError):  # the server may close once it has answered
            for i, part in enumerate(itertools.repeat(chunk, size // len(chunk))):
                data = head + part if i == 0 else part
                sock.sendall(b"%x\r\n%s\r\n" % (len(data), data))
                sent += len(data)
                readable, _, _ = select.select([sock], [], [], 0)
                if readable:
                    break
            else:
                tail = f"\r\n--{boundary}--\r\n".encode()
                sock.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (len(tail), tail))
        sock.settimeout(30)
        with contextlib.suppress(OSError):
            while b"}" not in answer:
                more = sock.recv(4096)
                if not more:
                    break
                answer += more
    return int(answer.split(b" ", 2)[1]), sent


def test_chunked_upload_over_the_limit_is_refused_as_it_arrives(fresh: Server) -> None:
    """Issue 14.3: a chunked multipart body 32 times the limit gets 413 on submit and on
    validate, the server's memory (its peak) does not take the body in, and it goes on serving."""
    limit = 2 * 1024 * 1024
    fresh.env["SIMPLE_SCHEDULER_MAX_UPLOAD_BYTES"] = str(limit)
    fresh.start()
    assert fresh.proc is not None
    status_file = Path(f"/proc/{fresh.proc.pid}/status")

    def peak_rss() -> int:
        """The server's resident memory high-water mark (VmHWM), in bytes."""
        line = next(x for x in status_file.read_text().splitlines() if x.startswith("VmHWM:"))
        return int(line.split()[1]) * 1024

    token = fresh.login("alice", "alice-pw")
    size = 32 * limit
    for path in ("/rest/scheduler/submit", "/rest/scheduler/validate"):
        before = peak_rss()
        status, sent = _chunked_upload(fresh.port, path, token, size)
        grown = peak_rss() - before
        assert status == 413, path
        assert grown < size // 4, (path, grown, sent)
    with client(fresh) as c:
        job_id = submit(c, job_xml([{"name": "A", "bash": "echo A"}]))
        assert wait(c, job_id, {"FINISHED", "CANCELED", "FAILED"})["status"] == "FINISHED"

"""Issue 14: what an adversarial trial of the real server broke, each against `run-server`.

Every test starts its own server (a fresh data folder, a free port), because most of
them kill it, load it, or count what it did; teardown kills every process it started.
"""

from __future__ import annotations

import shutil
import signal
import sqlite3
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import kill_everything_under
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
        kill_everything_under(root, token)
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

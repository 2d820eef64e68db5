"""The Slurm backend against a live one-node Slurm cluster and the real `run-server`,
on each store engine (SQLite, and PostgreSQL as a cluster deployment would use).

`.ci/slurm-up.sh` brings the cluster up (munge, slurmctld, slurmd) when it is not; a
cluster that cannot start fails these tests, never skips them. Each task is a Slurm job,
so each step waits for Slurm's scheduling tick (about a second here). Tasks are kept
queued in Slurm by one exclusive job taking the whole node (`node_taken`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from conftest import store_engines
from harness import TOKEN_VAR, kill_under, new_token, short_tmp, wait_for
from pgserver import PgServer
from test_e2e import Server, submit, wait
from test_events import events_until, job_ended, subscribe
from wfxml import job_xml

from simple_scheduler.execution.backend import TaskSpec
from simple_scheduler.execution.slurm import FIFO, batch_script
from simple_scheduler.execution.taskdir import read_status

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
ENDED = {"FINISHED", "CANCELED", "FAILED", "KILLED"}


def slurm_answers() -> bool:
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and any(
        s.startswith(("idle", "mix", "alloc")) for s in out.stdout.decode().split()
    )


@pytest.fixture(scope="module")
def cluster() -> None:
    """A live Slurm: started by `.ci/slurm-up.sh` when it is not up (fails if it cannot)."""
    if not slurm_answers():
        done = subprocess.run(
            ["bash", str(REPO / ".ci" / "slurm-up.sh")], capture_output=True, text=True
        )
        assert done.returncode == 0, f"cannot start Slurm: {done.stdout}{done.stderr}"
    assert slurm_answers()


@pytest.fixture(params=store_engines())
def server(cluster: None, request: pytest.FixtureRequest) -> Iterator[Server]:
    database_url = None
    if request.param == "postgresql":
        pg: PgServer = request.getfixturevalue("pg_server")
        database_url = pg.new_database()
    token = new_token()
    with short_tmp("slurm-") as root:
        srv = Server(root, token, database_url)
        srv.env.update(
            SIMPLE_SCHEDULER_EXECUTION_BACKEND="slurm",
            SIMPLE_SCHEDULER_NB_OF_WORKERS="0",
            SIMPLE_SCHEDULER_SLURM_POLL_INTERVAL_S="0.2",
            SIMPLE_SCHEDULER_ADMIN_PASSWORD="alice-pw",
        )
        try:
            srv.start("--create-admin", "alice")
            yield srv
        finally:
            srv.kill()
            for job in our_slurm_jobs(root):
                subprocess.run(["scancel", job], capture_output=True)
            kill_under(root, token)


def our_slurm_jobs(root: Path) -> list[str]:
    """The Slurm job ids of this test's server (their output goes under `root`)."""
    return list(slurm_reasons(root))


def slurm_reasons(root: Path) -> dict[str, str]:
    """Slurm job id -> "STATE reason" of this test's server's jobs."""
    out = subprocess.run(
        ["squeue", "--me", "-h", "-o", "%i|%T %r|%o"], capture_output=True, text=True
    ).stdout
    jobs = {}
    for line in out.splitlines():
        job_id, _, rest = line.partition("|")
        state, _, command = rest.partition("|")
        if command.startswith(str(root)):
            jobs[job_id] = state
    return jobs


def sbatch(*args: str) -> str:
    done = subprocess.run(
        ["sbatch", "--parsable", "--output=/dev/null", *args],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    )
    return done.stdout.strip().split(";")[0]


def slurm_job_gone(slurm_id: str) -> bool:
    out = subprocess.run(
        ["squeue", "-h", "-t", "PENDING,RUNNING,COMPLETING", "-j", slurm_id, "-o", "%i"],
        capture_output=True,
        text=True,
    )
    return out.returncode != 0 or not out.stdout.strip()


@contextmanager
def node_taken() -> Iterator[str]:
    """One exclusive job on the one node: every job submitted meanwhile queues."""
    filler = sbatch("--exclusive", "--job-name=ss-test-filler", "--wrap", "sleep 600")
    try:
        wait_for(
            lambda: (
                subprocess.run(
                    ["squeue", "-h", "-j", filler, "-o", "%T"], capture_output=True, text=True
                ).stdout.strip()
                == "RUNNING"
            ),
            60,
            "the filler job to take the node",
        )
        yield filler
    finally:
        subprocess.run(["scancel", filler], capture_output=True)
        wait_for(lambda: slurm_job_gone(filler), 60, "the filler job to end")


def client(server: Server) -> httpx.Client:
    token = server.login("alice", "alice-pw")
    return httpx.Client(base_url=server.url, headers={"sessionid": token}, timeout=30)


def task(c: httpx.Client, job: int, name: str) -> dict[str, Any]:
    info: dict[str, Any] = c.get(f"/scheduler/jobs/{job}/tasks/{name}").json()["taskInfo"]
    return info


def marked(marker: str) -> list[psutil.Process]:
    """Processes whose command line holds `marker` (a task's own, unique to a test)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if marker in " ".join(proc.info["cmdline"] or []):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def test_diamond_runs_in_dependency_order_as_slurm_jobs(server: Server) -> None:
    xml = job_xml(
        [
            {"name": "A", "bash": "echo A; echo $SLURM_JOB_ID"},
            {"name": "B", "depends": ["A"], "bash": "echo B"},
            {"name": "C", "depends": ["A"], "bash": "echo C"},
            {"name": "D", "depends": ["B", "C"], "bash": "echo D"},
        ],
        name="diamond",
    )
    with client(server) as c:
        job = submit(c, xml)
        info = wait(c, job, ENDED, timeout=90)
        assert info["status"] == "FINISHED" and info["numberOfFinishedTasks"] == 4
        t = {name: task(c, job, name) for name in "ABCD"}
        assert t["A"]["finishedTime"] <= min(t["B"]["startTime"], t["C"]["startTime"])
        assert max(t["B"]["finishedTime"], t["C"]["finishedTime"]) <= t["D"]["startTime"]
        out = c.get(f"/scheduler/jobs/{job}/tasks/A/result/log/out").text.split()
        assert out[0] == "A" and out[1].isdigit()  # it ran inside a Slurm job


def test_failures_retry_then_fault_and_dependents_still_run(server: Server) -> None:
    xml = job_xml(
        [
            {
                "name": "bad",
                "bash": "echo try >> ../../tries; exit 3",
                "max_exec": 2,
                "retry_delay": "1",
            },
            {"name": "after", "depends": ["bad"], "bash": "echo after"},
        ],
        name="policy",
    )
    with client(server) as c:
        job = submit(c, xml)
        info = wait(c, job, ENDED, timeout=120)
        assert info["status"] == "FINISHED" and info["numberOfFaultyTasks"] == 1
        bad = task(c, job, "bad")
        assert bad["taskStatus"] == "FAULTY" and bad["numberOfExecutionLeft"] == 0
        assert task(c, job, "after")["taskStatus"] == "FINISHED"


def test_walltime_and_kill_leave_no_process(server: Server) -> None:
    marker = f"sleep {1000 + os.getpid() % 1000}.{uuid.uuid4().int % 10**6}"
    with client(server) as c:
        timed = submit(c, job_xml([{"name": "T", "bash": marker, "walltime": "00:00:03"}]))
        killed = submit(c, job_xml([{"name": "K", "bash": marker}]))
        wait_for(
            lambda: task(c, killed, "K")["taskStatus"] == "RUNNING" and bool(marked(marker)),
            60,
            "the task to run in Slurm",
        )
        assert c.put(f"/scheduler/jobs/{killed}/kill").status_code == 200
        assert wait(c, killed, ENDED, timeout=60)["status"] == "KILLED"
        info = wait(c, timed, ENDED, timeout=90)
        assert task(c, timed, "T")["taskStatus"] == "FAULTY", info
        wait_for(lambda: not marked(marker), 60, "every task process to be gone")


def test_a_task_cancelled_from_outside_fails_with_a_reason(server: Server) -> None:
    marker = f"sleep {2000 + os.getpid() % 1000}.{uuid.uuid4().int % 10**6}"
    with client(server) as c:
        job = submit(c, job_xml([{"name": "X", "bash": marker}]))
        wait_for(lambda: bool(marked(marker)), 60, "the task to run")
        (slurm_id,) = our_slurm_jobs(server.root)
        subprocess.run(["scancel", slurm_id], check=True)
        wait(c, job, ENDED, timeout=60)
        x = task(c, job, "X")
        assert x["taskStatus"] == "FAULTY"
        assert "Slurm" in (x.get("statusReason") or x.get("reason") or str(x)), x
        wait_for(lambda: not marked(marker), 60, "the cancelled task's processes to go")


def gated_ledger_job(root: Path, name: str) -> tuple[bytes, Path, Path]:
    """A diamond-less join whose A and B wait for a flag file, then each task appends its
    name to a ledger (which says what ran, and how often): (xml, flag, ledger)."""
    flag, ledger = root / "go", root / "ledger"
    script = f"while [ ! -e {flag} ]; do sleep 0.1; done; echo $PA_TASK_NAME >> {ledger}"
    xml = job_xml(
        [
            {"name": "A", "bash": script},
            {"name": "B", "bash": script},
            {"name": "C", "depends": ["A", "B"], "bash": f"echo C >> {ledger}"},
        ],
        name=name,
    )
    return xml, flag, ledger


def test_server_killed_mid_job_adopts_its_slurm_jobs(server: Server) -> None:
    xml, flag, ledger = gated_ledger_job(server.root, "adopt")
    with client(server) as c:
        job = submit(c, xml)
        wait_for(lambda: len(our_slurm_jobs(server.root)) == 2, 60, "two Slurm jobs")
    server.kill(signal.SIGKILL)
    flag.touch()  # A and B end while no server watches
    server.start()
    with client(server) as c:
        info = wait(c, job, ENDED, timeout=90)
        assert info["status"] == "FINISHED" and info["numberOfFinishedTasks"] == 3
    assert sorted(ledger.read_text().split()) == ["A", "B", "C"]  # each ran once


def test_slurmctld_restarted_mid_job(server: Server) -> None:
    flag = server.root / "go"
    xml = job_xml(
        [
            {"name": "A", "bash": f"while [ ! -e {flag} ]; do sleep 0.1; done"},
            {"name": "B", "depends": ["A"], "bash": "echo B"},
        ],
        name="restart",
    )
    with client(server) as c:
        job = submit(c, xml)
        wait_for(
            lambda: (
                task(c, job, "A")["taskStatus"] == "RUNNING" and bool(our_slurm_jobs(server.root))
            ),
            60,
            "A to run",
        )
        pid = int(Path("/run/slurmctld.pid").read_text())
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not psutil.pid_exists(pid), 30, "slurmctld to stop")
        flag.touch()  # A ends, and B must be submitted, while the controller is away
        # State restored from StateSaveLocation. A daemon of the machine, not of this
        # test: started without the run's token and outside its folders.
        clean = {k: v for k, v in os.environ.items() if k != TOKEN_VAR}
        subprocess.run(["slurmctld"], check=True, env=clean, cwd="/")
        wait_for(slurm_answers, 60, "slurmctld to answer again")
        info = wait(c, job, ENDED, timeout=120)
        assert info["status"] == "FINISHED" and info["numberOfFinishedTasks"] == 2


def test_queued_task_reads_pending_pause_holds_it_resume_runs_it(server: Server) -> None:
    with client(server) as c, node_taken():
        job = submit(c, job_xml([{"name": "Q", "bash": "echo ran"}], name="queued"))
        doomed = submit(c, job_xml([{"name": "H", "bash": "echo never"}], name="held"))
        wait_for(lambda: len(slurm_reasons(server.root)) == 2, 60, "both queued in Slurm")
        # Handed to Slurm, not running there: PENDING, and so is its job.
        assert task(c, job, "Q")["taskStatus"] == "PENDING"
        assert c.get(f"/scheduler/jobs/{job}/info").json()["status"] == "PENDING"
        for j in (job, doomed):
            assert c.put(f"/scheduler/jobs/{j}/pause").status_code == 200
        wait_for(
            lambda: all(
                r.startswith("PENDING JobHeld") for r in slurm_reasons(server.root).values()
            ),
            60,
            "both held in Slurm",
        )
        assert task(c, job, "Q")["taskStatus"] == "PAUSED"
        assert task(c, doomed, "H")["taskStatus"] == "PAUSED"
        # A held task is killed in Slurm's queue: NOT_STARTED, its Slurm job gone.
        assert c.put(f"/scheduler/jobs/{doomed}/kill").status_code == 200
        assert wait(c, doomed, ENDED, timeout=60)["status"] == "KILLED"
        assert task(c, doomed, "H")["taskStatus"] == "NOT_STARTED"
        wait_for(lambda: len(slurm_reasons(server.root)) == 1, 60, "H cancelled in Slurm")
    # The node is free: a job submitted now runs, and ours, held, does not.
    probe = sbatch("--wrap", "true")
    wait_for(lambda: slurm_job_gone(probe), 60, "a probe job to run on the free node")
    (reason,) = slurm_reasons(server.root).values()
    assert reason.startswith("PENDING JobHeld")
    with client(server) as c:
        assert task(c, job, "Q")["taskStatus"] == "PAUSED"
        resumed_ms = time.time() * 1000
        assert c.put(f"/scheduler/jobs/{job}/resume").status_code == 200
        assert wait(c, job, ENDED, timeout=60)["status"] == "FINISHED"
        q = task(c, job, "Q")
        assert q["taskStatus"] == "FINISHED" and q["numberOfExecutionLeft"] == 0
        assert q["startTime"] >= resumed_ms  # its start in Slurm, not its queuing
        out = c.get(f"/scheduler/jobs/{job}/tasks/Q/result/log/out").text
        assert out.strip() == "ran"


def test_cancel_job_policy_cancels_running_and_queued_siblings(server: Server) -> None:
    marker = f"sleep {3000 + os.getpid() % 1000}.{uuid.uuid4().int % 10**6}"
    flag = server.root / "fail-now"
    xml = job_xml(
        [
            {"name": "long", "bash": marker},
            {"name": "bad", "bash": f"while [ ! -e {flag} ]; do sleep 0.1; done; exit 4"},
            {"name": "child", "depends": ["bad"], "bash": "echo child"},
        ],
        name="cancel",
        on_error="cancelJob",
    )
    with client(server) as c:
        job = submit(c, xml)
        wait_for(
            lambda: (
                task(c, job, "long")["taskStatus"] == "RUNNING"
                and task(c, job, "bad")["taskStatus"] == "RUNNING"
                and bool(marked(marker))
            ),
            60,
            "both tasks to run in Slurm",
        )
        flag.touch()
        assert wait(c, job, ENDED, timeout=60)["status"] == "CANCELED"
        assert task(c, job, "bad")["taskStatus"] == "FAULTY"
        assert task(c, job, "long")["taskStatus"] == "ABORTED"
        assert task(c, job, "child")["taskStatus"] == "NOT_STARTED"
        wait_for(lambda: not marked(marker), 60, "the aborted task's processes to go")
        wait_for(lambda: not our_slurm_jobs(server.root), 60, "no Slurm job of ours left")


def test_pause_job_policy_then_finish_in_error_task(server: Server) -> None:
    xml = job_xml(
        [
            {"name": "bad", "bash": "exit 5"},
            {"name": "after", "depends": ["bad"], "bash": "echo after"},
        ],
        name="pausejob",
        on_error="pauseJob",
    )
    with client(server) as c:
        job = submit(c, xml)
        wait(c, job, {"PAUSED"}, timeout=60)
        assert task(c, job, "bad")["taskStatus"] == "IN_ERROR"
        assert task(c, job, "after")["taskStatus"] == "PAUSED"
        assert c.put(f"/scheduler/jobs/{job}/tasks/bad/finishInErrorTask").status_code == 200
        assert c.put(f"/scheduler/jobs/{job}/resume").status_code == 200
        assert wait(c, job, ENDED, timeout=60)["status"] == "FINISHED"
        assert task(c, job, "after")["taskStatus"] == "FINISHED"


def test_polling_alone_settles_tasks_it_never_saw_start(server: Server) -> None:
    """Scripts on other nodes cannot notify the server: with polling alone, a short task
    starts and ends between two polls. It still goes PENDING -> RUNNING -> FINISHED, and
    its job through RUNNING, and its child runs."""
    server.kill()
    fifo = server.root / "data" / "tasks" / ".slurm.fifo"
    fifo.unlink()
    fifo.mkdir()  # no FIFO can be made there: polling only
    server.env["SIMPLE_SCHEDULER_SLURM_POLL_INTERVAL_S"] = "3"
    server.start()
    xml = job_xml(
        [{"name": "A", "bash": "echo a"}, {"name": "B", "depends": ["A"], "bash": "echo b"}],
        name="polled",
    )
    with client(server) as c:
        job = submit(c, xml)
        info = wait(c, job, ENDED, timeout=90)
        assert info["status"] == "FINISHED" and info["numberOfFinishedTasks"] == 2
        a, b = task(c, job, "A"), task(c, job, "B")
        assert 0 < a["startTime"] <= a["finishedTime"] <= b["startTime"]
    log = server.log.read_text()
    assert "polling only" in log and "Traceback" not in log


def test_server_killed_while_tasks_wait_in_slurm_adopts_them(server: Server) -> None:
    """Queued and held executions survive a SIGKILLed server: adopted, not submitted
    again; the held one stays held until its job is resumed; each runs once."""
    ledger = server.root / "ledger"
    with client(server) as c, node_taken():
        held = submit(c, job_xml([{"name": "H", "bash": f"echo H >> {ledger}"}]))
        queued = submit(c, job_xml([{"name": "Q", "bash": f"echo Q >> {ledger}"}]))
        wait_for(lambda: len(slurm_reasons(server.root)) == 2, 60, "both queued in Slurm")
        assert c.put(f"/scheduler/jobs/{held}/pause").status_code == 200
        wait_for(
            lambda: (
                sum(r.startswith("PENDING JobHeld") for r in slurm_reasons(server.root).values())
                == 1
            ),
            60,
            "H held in Slurm",
        )
        before = set(slurm_reasons(server.root))
        server.kill(signal.SIGKILL)
        server.start()
        with client(server) as c2:
            assert task(c2, held, "H")["taskStatus"] == "PAUSED"
            assert task(c2, queued, "Q")["taskStatus"] == "PENDING"
        assert set(slurm_reasons(server.root)) == before  # adopted, not submitted again
    with client(server) as c:
        assert wait(c, queued, ENDED, timeout=60)["status"] == "FINISHED"
        # Q's Slurm job may still be completing after its status was recorded.
        wait_for(lambda: len(slurm_reasons(server.root)) == 1, 60, "Q's Slurm job to leave")
        (reason,) = slurm_reasons(server.root).values()
        assert reason.startswith("PENDING JobHeld")  # the node is free: H is held
        assert c.put(f"/scheduler/jobs/{held}/resume").status_code == 200
        assert wait(c, held, ENDED, timeout=60)["status"] == "FINISHED"
    assert sorted(ledger.read_text().split()) == ["H", "Q"]


def test_a_queued_task_holds_its_worker_slot(server: Server) -> None:
    """nb_of_workers = 1: the second task goes to Slurm only once the first has ended,
    although the first spent its time queued there."""
    server.kill()
    server.env["SIMPLE_SCHEDULER_NB_OF_WORKERS"] = "1"
    server.start()
    xml = job_xml([{"name": "A", "bash": "sleep 1"}, {"name": "B", "bash": "sleep 1"}])
    with client(server) as c:
        with node_taken():
            job = submit(c, xml)
            wait_for(lambda: len(slurm_reasons(server.root)) == 1, 60, "one task in Slurm")
            assert {task(c, job, n)["taskStatus"] for n in "AB"} == {"PENDING"}
        assert wait(c, job, ENDED, timeout=90)["status"] == "FINISHED"
        first, second = sorted((task(c, job, n) for n in "AB"), key=lambda t: t["startTime"])
        assert first["finishedTime"] <= second["startTime"]


def test_the_script_notifies_through_the_fifo_and_never_blocks_on_it(short_tmp: Path) -> None:
    """Run by bash here (no Slurm needed): its notes reach a reader; with nobody reading
    (a dead server, another host) it still ends; with no FIFO it makes no file there."""
    fifo = short_tmp / FIFO
    os.mkfifo(fifo)
    scripts = {}
    for name in ("read", "unread", "absent"):
        directory = short_tmp / name
        directory.mkdir()
        spec = TaskSpec(f"1.{name}.1", 1, name, ["true"], {}, str(directory))
        scripts[name] = directory / "slurm.sh"
        scripts[name].write_text(batch_script(spec, str(fifo)))

    def run(name: str) -> None:
        subprocess.run(["bash", str(scripts[name])], check=True, timeout=30, cwd=short_tmp)
        status = read_status(str(scripts[name].parent))
        assert status is not None and status.ok

    reader = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
    try:
        run("read")
        assert os.read(reader, 4096) == b"S 1.read.1\nE 1.read.1\n"
    finally:
        os.close(reader)
    run("unread")  # a timeout here would mean it blocked
    fifo.unlink()
    run("absent")
    assert not fifo.exists()


def test_events_say_pending_while_queued_then_running_at_the_start(server: Server) -> None:
    token = server.login("alice", "alice-pw")
    with subscribe(server, token) as ws, client(server) as c:
        with node_taken():
            job = submit(c, job_xml([{"name": "E", "bash": "echo e"}], name="events"))
            wait_for(lambda: len(slurm_reasons(server.root)) == 1, 60, "E queued in Slurm")
            freed_ms = time.time() * 1000
        frames = events_until(ws, job_ended(job))
    # The task's first status travels in JOB_SUBMITTED's job state (as in ProActive), then
    # it stays PENDING while queued: no event until Slurm runs it.
    submitted = [f for f in frames if f["action"] == "JOB_SUBMITTED"]
    assert [t["taskInfo"]["taskStatus"] for t in submitted[0]["data"]["tasks"].values()] == [
        "PENDING"
    ]
    tasks = [f for f in frames if f["action"] == "TASK_STATE_UPDATED"]
    assert [f["data"]["taskStatus"] for f in tasks] == ["RUNNING", "FINISHED"]
    running = tasks[0]
    assert running["schedulerEvent"] == "TASK_PENDING_TO_RUNNING"
    assert running["data"]["startTime"] >= freed_ms  # when Slurm ran it, not queued it
    jobs = [f["schedulerEvent"] for f in frames if f["action"] == "JOB_STATE_UPDATED"]
    assert jobs == ["JOB_PENDING_TO_RUNNING", "JOB_RUNNING_TO_FINISHED"]

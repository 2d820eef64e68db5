"""Two real `run-server`s on one PostgreSQL database and a live Slurm: leader and standby.

Both servers share what a deployment shares (the database, the process directory, the
key files) and keep their own data directory. The standby serves reads and refuses
changes; SIGKILLing the leader hands the lock to the standby, which adopts the Slurm jobs
and finishes the job; a leader whose lock session is terminated exits (fenced). Slurm
and PostgreSQL fail these tests when they cannot start in CI (`cluster`, `pg_server`).
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import kill_under, new_token, short_tmp, wait_for
from pgserver import PgServer, sync_query
from test_client_cli import Cli
from test_e2e import Server, submit, wait
from test_slurm import (  # noqa: F401  (cluster: a fixture)
    ENDED,
    cluster,
    gated_ledger_job,
    our_slurm_jobs,
)
from wfxml import job_xml

from simple_scheduler.server import EXIT_FENCED, EXIT_START_FAILED
from simple_scheduler.store.dbengine import LEADER_LOCK_KEY

pytestmark = pytest.mark.slow

#: Generous: the takeover itself takes well under a second here (README: Scaling out).
TAKEOVER_TIMEOUT_S = 30


class Pair:
    """A leader and a standby over one database, sharing tasks and keys under `root`."""

    def __init__(self, root: Path, token: str, database_url: str) -> None:
        self.root = root
        self.token = token
        self.database_url = database_url
        self.servers: list[Server] = []

    def server(self, name: str, **env: str) -> Server:
        (self.root / name).mkdir()
        srv = Server(self.root / name, self.token, self.database_url)
        shared = self.root / "shared"
        srv.env.update(
            SIMPLE_SCHEDULER_EXECUTION_BACKEND="slurm",
            SIMPLE_SCHEDULER_NB_OF_WORKERS="0",
            SIMPLE_SCHEDULER_SLURM_POLL_INTERVAL_S="0.2",
            SIMPLE_SCHEDULER_ADMIN_PASSWORD="alice-pw",
            SIMPLE_SCHEDULER_PROCESS_DIRECTORY=str(shared / "tasks"),
            SIMPLE_SCHEDULER_PRIVATE_KEY_PATH=str(shared / "keys" / "private.pem"),
            SIMPLE_SCHEDULER_PUBLIC_KEY_PATH=str(shared / "keys" / "public.pem"),
        )
        srv.env.update(env)
        self.servers.append(srv)
        return srv


@pytest.fixture
def pair(cluster: None, pg_server: PgServer) -> Iterator[Pair]:  # noqa: F811
    token = new_token()
    with short_tmp("sb-") as root:
        p = Pair(root, token, pg_server.new_database())
        try:
            yield p
        finally:
            for srv in p.servers:
                srv.kill()
            for job in our_slurm_jobs(root):
                subprocess.run(["scancel", job], capture_output=True)
            kill_under(root, token)


@pytest.fixture
def leader_and_standby(pair: Pair) -> tuple[Server, Server]:
    leader = pair.server("a")
    leader.start("--create-admin", "alice")
    standby = pair.server("b")
    standby.start()
    return leader, standby


def health(srv: Server) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{srv.url}/health", timeout=5).json()
    return body


def session(srv: Server, token: str) -> httpx.Client:
    return httpx.Client(base_url=srv.url, headers={"sessionid": token}, timeout=30)


def lock_holder(database_url: str) -> int | None:
    """The backend pid of the session holding the leader lock."""
    rows = sync_query(
        database_url,
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND classid = ?::bigint::oid AND objid = ?::bigint::oid AND objsubid = 1",
        LEADER_LOCK_KEY >> 32,
        LEADER_LOCK_KEY & 0xFFFFFFFF,
    )
    return int(str(rows[0][0])) if rows else None


def test_standby_serves_reads_and_refuses_changes(
    leader_and_standby: tuple[Server, Server],
) -> None:
    leader, standby = leader_and_standby
    assert health(leader)["role"] == "leader"
    assert health(standby) == {"status": "ok", "role": "standby", "leader": leader.url}
    # Sessions cross: both servers sign with the shared key pair and read one store.
    from_leader = leader.login("alice", "alice-pw")
    from_standby = standby.login("alice", "alice-pw")
    xml = job_xml([{"name": "T", "bash": "echo hello-from-slurm"}], name="read-me")
    with session(leader, from_standby) as a, session(standby, from_leader) as b:
        job = submit(a, xml)
        assert wait(a, job, ENDED, timeout=90)["status"] == "FINISHED"
        assert b.get(f"/scheduler/jobs/{job}").json()["jobInfo"]["status"] == "FINISHED"
        log = b.get(f"/scheduler/jobs/{job}/tasks/T/result/log/out")
        assert log.status_code == 200 and "hello-from-slurm" in log.text
        assert b.get("/scheduler/status").json() == "STOPPED"
        assert a.get("/scheduler/status").json() == "STARTED"

        refused = b.post("/scheduler/submit", files={"file": ("job.xml", xml, "text/xml")})
        assert refused.status_code == 503, refused.text
        assert refused.headers["Retry-After"].isdigit()
        assert refused.headers["X-Scheduler-Leader"] == leader.url
        message = refused.json()["errorMessage"]
        assert "standby" in message and leader.url in message
        assert b.put(f"/scheduler/jobs/{job}/kill").status_code == 503
        assert b.delete(f"/scheduler/jobs/{job}").status_code == 503
        # Nothing half-stored: the leader knows one job.
        assert a.get("/scheduler/jobs").json() == {"list": [str(job)], "size": 1}
        # Logging out on the standby revokes the session everywhere (one store).
        assert b.put("/common/logout").status_code == 204
    with session(leader, from_leader) as a:
        assert a.get(f"/scheduler/jobs/{job}/info").status_code == 401

    # The command line says the same, with the leader's address.
    (home := standby.root / "home").mkdir()
    cli = Cli(standby, home)
    cli.login()
    (home / "job.xml").write_bytes(xml)
    done = cli.run("submit", str(home / "job.xml"))
    assert done.returncode == 3 and "standby" in done.stderr and leader.url in done.stderr, done


def test_a_standby_with_other_keys_is_refused(
    leader_and_standby: tuple[Server, Server], pair: Pair
) -> None:
    leader, _ = leader_and_standby
    stray = pair.server("c")
    for name in ("SIMPLE_SCHEDULER_PRIVATE_KEY_PATH", "SIMPLE_SCHEDULER_PUBLIC_KEY_PATH"):
        del stray.env[name]  # its own key pair, in its data directory
    with pytest.raises(RuntimeError, match="another key pair"):
        stray.start()
    assert stray.proc is not None and stray.proc.returncode == EXIT_START_FAILED
    assert leader.url in stray.log.read_text()


def test_leader_killed_standby_takes_over_and_adopts_slurm_jobs(
    leader_and_standby: tuple[Server, Server], pair: Pair
) -> None:
    leader, standby = leader_and_standby
    xml, flag, ledger = gated_ledger_job(pair.root, "failover")
    token = leader.login("alice", "alice-pw")
    with session(leader, token) as a:
        job = submit(a, xml)
        wait_for(lambda: len(our_slurm_jobs(pair.root)) == 2, 60, "A and B in Slurm")
    killed = time.monotonic()
    leader.kill(signal.SIGKILL)
    wait_for(lambda: health(standby)["role"] == "leader", TAKEOVER_TIMEOUT_S, "the takeover")
    print(f"\ntakeover: {time.monotonic() - killed:.2f} s after the leader's SIGKILL")
    flag.touch()
    with session(standby, token) as b:  # the dead leader's session still works
        info = wait(b, job, ENDED, timeout=90)
        assert info["status"] == "FINISHED" and info["numberOfFinishedTasks"] == 3
        assert b.get("/scheduler/status").json() == "STARTED"
    assert sorted(ledger.read_text().split()) == ["A", "B", "C"]  # each ran exactly once
    assert our_slurm_jobs(pair.root) == []


def test_a_leader_losing_its_lock_session_fences_itself(
    leader_and_standby: tuple[Server, Server], pair: Pair
) -> None:
    leader, standby = leader_and_standby
    pid = lock_holder(pair.database_url)
    assert pid is not None
    sync_query(pair.database_url, "SELECT pg_terminate_backend(?)", pid)
    assert leader.proc is not None
    assert leader.proc.wait(TAKEOVER_TIMEOUT_S) == EXIT_FENCED
    assert "fenced" in leader.log.read_text()
    wait_for(lambda: health(standby)["role"] == "leader", TAKEOVER_TIMEOUT_S, "the takeover")
    new_holder = lock_holder(pair.database_url)
    assert new_holder is not None and new_holder != pid


def test_with_the_local_backend_a_second_server_is_refused(pair: Pair) -> None:
    local = {"SIMPLE_SCHEDULER_EXECUTION_BACKEND": "local"}
    first = pair.server("a", **local)
    first.start()
    second = pair.server("b", **local)
    with pytest.raises(RuntimeError, match='a standby needs execution_backend = "slurm"'):
        second.start()
    assert health(first)["role"] == "leader"


def test_a_leader_stopped_cleanly_hands_over(leader_and_standby: tuple[Server, Server]) -> None:
    leader, standby = leader_and_standby
    token = leader.login("alice", "alice-pw")
    assert leader.kill(signal.SIGTERM) == 0  # writes what is pending, then lets go
    wait_for(lambda: health(standby)["role"] == "leader", TAKEOVER_TIMEOUT_S, "the takeover")
    with session(standby, token) as b:
        job = submit(b, job_xml([{"name": "N", "bash": "echo new-leader"}], name="after"))
        assert wait(b, job, ENDED, timeout=90)["status"] == "FINISHED"

"""Issue 14 item 6: tasks run under their own account, not the server's.

As root (CI), with `task_user` set to an unprivileged test account: the task's uid is that
account's; it can neither read the server's private key nor open its database, nor
signal the server or the hypervisor; its environment holds none of the server's
SIMPLE_SCHEDULER_* settings. runAsMe maps the job's owner to an account, and a task of
an unmapped owner fails, saying why.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import kill_under
from wfxml import job_xml

from simple_scheduler.auth.keys import ensure_keys
from simple_scheduler.config import DEFAULT_TASK_ENV_BASE, Config, load_config
from simple_scheduler.execution.launcher import spawn_hypervisor
from simple_scheduler.scheduler.core import Scheduler
from simple_scheduler.scheduler.spec import base_environment
from simple_scheduler.server import _private_database, local_scheduler
from simple_scheduler.store import jobstore
from simple_scheduler.store.db import Store
from simple_scheduler.store.migrate import migrate
from simple_scheduler.workflow import parse_workflow

ACCOUNT = "ss-task"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")


@pytest.fixture(scope="session")
def task_account() -> pwd.struct_passwd:
    """The unprivileged account tasks run as (created once when absent)."""
    try:
        return pwd.getpwnam(ACCOUNT)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", ACCOUNT],
            check=True,
        )
        return pwd.getpwnam(ACCOUNT)


@pytest.fixture
def data_dir() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="ss-", dir="/tmp"))
    try:
        yield root
    finally:
        kill_under(os.path.realpath(root))
        subprocess.run(["rm", "-rf", str(root)], check=False)


@pytest.fixture
async def server(
    data_dir: Path, task_account: pwd.struct_passwd
) -> AsyncIterator[tuple[Config, Scheduler, int]]:
    """What `run-server` sets up, with task_user and run_as_me_map: the data folder,
    keys, database, a hypervisor started with --task-accounts, and the scheduler."""
    secret = "sqlite+aiosqlite:///" + str(data_dir / "db.sqlite")
    settings = {
        "SIMPLE_SCHEDULER_DATA_DIR": str(data_dir),
        "SIMPLE_SCHEDULER_DATABASE_URL": secret,
        "SIMPLE_SCHEDULER_TASK_USER": ACCOUNT,
        "SIMPLE_SCHEDULER_RUN_AS_ME_MAP": f"alice={ACCOUNT}",
    }
    config = load_config(env=settings)
    config.ensure_dirs()
    ensure_keys(config.private_key_path, config.public_key_path)
    store = await Store.open(config.database_url)
    await migrate(store)
    _private_database(config)
    hv = spawn_hypervisor(
        str(config.hypervisor_socket_path), str(config.process_directory), task_accounts=True
    )
    scheduler = local_scheduler(
        store,
        str(config.hypervisor_socket_path),
        process_directory=config.process_directory,
        nb_of_workers=2,
        kill_grace=1.0,
        # The server's environment, settings included: none of them may reach a task.
        base_env=base_environment(DEFAULT_TASK_ENV_BASE, {**os.environ, **settings}),
        task_user=config.task_user,
        run_as_me_map=config.run_as_me_map,
    )
    await scheduler.start()
    try:
        yield config, scheduler, hv.pid
    finally:
        await scheduler.stop()
        await store.close()
        hv.terminate()
        hv.wait()


PROBE = """
echo "uid=$(id -u)"
cat {key} >/dev/null 2>&1 && echo key=read || echo key=denied
cat {db} >/dev/null 2>&1 && echo db=open || echo db=denied
echo "server=$(kill -0 {server} 2>&1)"
echo "hypervisor=$(kill -0 {hypervisor} 2>&1)"
echo "settings=$(env | grep -c '^SIMPLE_SCHEDULER_')"
"""


async def _run(scheduler: Scheduler, xml: bytes, owner: str) -> dict[str, Any]:
    job_id = await scheduler.submit(parse_workflow(xml), owner, xml.decode())
    await scheduler.wait_job(job_id, timeout=60)
    [found] = await jobstore.list_tasks(scheduler.store, job_id, 0, 10)
    row = dict(found)
    out = Path(scheduler.files.output_path(job_id, 0, 1, "stdout"))
    row["stdout"] = out.read_text() if out.exists() else ""
    return row


async def test_task_runs_as_task_user_and_cannot_reach_the_server(
    server: tuple[Config, Scheduler, int], task_account: pwd.struct_passwd
) -> None:
    config, scheduler, hv_pid = server
    db = config.database_url.split("///", 1)[1]
    probe = PROBE.format(
        key=config.private_key_path, db=db, server=os.getpid(), hypervisor=hv_pid
    )
    row = await _run(scheduler, job_xml([{"name": "t", "bash": probe}]), "bob")
    lines = dict(line.split("=", 1) for line in row["stdout"].splitlines())
    assert row["status"] == "FINISHED", row
    assert lines["uid"] == str(task_account.pw_uid)
    assert lines["key"] == "denied"
    assert lines["db"] == "denied"
    assert "Operation not permitted" in lines["server"]
    assert "Operation not permitted" in lines["hypervisor"]
    assert lines["settings"] == "0"
    # The hypervisor itself kept CAP_KILL, CAP_SETGID and CAP_SETUID only.
    with open(f"/proc/{hv_pid}/status") as f:
        caps = dict(line.split(":", 1) for line in f if line.startswith("Cap"))
    assert int(caps["CapEff"], 16) == int(caps["CapBnd"], 16) == (1 << 5) | (1 << 6) | (1 << 7)


async def test_a_failing_step_is_recorded_under_the_task_account(
    server: tuple[Config, Scheduler, int],
) -> None:
    _, scheduler, _ = server
    xml = job_xml([{"name": "t", "pre": "exit 3", "bash": "echo main"}])
    row = await _run(scheduler, xml, "bob")
    assert row["status"] == "FAULTY"
    assert row["reason"].startswith("pre failed")


def _run_as_me(xml: bytes) -> bytes:
    return xml.replace(b'<task name="t"', b'<task name="t" runAsMe="true"')


async def test_run_as_me_uses_the_owners_mapped_account(
    server: tuple[Config, Scheduler, int], task_account: pwd.struct_passwd
) -> None:
    _, scheduler, _ = server
    xml = _run_as_me(job_xml([{"name": "t", "bash": "id -un"}]))
    row = await _run(scheduler, xml, "alice")
    assert row["status"] == "FINISHED"
    assert row["stdout"].strip() == ACCOUNT
    row = await _run(scheduler, xml, "bob")  # not in run_as_me_map
    assert row["status"] == "FAULTY"
    assert "runAsMe" in row["reason"] and "'bob'" in row["reason"]

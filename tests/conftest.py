"""Shared fixtures: a short temporary folder, a real hypervisor process, a migrated SQLite
file; and the session-end check that no process of this run survives it.

The machinery (waiting, folders, the hypervisor class, finding processes) is in
`harness.py`; this module only turns it into fixtures.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import harness
import pytest
from harness import TOKEN_VAR, Hypervisor

from simple_scheduler.store.db import Store

# Every process this run starts inherits the run's token (unless a test gives it its own,
# which starts with it): the session-end check finds them by it.
os.environ[TOKEN_VAR] = harness.RUN_TOKEN


@pytest.fixture(scope="session", autouse=True)
def no_process_survives_the_run() -> Iterator[None]:
    """Fail the run if a hypervisor, monitor or task it started is still alive at the end
    (after every fixture's teardown, which should have ended them)."""
    yield
    with contextlib.suppress(AssertionError):
        harness.wait_for(lambda: not harness.survivors(), 10, "this run's processes to end")
    left = harness.survivors()
    for line in left:  # ended here, so that the next run starts clean
        with contextlib.suppress(OSError):
            os.kill(int(line.split()[0]), signal.SIGKILL)
    if left:
        pytest.fail("processes of this test run survived it:\n" + "\n".join(left), pytrace=False)


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short temporary folder (AF_UNIX socket paths are limited to 108 bytes); every
    process working inside it is killed at teardown."""
    with harness.short_tmp() as root:
        yield root


@pytest.fixture
def run_token() -> str:
    return harness.new_token()


@pytest.fixture
def hypervisor(short_tmp: Path, run_token: str) -> Iterator[Hypervisor]:
    """A running hypervisor; every process of the test is killed at teardown."""
    hv = Hypervisor(short_tmp, run_token)
    hv.start()
    try:
        yield hv
    finally:
        hv.kill()
        harness.kill_under(short_tmp, run_token)


@pytest.fixture
async def store(short_tmp: Path) -> AsyncIterator[Store]:
    from simple_scheduler.store.migrate import migrate

    db = await Store.open(f"sqlite+aiosqlite:///{short_tmp / 'db.sqlite'}")
    await migrate(db)
    try:
        yield db
    finally:
        await db.close()

"""Build the real app for `test_client()` tests: real scheduler, store, hypervisor.

Nothing of ours is mocked: the fixture wires the same objects `run-server` does, only
with a hypervisor started by the conftest fixture and a key pair made once per session.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import functools
import io
import shutil
import tempfile
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from harness import Hypervisor, make_scheduler, wait_for_async
from quart.typing import TestClientProtocol
from werkzeug.datastructures import FileStorage

from simple_scheduler.api import Services, create_app
from simple_scheduler.api.context import SchedulerApp
from simple_scheduler.auth import users
from simple_scheduler.auth.keys import KeyPair, generate_keys, load_keys
from simple_scheduler.config import Config
from simple_scheduler.scheduler.core import Scheduler
from simple_scheduler.states import JOB_TERMINAL
from simple_scheduler.store.db import Store

ROUNDS = 4
PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "root": "root-pw"}


def make_config(
    root: Path, process_directory: Path, socket_path: str, keys_dir: Path, **overrides: Any
) -> Config:
    values: dict[str, Any] = {
        "data_dir": root,
        "database_url": f"sqlite+aiosqlite:///{root / 'db.sqlite'}",
        "process_directory": process_directory,
        "hypervisor_socket_path": Path(socket_path),
        "public_key_path": keys_dir / "public.pem",
        "private_key_path": keys_dir / "private.pem",
        "nb_of_workers": 4,
        "bcrypt_rounds": ROUNDS,
        "kill_grace_s": 1.0,
    }
    values.update(overrides)
    return Config(**values)


@dataclass
class Api:
    """The app under test, its services, and a logged-in client per user."""

    app: SchedulerApp
    services: Services
    tokens: dict[str, str]

    @property
    def scheduler(self) -> Scheduler:
        return self.services.scheduler

    @property
    def keys(self) -> KeyPair:
        return self.services.keys

    def client(self) -> TestClientProtocol:
        return self.app.test_client()

    def auth(self, user: str = "alice") -> dict[str, str]:
        return {"sessionid": self.tokens[user]}

    async def get(self, path: str, user: str | None = "alice", **kw: Any) -> Any:
        headers = self.auth(user) if user else {}
        return await self.client().get(path, headers=headers, **kw)

    async def put(self, path: str, user: str | None = "alice", **kw: Any) -> Any:
        headers = self.auth(user) if user else {}
        return await self.client().put(path, headers=headers, **kw)

    async def delete(self, path: str, user: str | None = "alice", **kw: Any) -> Any:
        headers = self.auth(user) if user else {}
        return await self.client().delete(path, headers=headers, **kw)

    async def submit(
        self,
        xml: bytes,
        user: str = "alice",
        *,
        path: str = "/rest/scheduler/submit",
        extra: Mapping[str, Any] | None = None,
    ) -> int:
        response = await self.post_workflow(path, xml, user=user, extra=extra)
        assert response.status_code == 200, await response.get_data(as_text=True)
        body = await response.get_json()
        return int(body["id"])

    async def post_workflow(
        self,
        path: str,
        xml: bytes,
        *,
        user: str = "alice",
        extra: Mapping[str, Any] | None = None,
        filename: str = "job.xml",
    ) -> Any:
        files = {
            "file": FileStorage(io.BytesIO(xml), filename=filename, content_type="application/xml")
        }
        form = dict(extra or {})
        return await self.client().post(path, headers=self.auth(user), files=files, form=form)

    async def wait_status(
        self, job_id: int, statuses: set[str] | None = None, timeout: float = 20.0
    ) -> dict[str, Any]:
        """Poll /info until the job reaches one of `statuses` (default: any terminal one)."""
        wanted = statuses or {s.value for s in JOB_TERMINAL}

        async def reached() -> dict[str, Any] | None:
            response = await self.get(f"/rest/scheduler/jobs/{job_id}/info", user="root")
            info: dict[str, Any] = await response.get_json()
            return info if info["status"] in wanted else None

        return await wait_for_async(reached, timeout, f"job {job_id} to be one of {wanted}")

    async def wait_task(
        self, job_id: int, name: str, status: str, timeout: float = 20.0
    ) -> dict[str, Any]:

        async def reached() -> dict[str, Any] | None:
            response = await self.get(f"/rest/scheduler/jobs/{job_id}/tasks/{name}", user="root")
            state: dict[str, Any] = await response.get_json()
            return state if state["taskInfo"]["taskStatus"] == status else None

        return await wait_for_async(reached, timeout, f"task {name} to be {status}")


async def login(app: SchedulerApp, user: str, password: str | None = None) -> str:
    client = app.test_client()
    response = await client.post(
        "/rest/scheduler/login",
        form={"username": user, "password": password or PASSWORDS[user]},
    )
    assert response.status_code == 200, await response.get_data(as_text=True)
    return await response.get_data(as_text=True)


@functools.cache
def keys_dir() -> Path:
    """One RSA pair for the whole run: 3072-bit generation is too slow to repeat."""
    path = Path(tempfile.mkdtemp(prefix="ss-keys-"))
    atexit.register(shutil.rmtree, path, True)
    generate_keys(path / "private.pem", path / "public.pem")
    return path


@contextlib.asynccontextmanager
async def running_api(
    store: Store, hypervisor: Hypervisor, short_tmp: Path, *, workers: int = 4
) -> AsyncIterator[Api]:
    """The app over a started scheduler, with users alice, bob and root (admin) logged in."""
    config = make_config(
        short_tmp,
        hypervisor.process_directory,
        hypervisor.socket_path,
        keys_dir(),
        nb_of_workers=workers,
        database_url=store.url,
    )
    scheduler = make_scheduler(store, hypervisor, workers=workers, grace=1.0)
    assert isinstance(scheduler, Scheduler)
    await scheduler.start()
    try:
        for name, password in PASSWORDS.items():
            await users.create_user(store, name, password, is_admin=name == "root", rounds=ROUNDS)
        keys = load_keys(config.private_key_path, config.public_key_path)
        services = Services(config=config, store=store, scheduler=scheduler, keys=keys)
        app = create_app(services)
        tokens = {name: await login(app, name) for name in PASSWORDS}
        try:
            yield Api(app, services, tokens)
        finally:
            services.close()
    finally:
        await scheduler.stop()


@pytest.fixture(name="api")
async def api_fixture(store: Store, hypervisor: Hypervisor, short_tmp: Path) -> AsyncIterator[Api]:
    """The app over a started scheduler (4 workers), users alice, bob and root (admin)."""
    async with running_api(store, hypervisor, short_tmp) as api:
        yield api


def with_config(api: Api, **overrides: Any) -> Api:
    """The same services under another configuration (e.g. a small upload limit)."""
    config = dataclasses.replace(api.services.config, **overrides)
    services = dataclasses.replace(api.services, config=config)
    return Api(create_app(services), services, api.tokens)

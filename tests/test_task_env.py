"""Tasks' base environment: the configured names only, never the server's settings."""

from __future__ import annotations

import pytest

from simple_scheduler.config import DEFAULT_TASK_ENV_BASE, ConfigError, load_config
from simple_scheduler.scheduler.spec import NoAccount, base_environment, task_account


def test_base_environment_keeps_only_the_configured_names() -> None:
    server = {
        "PATH": "/usr/bin",
        "LANG": "C.UTF-8",
        "AWS_SECRET_ACCESS_KEY": "x",
        "SIMPLE_SCHEDULER_DATABASE_URL": "postgresql://u:password@db/x",
    }
    expected = {"PATH": "/usr/bin", "LANG": "C.UTF-8"}
    assert base_environment(DEFAULT_TASK_ENV_BASE, server) == expected
    # Even when listed, a server setting is never passed on.
    assert base_environment(["SIMPLE_SCHEDULER_DATABASE_URL"], server) == {}


def test_task_env_base_cannot_name_a_server_setting() -> None:
    with pytest.raises(ConfigError, match="task_env_base"):
        load_config(env={"SIMPLE_SCHEDULER_TASK_ENV_BASE": "PATH,SIMPLE_SCHEDULER_PORT"})


def test_task_account_follows_run_as_me_and_the_map() -> None:
    accounts = {"alice": "ss-alice"}
    assert task_account("alice", True, "ss-task", accounts) == "ss-alice"
    assert task_account("alice", False, "ss-task", accounts) == "ss-task"
    assert task_account("bob", False, None, accounts) is None
    with pytest.raises(NoAccount, match="'bob'"):
        task_account("bob", True, "ss-task", accounts)


def test_server_warns_at_start_when_tasks_run_as_its_own_user(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from simple_scheduler.server import _warn_about_task_identity

    with caplog.at_level("WARNING", logger="simple_scheduler.server"):
        _warn_about_task_identity(load_config(env={}))
    assert "task_user is not set" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="simple_scheduler.server"):
        _warn_about_task_identity(load_config(env={"SIMPLE_SCHEDULER_TASK_USER": "nobody"}))
    assert caplog.text == ""

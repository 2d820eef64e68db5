"""The harness itself: what the session-end check counts as this run's processes."""

from __future__ import annotations

import os
import subprocess

import harness
import pytest


def _listed(pid: int) -> bool:
    return any(line.split()[0] == str(pid) for line in harness.survivors())


def test_survivors_are_this_runs_processes_only() -> None:
    with harness.short_tmp() as root:
        sleep = ["sleep", "600"]
        inside = subprocess.Popen(sleep, cwd=root, env={})
        token = subprocess.Popen(sleep, cwd="/", env={harness.TOKEN_VAR: harness.new_token()})
        other = subprocess.Popen(sleep, cwd="/", env={harness.TOKEN_VAR: "another-run"})
        try:
            assert _listed(inside.pid)  # its working directory is one of this run's
            assert _listed(token.pid)  # it carries a token of this run
            assert not _listed(other.pid)
            assert not _listed(os.getpid())
        finally:
            token.kill()
            other.kill()
    # Leaving the folder killed what ran inside it.
    assert inside.wait(10) == -9
    token.wait(10)
    other.wait(10)
    assert not _listed(inside.pid) and not _listed(token.pid)


def test_wait_for_returns_the_value_or_fails_saying_what() -> None:
    values = iter([None, 0, "ready"])
    assert harness.wait_for(lambda: next(values), 10, "a value") == "ready"
    with pytest.raises(AssertionError, match="never"):
        harness.wait_for(lambda: False, 0.05, "never")

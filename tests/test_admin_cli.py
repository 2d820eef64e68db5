"""The administration commands, run through typer's CliRunner on a real data folder."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from simple_scheduler.auth import users
from simple_scheduler.auth.credentials import read_credential
from simple_scheduler.auth.keys import load_keys
from simple_scheduler.cli.admin import register
from simple_scheduler.config import load_config
from simple_scheduler.store.db import Store

COMMANDS = (
    "create-user",
    "delete-user",
    "list-users",
    "gen-keys",
    "create-credential-token",
    "migrate",
)


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SIMPLE_SCHEDULER_BCRYPT_ROUNDS", "4")
    monkeypatch.delenv("SIMPLE_SCHEDULER_PROFILE", raising=False)
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "server.toml"
    path.write_text('[default]\ndata_dir = "data"\n')
    return path


def invoke(app: typer.Typer, *args: str, input: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), input=input)
    return result.exit_code, result.output


def test_help_describes_every_command(app: typer.Typer) -> None:
    code, out = invoke(app, "--help")
    assert code == 0
    for command in COMMANDS:
        assert command in out
    code, out = invoke(app, "create-user", "--help")
    assert code == 0 and "Create a user" in out and "--admin" in out and "--config" in out
    code, out = invoke(app, "gen-keys", "--help")
    assert code == 0 and "RSA key pair" in out and "--force" in out


def test_commands_other_than_create_user_never_make_a_data_directory(
    app: typer.Typer, config_file: Path
) -> None:
    data = config_file.parent / "data"
    for command in ("list-users", "migrate", "gen-keys", "delete-user bob"):
        code, out = invoke(app, *command.split(), "--config", str(config_file))
        assert code == 1 and f"no data directory at {data}" in out, (command, out)
        assert not data.exists()
    code, out = invoke(app, "create-user", "alice", "pw", "--config", str(config_file))
    assert code == 0 and f"created a new data directory at {data}" in out
    code, out = invoke(app, "list-users", "--config", str(config_file))
    assert code == 0 and f"data directory {data}" in out and "alice" in out


def test_migrate(app: typer.Typer, config_file: Path) -> None:
    (config_file.parent / "data").mkdir()
    code, out = invoke(app, "migrate", "--config", str(config_file))
    assert code == 0 and "applied 1" in out
    code, out = invoke(app, "migrate", "--config", str(config_file))
    assert code == 0 and "up to date at version" in out
    assert (config_file.parent / "data" / "simple-scheduler.sqlite").is_file()


def test_user_commands(app: typer.Typer, config_file: Path) -> None:
    cfg = ["--config", str(config_file)]
    (config_file.parent / "data").mkdir()
    code, out = invoke(app, "list-users", *cfg)
    assert code == 0 and "no users" in out
    code, out = invoke(app, "create-user", "alice", "pw-alice", "--admin", *cfg)
    assert code == 0 and "created admin user alice" in out
    code, out = invoke(app, "create-user", "bob", *cfg, input="pw-bob\npw-bob\n")
    assert code == 0 and "created user bob" in out
    assert "pw-bob" not in out  # the prompt does not echo
    code, out = invoke(app, "create-user", "alice", "again", *cfg)
    assert code == 1 and "already exists" in out
    code, out = invoke(app, "create-user", "bad name", "pw", *cfg)
    assert code == 1 and "not allowed" in out

    code, out = invoke(app, "list-users", *cfg)
    # The data directory line goes to stderr, which the runner mixes in.
    lines = [line for line in out.splitlines() if not line.startswith("data directory ")]
    assert code == 0 and len(lines) == 2
    assert lines[0].split()[:2] == ["alice", "admin"] and lines[1].split()[:2] == ["bob", "user"]

    async def check() -> tuple[bool, bool]:
        store = await Store.open(load_config(config_file).database_url)
        try:
            good = await users.verify_password(store, "bob", "pw-bob", rounds=4)
            bad = await users.verify_password(store, "bob", "nope", rounds=4)
            return good is not None, bad is not None
        finally:
            await store.close()

    assert asyncio.run(check()) == (True, False)

    code, out = invoke(app, "delete-user", "bob", *cfg)
    assert code == 0 and "deleted user bob" in out
    code, out = invoke(app, "delete-user", "bob", *cfg)
    assert code == 1 and "no user named 'bob'" in out
    code, out = invoke(app, "list-users", *cfg)
    assert "bob" not in out and "alice" in out


def test_keys_and_credential_file(app: typer.Typer, config_file: Path, tmp_path: Path) -> None:
    cfg = ["--config", str(config_file)]
    (config_file.parent / "data").mkdir()
    code, out = invoke(app, "create-credential-token", "alice", "pw", *cfg)
    assert code == 1 and "gen-keys" in out

    code, out = invoke(app, "gen-keys", *cfg)
    assert code == 0
    config = load_config(config_file)
    first = load_keys(config.private_key_path, config.public_key_path)
    assert stat.S_IMODE(config.private_key_path.stat().st_mode) == 0o600
    code, out = invoke(app, "gen-keys", *cfg)
    assert code == 1 and "--force" in out
    code, out = invoke(app, "gen-keys", "--force", *cfg)
    assert code == 0
    keys = load_keys(config.private_key_path, config.public_key_path)
    assert keys.public_key.public_numbers() != first.public_key.public_numbers()

    target = tmp_path / "alice.token"
    code, out = invoke(app, "create-credential-token", "alice", "pw", "-o", str(target), *cfg)
    assert code == 0 and str(target) in out
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert read_credential(keys.private_key, target.read_bytes()) == ("alice", "pw")

    code, _ = invoke(app, "create-credential-token", "bob", *cfg, input="x\nx\n")
    assert code == 0
    assert read_credential(keys.private_key, (tmp_path / "bob.cred").read_bytes()) == (
        "bob",
        "x",
    )


def test_bad_configuration_exits_with_the_key(app: typer.Typer, config_file: Path) -> None:
    config_file.write_text("[default]\nport = 'eighty'\n")
    code, out = invoke(app, "list-users", "--config", str(config_file))
    assert code == 2 and "port" in out and str(config_file) in out

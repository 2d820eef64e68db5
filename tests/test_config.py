"""Configuration: defaults, file profiles, environment precedence, and bad values."""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path

import pytest

from simple_scheduler.config import (
    Config,
    ConfigError,
    database_engine,
    load_config,
    redacted_url,
    sqlite_path,
)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults_live_under_the_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(env={})
    data = tmp_path.resolve() / "simple-scheduler-data"
    assert config.data_dir == data
    assert config.database_url == f"sqlite+aiosqlite:///{data}/simple-scheduler.sqlite"
    assert sqlite_path(config.database_url) == data / "simple-scheduler.sqlite"
    assert config.process_directory == data / "tasks"
    assert config.hypervisor_socket_path == data / "hypervisor.sock"
    assert config.private_key_path == data / "keys" / "private.pem"
    assert config.public_key_path == data / "keys" / "public.pem"
    assert (config.address, config.port) == ("127.0.0.1", 8000)
    assert config.nb_of_workers == (os.cpu_count() or 1)
    assert config.max_upload_bytes == 10 * 1024 * 1024
    assert config.token_lifetime_s == 86400
    assert config.kill_grace_s == 5.0
    assert config.log_level == "INFO"
    assert config.profile == "default"


def test_config_is_frozen(tmp_path: Path) -> None:
    config = load_config(env={"SIMPLE_SCHEDULER_DATA_DIR": str(tmp_path)})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.port = 1  # type: ignore[misc]


def test_profiles_and_environment_precedence(tmp_path: Path) -> None:
    file = write(
        tmp_path / "s.toml",
        """
[default]
port = 9000
address = "0.0.0.0"
data_dir = "data"
log_level = "debug"

[release]
port = 9100
kill_grace_s = 2
""",
    )
    default = load_config(file, env={})
    assert (default.port, default.address, default.log_level) == (9000, "0.0.0.0", "DEBUG")
    assert default.kill_grace_s == 5.0
    # Relative paths in the file are relative to the file's folder; derived ones follow.
    assert default.data_dir == (tmp_path / "data").resolve()
    assert default.process_directory == default.data_dir / "tasks"
    assert default.database_url.endswith(f"{default.data_dir}/simple-scheduler.sqlite")

    release = load_config(file, env={"SIMPLE_SCHEDULER_PROFILE": "release"})
    assert (release.profile, release.port, release.address) == ("release", 9100, "0.0.0.0")
    assert release.kill_grace_s == 2.0 and isinstance(release.kill_grace_s, float)

    env = {
        "SIMPLE_SCHEDULER_PROFILE": "release",
        "SIMPLE_SCHEDULER_PORT": "9200",
        "SIMPLE_SCHEDULER_NB_OF_WORKERS": "3",
        "SIMPLE_SCHEDULER_PROCESS_DIRECTORY": str(tmp_path / "elsewhere"),
    }
    overridden = load_config(file, env=env)
    assert (overridden.port, overridden.nb_of_workers) == (9200, 3)
    assert overridden.process_directory == tmp_path / "elsewhere"
    assert overridden.hypervisor_socket_path == overridden.data_dir / "hypervisor.sock"


def test_config_file_from_environment_variable(tmp_path: Path) -> None:
    file = write(tmp_path / "s.toml", '[default]\ndatabase_url = "sqlite+aiosqlite:////x/y.db"\n')
    config = load_config(env={"SIMPLE_SCHEDULER_CONFIG": str(file)})
    assert config.database_url == "sqlite+aiosqlite:////x/y.db"
    assert sqlite_path(config.database_url) == Path("/x/y.db")


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("[default]\nport = -1\n", ["port", "-1", "[default]", "out of range"]),
        ("[default]\nport = 70000\n", ["port", "out of range"]),
        ('[default]\nport = "80"\n', ["port", "'80'", "should be an integer"]),
        ("[default]\nnb_of_workers = -1\n", ["nb_of_workers", "out of range"]),
        ("[default]\nnb_of_workers = true\n", ["nb_of_workers", "should be an integer"]),
        ("[default]\nkill_grace_s = -0.5\n", ["kill_grace_s", "out of range"]),
        ("[default]\ndata_dir = 3\n", ["data_dir", "string (a path)"]),
        ("[default]\nlog_level = 'LOUD'\n", ["log_level", "LOUD", "DEBUG"]),
        ("[default]\nmax_upload_bytes = 0\n", ["max_upload_bytes", "out of range"]),
        ("[default]\ntoken_lifetime_s = 0\n", ["token_lifetime_s", "out of range"]),
        ("[default]\nprot = 8000\n", ["prot", "unknown setting", "[default]"]),
        ("[release]\nworkers = 2\n", ["workers", "unknown setting", "[release]"]),
        ("port = 8000\n", ["port", "top level"]),
        ("[default]\nport = \n", ["not valid TOML"]),
        ("[default]\ndatabase_url = 'nowhere'\n", ["database_url", "not a URL"]),
        (
            "[default]\ndatabase_url = 'mysql://u@h/db'\n",
            ["database_url", "not a URL of a supported database", "postgresql://"],
        ),
        (
            "[default]\ndatabase_url = 'postgresql+psycopg://u@h/db'\n",
            ["database_url", "runs on the asyncpg driver"],
        ),
    ],
)
def test_bad_file_values_name_the_key_and_the_file(
    tmp_path: Path, text: str, fragments: list[str]
) -> None:
    file = write(tmp_path / "bad.toml", text)
    with pytest.raises(ConfigError) as info:
        load_config(file, env={})
    message = str(info.value)
    assert str(file) in message
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("SIMPLE_SCHEDULER_PORT", "eighty", "is not an integer"),
        ("SIMPLE_SCHEDULER_PORT", "-5", "out of range"),
        ("SIMPLE_SCHEDULER_KILL_GRACE_S", "soon", "is not a number"),
        ("SIMPLE_SCHEDULER_BCRYPT_ROUNDS", "3", "out of range"),
    ],
)
def test_bad_environment_values_name_the_variable(
    tmp_path: Path, name: str, value: str, fragment: str
) -> None:
    env = {"SIMPLE_SCHEDULER_DATA_DIR": str(tmp_path), name: value}
    with pytest.raises(ConfigError) as info:
        load_config(env=env)
    assert name in str(info.value) and fragment in str(info.value)


def test_missing_file_and_unknown_profile_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", env={})
    file = write(tmp_path / "s.toml", "[default]\nport = 1\n")
    with pytest.raises(ConfigError, match=r"'staging'.*no \[staging\] table"):
        load_config(file, env={"SIMPLE_SCHEDULER_PROFILE": "staging"})
    # A custom profile defined in the file is fine.
    write(file, "[default]\nport = 1\n[staging]\nport = 2\n")
    assert load_config(file, env={"SIMPLE_SCHEDULER_PROFILE": "staging"}).port == 2


def test_ensure_dirs_creates_private_folders(tmp_path: Path) -> None:
    config = load_config(env={"SIMPLE_SCHEDULER_DATA_DIR": str(tmp_path / "d")})
    config.ensure_dirs()
    for folder in (config.data_dir, config.process_directory, config.private_key_path.parent):
        assert folder.is_dir()
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    config.ensure_dirs()  # idempotent
    assert isinstance(config, Config)


def test_postgresql_url_is_accepted_and_its_password_never_shown() -> None:
    url = "postgresql://sched:s3cret@db.example:5432/scheduler"
    config = load_config(None, env={"SIMPLE_SCHEDULER_DATABASE_URL": url})
    assert config.database_url == url
    assert database_engine(url) == "postgresql"
    assert sqlite_path(url) is None
    assert redacted_url(url) == "postgresql://sched:***@db.example:5432/scheduler"
    assert redacted_url("postgresql://sched@/db?host=/run/postgresql") == (
        "postgresql://sched@/db?host=/run/postgresql"
    )

"""The server's settings: one typed, frozen object, loaded once and passed down.

Sources, lowest to highest precedence:

1. built-in defaults, which work on a fresh machine: everything lives under `data_dir`
   (`./simple-scheduler-data`): the database, the keys, the task directories, the socket;
2. the TOML file's `[default]` table;
3. the TOML file's table for the active profile (`SIMPLE_SCHEDULER_PROFILE`, default
   `default`; `release` is the other conventional one), as in Rocket.toml;
4. `SIMPLE_SCHEDULER_<KEY>` environment variables (`SIMPLE_SCHEDULER_PORT=9000`).

Settings derived from `data_dir` (database, task directories, socket, keys) follow it
unless set explicitly. Relative paths in the file are relative to the file's folder;
relative paths from the environment or the defaults, to the working directory. The file is
taken from the `path` argument (the CLI's `--config`), else `SIMPLE_SCHEDULER_CONFIG`, else
no file. Any bad value (wrong type, out of range, unknown key in the file) raises
`ConfigError` naming the key and where the value came from.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

ENV_PREFIX = "SIMPLE_SCHEDULER_"
PROFILE_ENV = ENV_PREFIX + "PROFILE"
CONFIG_ENV = ENV_PREFIX + "CONFIG"
DEFAULT_PROFILE = "default"
KNOWN_PROFILES = ("default", "release")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
EXECUTION_BACKENDS = ("local", "slurm")


def token_partitions(text: str) -> dict[str, str]:
    """`slurm_node_access_token_partitions`: "TOKEN=partition,TOKEN2=partition2"."""
    out: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        token, eq, partition = item.partition("=")
        if not eq or not token.strip() or not partition.strip():
            raise ValueError(f"{item!r} is not TOKEN=partition")
        out[token.strip()] = partition.strip()
    return out


#: What tasks take from the server's environment unless `task_env_base` says otherwise:
#: the basics a shell expects, nothing of the server's own (SIMPLE_SCHEDULER_*, which may
#: carry a database password, never).
DEFAULT_TASK_ENV_BASE = (
    "PATH", "LANG", "LANGUAGE", "LC_ALL", "HOME", "USER", "LOGNAME", "SHELL", "TZ", "TMPDIR",
)


class ConfigError(Exception):
    """A setting is missing, malformed or out of range; the message names it."""


@dataclass(frozen=True, kw_only=True)
class Config:
    """Every setting of the server, typed and validated."""

    #: Interface and port Hypercorn binds (port 0: any free port).
    address: str = "127.0.0.1"
    port: int = 8000
    #: The URL clients reach this server's REST API at, as a standby names the leader in
    #: its refusals ("": http://<address, or the host's name for a wildcard>:<port>/rest).
    public_url: str = ""
    #: Holds the database, keys, task directories and socket unless those are set.
    data_dir: Path
    database_url: str
    process_directory: Path
    hypervisor_socket_path: Path
    public_key_path: Path
    private_key_path: Path
    #: Most tasks running at once.
    nb_of_workers: int
    #: Largest request body accepted (a submitted workflow, a credential file).
    max_upload_bytes: int = 10 * 1024 * 1024
    #: How long a session token is valid. A JWT cannot slide like ProActive's idle
    #: timeout, so it must outlive the longest polling client: one day; logout revokes.
    token_lifetime_s: int = 24 * 3600
    #: Between SIGTERM and SIGKILL when a task is killed or exceeds its walltime.
    kill_grace_s: float = 5.0
    log_level: str = "INFO"
    #: bcrypt cost for new password hashes (2**rounds iterations; 12 is about 0.2 s).
    bcrypt_rounds: int = 12
    #: A hypervisor with no server connected and no task running exits after this long
    #: (0: never). A clean server stop with nothing running stops it at once.
    hypervisor_idle_exit_s: float = 60.0
    #: Where tasks run: "local" (the hypervisor on this machine) or "slurm" (one Slurm
    #: job per task; `process_directory` must be shared with the nodes).
    execution_backend: str = "local"
    slurm_partition: str = ""
    slurm_account: str = ""
    #: Extra `sbatch` options, as on its command line (`--qos=short --mem=1G`).
    slurm_sbatch_options: str = ""
    #: One `squeue` call per interval covers every live task.
    slurm_poll_interval_s: float = 1.0
    #: `NODE_ACCESS_TOKEN` generic information to partition: "TOKEN=partition,...".
    slurm_node_access_token_partitions: str = ""
    #: The events WebSocket sends a heartbeat frame `X` after this long without events.
    events_heartbeat_s: float = 30.0
    #: Events queued for one WebSocket subscriber at most; a subscriber that falls this far
    #: behind is disconnected (bounded memory, scheduling never waits for it). A batch of
    #: changes arrives at once (killing a 10,000-task job ends 10,000 tasks in one
    #: commit), so this must exceed the largest job.
    events_max_queued: int = 100_000
    #: The Unix account tasks run as ("": the server's own, which can read its keys and
    #: database: a warning at start). Needs CAP_SETUID/CAP_SETGID in the hypervisor.
    task_user: str = ""
    #: Scheduler user -> Unix account, for tasks with runAsMe="true" (unmapped: the task
    #: fails to start).
    run_as_me_map: Mapping[str, str] = field(default_factory=dict)
    #: Names of the server's environment variables tasks inherit.
    task_env_base: tuple[str, ...] = DEFAULT_TASK_ENV_BASE
    #: The profile the values were read for.
    profile: str = DEFAULT_PROFILE

    @property
    def task_accounts(self) -> bool:
        """Whether tasks may run under accounts other than the server's."""
        return bool(self.task_user or self.run_as_me_map)

    def ensure_dirs(self) -> None:
        """Create the data, task, key and socket folders (mode 0700) when missing."""
        wanted = [
            self.data_dir,
            self.process_directory,
            self.private_key_path.parent,
            self.public_key_path.parent,
            self.hypervisor_socket_path.parent,
        ]
        sqlite_file = sqlite_path(self.database_url)
        if sqlite_file is not None:
            wanted.append(sqlite_file.parent)
        for folder in wanted:
            _make_private_dir(folder)
        if self.task_accounts:
            # Task accounts must reach their task directories: traverse-only (0711) for
            # the data and task folders; the keys folder stays 0700, files stay 0600.
            for folder in _folders_down_to(self.data_dir, self.process_directory):
                mode = folder.stat().st_mode & 0o777
                if mode & 0o011 != 0o011:
                    folder.chmod(mode | 0o011)


def _folders_down_to(top: Path, folder: Path) -> list[Path]:
    """`folder` and its parents up to `top` (only `folder` when it is not below `top`)."""
    chain = [folder]
    if folder.is_relative_to(top):
        while chain[-1] != top:
            chain.append(chain[-1].parent)
    return chain


def _make_private_dir(folder: Path) -> None:
    missing: list[Path] = []
    probe = folder
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    folder.mkdir(parents=True, exist_ok=True)
    for created in missing:  # only what we made: an existing folder keeps its mode
        created.chmod(0o700)


#: The database engines the store runs on.
Engine = Literal["sqlite", "postgresql"]
#: URL scheme (before any `+driver`) -> the engine it names, and the one driver we run it on.
DATABASE_SCHEMES: dict[str, tuple[Engine, str]] = {
    "sqlite": ("sqlite", "aiosqlite"),
    "postgresql": ("postgresql", "asyncpg"),
    "postgres": ("postgresql", "asyncpg"),
}


def database_engine(database_url: str) -> Engine:
    """The engine a database URL names; ValueError (saying what works) for any other."""
    scheme, sep, _ = database_url.partition("://")
    base, _, driver = scheme.lower().partition("+")
    known = DATABASE_SCHEMES.get(base) if sep else None
    if known is None:
        raise ValueError(
            f"{database_url!r} is not a URL of a supported database "
            f"(e.g. sqlite+aiosqlite:////var/lib/simple-scheduler/db.sqlite or "
            f"postgresql://user:password@host:5432/database)"
        )
    engine, wanted = known
    if driver and driver != wanted:
        raise ValueError(f"{database_url!r}: {engine} runs on the {wanted} driver, not {driver}")
    return engine


def redacted_url(database_url: str) -> str:
    """The URL with its password replaced by `***`, for messages and logs."""
    scheme, sep, rest = database_url.partition("://")
    authority, slash, path = rest.partition("/")
    credentials, at, host = authority.rpartition("@")
    user, colon, _password = credentials.partition(":")
    if not (sep and at and colon):
        return database_url
    return f"{scheme}://{user}:***@{host}{slash}{path}"


def sqlite_path(database_url: str) -> Path | None:
    """The file behind a `sqlite://` or `sqlite+driver://` URL, None for other databases."""
    scheme, sep, rest = database_url.partition("://")
    if not sep or scheme.split("+", 1)[0] != "sqlite" or not rest.startswith("/"):
        return None
    path = rest[1:].split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path)


# -- loading ------------------------------------------------------------------------------


def _parse_int(value: str) -> int:
    return int(value.replace("_", ""), 10)


def _parse_map(value: str) -> dict[str, str]:
    """`alice=ss-alice,bob=ss-bob` (environment form of a TOML table)."""
    out: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        key, eq, account = item.partition("=")
        if not eq or not key.strip() or not account.strip():
            raise ValueError(item)
        out[key.strip()] = account.strip()
    return out


def _parse_list(value: str) -> tuple[str, ...]:
    """`PATH,LANG,TZ` (environment form of a TOML array)."""
    return tuple(filter(None, (part.strip() for part in value.split(","))))


#: Setting name -> (type in TOML, parser for environment strings).
_KINDS: dict[str, tuple[type, Callable[[str], Any]]] = {
    "address": (str, str),
    "port": (int, _parse_int),
    "public_url": (str, str),
    "data_dir": (Path, Path),
    "database_url": (str, str),
    "process_directory": (Path, Path),
    "hypervisor_socket_path": (Path, Path),
    "public_key_path": (Path, Path),
    "private_key_path": (Path, Path),
    "nb_of_workers": (int, _parse_int),
    "max_upload_bytes": (int, _parse_int),
    "token_lifetime_s": (int, _parse_int),
    "kill_grace_s": (float, float),
    "log_level": (str, str),
    "bcrypt_rounds": (int, _parse_int),
    "hypervisor_idle_exit_s": (float, float),
    "execution_backend": (str, str),
    "slurm_partition": (str, str),
    "slurm_account": (str, str),
    "slurm_sbatch_options": (str, str),
    "slurm_poll_interval_s": (float, float),
    "slurm_node_access_token_partitions": (str, str),
    "events_heartbeat_s": (float, float),
    "events_max_queued": (int, _parse_int),
    "task_user": (str, str),
    "run_as_me_map": (dict, _parse_map),
    "task_env_base": (tuple, _parse_list),
}

_KIND_NAMES: dict[type, str] = {
    int: "an integer",
    float: "a number",
    str: "a string",
    Path: "a string (a path)",
    dict: 'a table of "scheduler user" = "unix account" strings',
    tuple: "a list of strings",
}

#: Inclusive bounds of numeric settings.
_RANGES: dict[str, tuple[float, float]] = {
    "port": (0, 65535),
    "nb_of_workers": (0, 100_000),
    "max_upload_bytes": (1, 2**40),
    "token_lifetime_s": (1, 366 * 24 * 3600),
    "kill_grace_s": (0.0, 3600.0),
    "bcrypt_rounds": (4, 31),
    "hypervisor_idle_exit_s": (0.0, 366 * 24 * 3600.0),
    "slurm_poll_interval_s": (0.05, 3600.0),
    "events_heartbeat_s": (0.01, 3600.0),
    "events_max_queued": (1, 10_000_000),
}

assert set(_KINDS) == {f.name for f in fields(Config)} - {"profile"}


@dataclass(frozen=True)
class _Value:
    value: Any
    origin: str  # "x.toml [default]" or "environment variable SIMPLE_SCHEDULER_PORT"
    base: Path  # what a relative path is relative to


def load_config(path: str | Path | None = None, env: Mapping[str, str] = os.environ) -> Config:
    """Build the `Config` from the file, the environment and the defaults."""
    profile = env.get(PROFILE_ENV, DEFAULT_PROFILE).strip() or DEFAULT_PROFILE
    if path is None and env.get(CONFIG_ENV):
        path = env[CONFIG_ENV]
    cwd = Path.cwd()
    values: dict[str, _Value] = {}
    if path is not None:
        values.update(_read_file(Path(path), profile))
    elif profile not in KNOWN_PROFILES:
        raise ConfigError(
            f"profile {profile!r} (from {PROFILE_ENV}) is not defined: "
            f"no configuration file is used"
        )
    for key, (_, parse) in _KINDS.items():
        name = ENV_PREFIX + key.upper()
        if name in env:
            origin = f"environment variable {name}"
            try:
                parsed = parse(env[name].strip())
            except ValueError:
                raise ConfigError(
                    f"{key}: {env[name]!r} from {origin} is not {_KIND_NAMES[_KINDS[key][0]]}"
                ) from None
            values[key] = _Value(parsed, origin, cwd)
    return _build(values, profile, cwd)


def _read_file(path: Path, profile: str) -> dict[str, _Value]:
    try:
        with path.open("rb") as f:
            document = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"configuration file {path} cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"configuration file {path} is not valid TOML: {exc}") from None
    base = path.resolve().parent
    # Every table is checked, not only the active ones: a typo in [release] must not wait
    # for production to be found.
    checked: dict[str, dict[str, Any]] = {}
    for table_name, table in document.items():
        if not isinstance(table, dict):
            raise ConfigError(
                f"{table_name}: set at the top level of {path}; settings go in a [default] "
                f"or [<profile>] table"
            )
        origin = f"{path} [{table_name}]"
        for key in table:
            if key not in _KINDS:
                raise ConfigError(
                    f"{key}: unknown setting in {origin}; known settings: "
                    f"{', '.join(sorted(_KINDS))}"
                )
        checked[table_name] = {k: _check_type(k, v, origin) for k, v in table.items()}
    if profile not in document and profile not in KNOWN_PROFILES:
        raise ConfigError(
            f"profile {profile!r} (from {PROFILE_ENV}) has no [{profile}] table in {path}"
        )
    values: dict[str, _Value] = {}
    for table_name in dict.fromkeys((DEFAULT_PROFILE, profile)):  # active one last: wins
        for key, value in checked.get(table_name, {}).items():
            values[key] = _Value(value, f"{path} [{table_name}]", base)
    return values


def _check_type(key: str, value: Any, origin: str) -> Any:
    kind = _KINDS[key][0]
    ok: bool
    if kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif kind is Path:
        ok = isinstance(value, str)
        value = Path(value) if ok else value
    elif kind is dict:
        ok = isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, str) and k and v for k, v in value.items()
        )
        value = dict(value) if ok else value
    elif kind is tuple:
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        value = tuple(value) if ok else value
    else:
        ok = isinstance(value, str)
    if not ok:
        raise ConfigError(f"{key}: {value!r} in {origin} should be {_KIND_NAMES[kind]}")
    return value


def _build(values: dict[str, _Value], profile: str, cwd: Path) -> Config:
    def path_of(key: str, default: Path) -> Path:
        if key not in values:
            return default
        item = values[key]
        if not str(item.value):
            raise ConfigError(f"{key}: empty path in {item.origin}")
        return (item.base / Path(item.value).expanduser()).resolve()

    data_dir = path_of("data_dir", (cwd / "simple-scheduler-data").resolve())
    resolved: dict[str, Any] = {
        "data_dir": data_dir,
        "process_directory": path_of("process_directory", data_dir / "tasks"),
        "hypervisor_socket_path": path_of("hypervisor_socket_path", data_dir / "hypervisor.sock"),
        "public_key_path": path_of("public_key_path", data_dir / "keys" / "public.pem"),
        "private_key_path": path_of("private_key_path", data_dir / "keys" / "private.pem"),
        "database_url": f"sqlite+aiosqlite:///{data_dir / 'simple-scheduler.sqlite'}",
        "nb_of_workers": os.cpu_count() or 1,
    }
    for key, item in values.items():
        if _KINDS[key][0] is not Path:
            resolved[key] = item.value

    def origin(key: str) -> str:
        return values[key].origin if key in values else "the default"

    for key, (low, high) in _RANGES.items():
        if key in resolved and not low <= resolved[key] <= high:
            raise ConfigError(
                f"{key}: {resolved[key]!r} from {origin(key)} is out of range "
                f"(must be between {low} and {high})"
            )
    for key in ("address", "database_url"):
        if key in resolved and not str(resolved[key]).strip():
            raise ConfigError(f"{key}: empty value from {origin(key)}")
    if "://" not in resolved["database_url"]:
        raise ConfigError(
            f"database_url: {resolved['database_url']!r} from {origin('database_url')} is "
            f"not a URL (e.g. sqlite+aiosqlite:////var/lib/simple-scheduler/db.sqlite)"
        )
    try:
        database_engine(resolved["database_url"])
    except ValueError as exc:
        raise ConfigError(f"database_url: {exc} (from {origin('database_url')})") from None
    level = str(resolved.get("log_level", "INFO")).upper()
    if level not in LOG_LEVELS:
        raise ConfigError(
            f"log_level: {resolved['log_level']!r} from {origin('log_level')} is not one of "
            f"{', '.join(LOG_LEVELS)}"
        )
    resolved["log_level"] = level
    if resolved.get("execution_backend", "local") not in EXECUTION_BACKENDS:
        raise ConfigError(
            f"execution_backend: {resolved['execution_backend']!r} from "
            f"{origin('execution_backend')} is not one of {', '.join(EXECUTION_BACKENDS)}"
        )
    try:
        token_partitions(str(resolved.get("slurm_node_access_token_partitions", "")))
    except ValueError as exc:
        raise ConfigError(
            f"slurm_node_access_token_partitions from "
            f"{origin('slurm_node_access_token_partitions')}: {exc}"
        ) from None
    for name in resolved.get("task_env_base", ()):
        if name.startswith(ENV_PREFIX) or not name or "=" in name:
            raise ConfigError(
                f"task_env_base: {name!r} from {origin('task_env_base')} cannot be passed to "
                f"tasks (the server's own settings never are)"
            )
    if resolved["private_key_path"] == resolved["public_key_path"]:
        raise ConfigError("private_key_path and public_key_path name the same file")
    return Config(profile=profile, **resolved)

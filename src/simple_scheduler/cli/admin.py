"""Administration commands: users, keys, credential files, migrations.

`register(app)` adds them to the main typer app. Each reads the same configuration as the
server (`--config FILE`, `SIMPLE_SCHEDULER_*` variables), so it acts on the server's
database and keys; each applies pending migrations before touching users, so they work on
a fresh data directory before the server ever started.

The database modules (and SQLAlchemy under `databases`) are imported by the commands that
use them, not here: every CLI verb, `submit` included, loads this module, and those imports
alone cost ~0.2 s of start-up.
"""

from __future__ import annotations

import asyncio
import datetime
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, TypeVar

import typer

from simple_scheduler.auth.credentials import create_credential
from simple_scheduler.auth.keys import KeysError, generate_keys, load_public_key
from simple_scheduler.config import Config, ConfigError, load_config, redacted_url

if TYPE_CHECKING:
    from simple_scheduler.store.db import Store

T = TypeVar("T")

NameArg = Annotated[str, typer.Argument(help="Login name.")]
PasswordArg = Annotated[
    str | None,
    typer.Argument(help="Password; asked for (hidden, twice) when omitted.", show_default=False),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="TOML configuration file (default: $SIMPLE_SCHEDULER_CONFIG, else built-in defaults).",
        dir_okay=False,
    ),
]


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _config(path: Path | None, *, create: bool = False) -> Config:
    """The server's configuration, and its data directory, said on stderr.

    Only `create` (create-user) may make a new data directory: any other command run from
    the wrong folder would otherwise work on a second, empty database without a word.
    """
    try:
        config = load_config(path)
    except ConfigError as exc:
        _fail(f"configuration: {exc}", 2)
    data_dir = config.data_dir.resolve()
    existed = data_dir.exists()
    if not existed and not create:
        _fail(
            f"no data directory at {data_dir}: nothing to act on. Run this where the"
            " server runs, or name its data directory with --config FILE or"
            " SIMPLE_SCHEDULER_DATA_DIR (run-server and create-user make a new one)."
        )
    try:
        config.ensure_dirs()
    except OSError as exc:
        _fail(f"cannot create the data folders: {exc}")
    if not existed:
        typer.echo(f"created a new data directory at {data_dir}", err=True)
    typer.echo(f"data directory {data_dir}; database {redacted_url(config.database_url)}", err=True)
    return config


def _with_store(
    config: Config, work: Callable[[Store], Awaitable[T]], *, migrate_first: bool = True
) -> T:
    """Open the database, bring the schema up to date, run `work`, close."""
    from simple_scheduler.auth.users import UserError
    from simple_scheduler.store.db import Store
    from simple_scheduler.store.dbengine import DATABASE_ERRORS
    from simple_scheduler.store.migrate import MigrationError, migrate

    async def run() -> T:
        store = await Store.open(config.database_url)
        try:
            if migrate_first:
                await migrate(store)
            return await work(store)
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except (MigrationError, UserError) as exc:
        _fail(str(exc))
    except DATABASE_ERRORS as exc:
        _fail(f"database {redacted_url(config.database_url)}: {exc}")


def _prompt_password() -> str:
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return password


def create_user_command(
    name: NameArg,
    password: PasswordArg = None,
    admin: Annotated[
        bool, typer.Option("--admin", help="Let the user see and act on every job.")
    ] = False,
    config_path: ConfigOption = None,
) -> None:
    """Create a user who can log in to the REST API."""
    from simple_scheduler.auth import users

    config = _config(config_path, create=True)
    if password is None:
        password = _prompt_password()
    try:
        users.check_name(name)
        users.check_password(password)
    except users.UserError as exc:
        _fail(str(exc))
    secret = password
    user = _with_store(
        config,
        lambda store: users.create_user(
            store, name, secret, is_admin=admin, rounds=config.bcrypt_rounds
        ),
    )
    typer.echo(f"created {'admin ' if user.is_admin else ''}user {user.name}")


def delete_user_command(
    name: Annotated[str, typer.Argument(help="Login name.")],
    config_path: ConfigOption = None,
) -> None:
    """Delete a user; their jobs are kept and their sessions stop working."""
    from simple_scheduler.auth import users

    config = _config(config_path)
    _with_store(config, lambda store: users.delete_user(store, name))
    typer.echo(f"deleted user {name}")


def list_users_command(config_path: ConfigOption = None) -> None:
    """List the users: name, role and creation time."""
    from simple_scheduler.auth import users

    config = _config(config_path)
    found = _with_store(config, users.list_users)
    if not found:
        typer.echo("no users; add one with create-user NAME")
        return
    width = max(len(u.name) for u in found)
    for user in found:
        created = datetime.datetime.fromtimestamp(user.created_at / 1000).isoformat(" ", "seconds")
        role = "admin" if user.is_admin else "user"
        typer.echo(f"{user.name:<{width}}  {role:<5}  {created}")


def gen_keys_command(
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing pair (logs everyone out).")
    ] = False,
    config_path: ConfigOption = None,
) -> None:
    """Generate the server's RSA key pair at the configured paths.

    The server also does this on its first start. A new pair invalidates every session
    token and credential file made for the old one.
    """
    config = _config(config_path)
    try:
        generate_keys(config.private_key_path, config.public_key_path, overwrite=force)
    except KeysError as exc:
        _fail(f"{exc} (use --force to replace the pair)")
    except OSError as exc:
        _fail(f"cannot write the keys: {exc}")
    typer.echo(f"private key: {config.private_key_path}")
    typer.echo(f"public key:  {config.public_key_path}")


def create_credential_token_command(
    name: NameArg,
    password: PasswordArg = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="File to write (default: NAME.cred here).", dir_okay=False
        ),
    ] = None,
    config_path: ConfigOption = None,
) -> None:
    """Write a credential file for NAME, encrypted for the server's public key.

    Send it as the `credential` part of the login form instead of a password. Only the
    public key is needed, so this works on any machine that has a copy of it.
    """
    config = _config(config_path)
    if password is None:
        password = _prompt_password()
    try:
        public_key = load_public_key(config.public_key_path)
    except KeysError as exc:
        _fail(f"{exc}; start the server once or run gen-keys")
    target = output if output is not None else Path(f"{name}.cred")
    data = create_credential(public_key, name, password)
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    except OSError as exc:
        _fail(f"cannot write {target}: {exc.strerror or exc}")
    typer.echo(f"wrote {target}")


def migrate_command(config_path: ConfigOption = None) -> None:
    """Bring the database schema up to date (the server also does this at start)."""
    from simple_scheduler.store.migrate import migrate, schema_version

    config = _config(config_path)

    async def run(store: Store) -> tuple[list[int], int]:
        return await migrate(store), await schema_version(store)

    applied, version = _with_store(config, run, migrate_first=False)
    if applied:
        typer.echo(f"applied {', '.join(map(str, applied))}; schema is at version {version}")
    else:
        typer.echo(f"schema is up to date at version {version}")


def register(app: typer.Typer) -> None:
    """Add the administration commands to `app`."""
    app.command("create-user")(create_user_command)
    app.command("delete-user")(delete_user_command)
    app.command("list-users")(list_users_command)
    app.command("gen-keys")(gen_keys_command)
    app.command("create-credential-token")(create_credential_token_command)
    app.command("migrate")(migrate_command)

"""The `bugstream` command: serve, migrate, create-user, issue-token, listen."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from bugstream.domain.enums import Role
from bugstream.domain.errors import BugstreamError
from bugstream.settings import ConfigurationError, Settings

# The server's modules (FastAPI, SQLAlchemy, the gateway: ~3 s to import) are imported by the
# commands that need them, so that `bugstream listen` and `--help` start at once.


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from bugstream.server import serve

    if args.host:
        settings.host = args.host
    if args.port is not None:
        settings.port = args.port
    if args.certfile:
        settings.tls_certfile = args.certfile
    if args.keyfile:
        settings.tls_keyfile = args.keyfile
    serve(settings)
    return 0


async def _migrate(settings: Settings) -> int:
    from bugstream.app import service_context
    from bugstream.store import migrate

    ctx = service_context(settings)
    try:
        await migrate.upgrade(ctx.db.engine)
        print(f"schema at revision {await migrate.current_revision(ctx.db.engine)}")
    finally:
        await ctx.db.dispose()
    return 0


class CommandError(Exception):
    """A command cannot run as asked: the message says why and what to do."""


def database_location(settings: Settings) -> str:
    """Where the database is, as a user can find it: a file path for SQLite."""
    from sqlalchemy.engine import make_url

    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return str(Path(url.database).resolve())
    return url.render_as_string(hide_password=True)


def _missing_hint(settings: Settings) -> str:
    return (
        f"the data directory is {settings.data_dir} (BUGSTREAM_DATA_DIR), relative to the "
        f"current directory {Path.cwd()}; run this where `bugstream serve` runs, or set "
        "BUGSTREAM_DATA_DIR or BUGSTREAM_DATABASE_URL"
    )


def require_database_file(settings: Settings) -> None:
    """A SQLite file that is not there would be created empty, then fail on its first table:
    say where we looked and what to set instead."""
    from sqlalchemy.engine import make_url

    where = database_location(settings)
    if make_url(settings.database_url).get_backend_name() == "sqlite" and not Path(where).exists():
        raise CommandError(f"no bugstream database at {where}: {_missing_hint(settings)}")


async def require_schema(settings: Settings) -> None:
    """The database is there but bugstream never set it up."""
    from bugstream.app import service_context
    from bugstream.store import migrate

    ctx = service_context(settings)
    try:
        revision = await migrate.current_revision(ctx.db.engine)
    finally:
        await ctx.db.dispose()
    if revision is None:
        raise CommandError(
            f"the database at {database_location(settings)} has no bugstream tables: run "
            f"`bugstream migrate` or `bugstream serve` first ({_missing_hint(settings)})"
        )


def read_password(given: str | None) -> str:
    """--password, else asked at the terminal, else one line piped on stdin."""
    if given:
        return given
    if sys.stdin is not None and sys.stdin.isatty():
        return getpass.getpass("password: ")
    piped = sys.stdin.readline().rstrip("\r\n") if sys.stdin is not None else ""
    if not piped:
        raise CommandError(
            "no password: pass --password, or pipe it on stdin "
            "(printf '%s\\n' \"$PASSWORD\" | bugstream create-user ...)"
        )
    return piped


async def _create_user(args: argparse.Namespace, settings: Settings) -> int:
    from bugstream.app import service_context
    from bugstream.domain.models import UserCreate
    from bugstream.services.users import create_user
    from bugstream.store import migrate

    password = read_password(args.password)
    ctx = service_context(settings)
    try:
        await migrate.upgrade(ctx.db.engine)
        data = UserCreate(
            username=args.username, email=args.email, password=password, role=Role(args.role)
        )
        user = (await create_user(ctx, None, data)).value
    finally:
        await ctx.db.dispose()
    print(
        f"created user {user.username} (id {user.id}, role {user.role.value}) "
        f"in {database_location(settings)}"
    )
    return 0


async def _issue_token(args: argparse.Namespace, settings: Settings) -> int:
    from bugstream.app import service_context, token_config
    from bugstream.auth.tokens import issue_token

    await require_schema(settings)
    ctx = service_context(settings)
    try:
        async with ctx.db.read() as repos:
            found = await repos.users.get_credentials(args.username)
    finally:
        await ctx.db.dispose()
    if found is None:
        print(f"no user named {args.username!r}", file=sys.stderr)
        return 1
    user, _ = found
    token = issue_token(
        token_config(settings), user_id=user.id, role=user.role.value, ttl_seconds=args.ttl
    )
    print(token)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bugstream",
        description="Real-time event service for bug trackers. Configured by BUGSTREAM_* "
        "environment variables (docs/deployment.md).",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the API and /ws")
    serve.add_argument("--host", help="address to bind (default BUGSTREAM_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default BUGSTREAM_PORT or 8000)")
    serve.add_argument("--certfile", type=Path, help="TLS certificate (PEM): serve https/wss")
    serve.add_argument("--keyfile", type=Path, help="TLS private key (PEM)")

    commands.add_parser("migrate", help="bring the database schema up to date")

    user = commands.add_parser("create-user", help="create a user account")
    user.add_argument("--username", required=True)
    user.add_argument("--email", required=True)
    user.add_argument("--role", choices=[r.value for r in Role], default=Role.REPORTER.value)
    user.add_argument(
        "--password", help="omit to be asked for it (or to read one line from a pipe)"
    )

    token = commands.add_parser("issue-token", help="print an access token for a user")
    token.add_argument("--username", required=True)
    token.add_argument("--ttl", type=int, help="lifetime in seconds (default from settings)")

    listen = commands.add_parser(
        "listen", help="tail a server's events (a WebSocket client; needs no server settings)"
    )
    from bugstream.listen import add_arguments as listen_arguments

    listen_arguments(listen)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "listen":
        from bugstream.listen import run as listen

        return listen(args)
    settings = Settings()
    try:
        if args.command == "serve":
            return _serve(args, settings)
        if args.command == "migrate":
            return asyncio.run(_migrate(settings))
        if args.command == "create-user":
            return asyncio.run(_create_user(args, settings))
        require_database_file(settings)
        return asyncio.run(_issue_token(args, settings))
    except ValidationError as exc:
        for error in exc.errors():
            print(f"error: {'.'.join(map(str, error['loc']))}: {error['msg']}", file=sys.stderr)
        return 2
    except ConfigurationError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except BugstreamError as exc:
        print(f"error: {exc.code.value}: {exc.message}", file=sys.stderr)
        return 1
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

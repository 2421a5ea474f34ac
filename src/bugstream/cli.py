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


async def _create_user(args: argparse.Namespace, settings: Settings) -> int:
    from bugstream.app import service_context
    from bugstream.domain.models import UserCreate
    from bugstream.services.users import create_user
    from bugstream.store import migrate

    password = args.password or getpass.getpass("password: ")
    ctx = service_context(settings)
    try:
        await migrate.upgrade(ctx.db.engine)
        data = UserCreate(
            username=args.username, email=args.email, password=password, role=Role(args.role)
        )
        user = (await create_user(ctx, None, data)).value
    finally:
        await ctx.db.dispose()
    print(f"created user {user.username} (id {user.id}, role {user.role.value})")
    return 0


async def _issue_token(args: argparse.Namespace, settings: Settings) -> int:
    from bugstream.app import service_context, token_config
    from bugstream.auth.tokens import issue_token

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
    user.add_argument("--password", help="omit to be asked for it")

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


if __name__ == "__main__":
    sys.exit(main())

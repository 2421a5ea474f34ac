"""`bugstream.client` runs without the server: importing it loads none of the server's
dependencies and no server package of bugstream; nor does the `bugstream` command until a
server command runs."""

from __future__ import annotations

import json
import subprocess
import sys

SERVER_MODULES = {
    "fastapi",
    "starlette",
    "sqlalchemy",
    "uvicorn",
    "asyncpg",
    "aiosqlite",
    "redis",
    "alembic",
    "argon2",
    "structlog",
    "jwt",
    "prometheus_client",
}
SERVER_PACKAGES = {
    "bugstream.api",
    "bugstream.app",
    "bugstream.auth",
    "bugstream.bus",
    "bugstream.cli",
    "bugstream.gateway",
    "bugstream.observability",
    "bugstream.server",
    "bugstream.services",
    "bugstream.settings",
    "bugstream.store",
}

PROBE = """
import json, sys
import bugstream.client
import bugstream.listen
print(json.dumps(sorted(sys.modules)))
"""


def test_importing_the_sdk_loads_no_server_code() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = set(json.loads(result.stdout))
    assert "bugstream.client" in loaded and "websockets" in loaded
    assert {m.split(".")[0] for m in loaded} & SERVER_MODULES == set()
    server_code = {
        m for m in loaded if any(m == p or m.startswith(p + ".") for p in SERVER_PACKAGES)
    }
    assert server_code == set()


CLI_PROBE = """
import json, sys
from bugstream.cli import build_parser
build_parser()
print(json.dumps(sorted(sys.modules)))
"""


def test_the_listen_command_starts_without_importing_the_server() -> None:
    """`bugstream listen` (and `--help`) used to import FastAPI, SQLAlchemy and the gateway
    first: about 3 s before the first line."""
    result = subprocess.run(
        [sys.executable, "-c", CLI_PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = set(json.loads(result.stdout))
    assert "bugstream.listen" in loaded  # the parser has the listen command's arguments
    assert {m.split(".")[0] for m in loaded} & SERVER_MODULES == set()

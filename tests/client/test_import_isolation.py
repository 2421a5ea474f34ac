"""`bugstream.client` runs without the server: importing it loads none of the server's
dependencies and no server package of bugstream."""

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

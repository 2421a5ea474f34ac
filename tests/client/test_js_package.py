"""The TypeScript client package (clients/js, issue 13.2): its types follow the server's catalog,
`/static/bugstream.js` is its build, its Node tests pass against a live server, and `npm pack`
makes a package that installs and type-checks elsewhere.

These need Node.js, npm and the package's dev dependencies (`npm ci` in clients/js; `.ci/run`
installs them). Without them the tests skip and say so, except under
`BUGSTREAM_REQUIRE_SERVICES=1` (CI), where that is a failure.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from bugstream.domain.enums import Role
from bugstream.domain.protocol import CloseCode
from tests.conftest import skip_or_fail
from tests.support.live import LiveServer, live_server

ROOT = Path(__file__).parents[2]
PACKAGE = ROOT / "clients" / "js"
SCHEMA = PACKAGE / "catalog.schema.json"
GENERATED = PACKAGE / "src" / "catalog.ts"
SERVED = ROOT / "src" / "bugstream" / "web" / "bugstream.js"
EXPORTER = ROOT / "scripts" / "export_catalog_schema.py"
INSTALL = "run `npm ci` in clients/js"


def run(*args: str | Path, cwd: Path = PACKAGE, timeout: float = 120) -> str:
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def node() -> str:
    """Node.js, with the package's dev dependencies installed."""
    node = shutil.which("node")
    if node is None or shutil.which("npm") is None:
        skip_or_fail("the TypeScript client's tests need Node.js and npm (apt-get install nodejs)")
    if not (PACKAGE / "node_modules" / ".package-lock.json").exists():
        skip_or_fail(f"the TypeScript client's tests need its dev dependencies: {INSTALL}")
    return node


@pytest.fixture(scope="module")
def build(node: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh build of the package (tsc, then scripts/build.mjs), outside the repository."""
    out = tmp_path_factory.mktemp("js") / "dist"
    run(node, PACKAGE / "node_modules" / "typescript" / "bin" / "tsc", "-p", "tsconfig.json",
        "--outDir", out)  # fmt: skip
    run(node, "scripts/build.mjs", out)
    return out


def test_the_committed_schema_is_the_servers_catalog() -> None:
    exported = run(sys.executable, EXPORTER, cwd=ROOT)
    assert exported == SCHEMA.read_text(encoding="utf-8"), (
        "clients/js/catalog.schema.json is stale: run "
        "`uv run python scripts/export_catalog_schema.py --write`, then `npm run generate` and "
        "`npm run build` in clients/js"
    )


def test_the_schema_has_every_event_and_command() -> None:
    from bugstream.domain.catalog import CATALOG
    from bugstream.gateway.commands import COMMANDS

    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))["$defs"]
    events = {
        (schema[ref["$ref"].rsplit("/", 1)[1]]["properties"]["type"]["const"],
         schema[ref["$ref"].rsplit("/", 1)[1]]["properties"]["event"]["const"])
        for ref in schema["BugstreamEvent"]["oneOf"]
    }  # fmt: skip
    assert events == {(t.value, n.value) for t, m in CATALOG.items() for n in m.events}
    assert set(schema["BugstreamCommands"]["properties"]) == {c.value for c in COMMANDS}


def test_the_generated_types_are_the_schemas(node: str, tmp_path: Path) -> None:
    copy = tmp_path / "js"
    (copy / "src").mkdir(parents=True)
    for name in ("package.json", "catalog.schema.json"):
        shutil.copy(PACKAGE / name, copy / name)
    shutil.copytree(PACKAGE / "scripts", copy / "scripts")
    (copy / "node_modules").symlink_to(PACKAGE / "node_modules")
    run(node, "scripts/generate.mjs", cwd=copy)
    assert (copy / "src" / "catalog.ts").read_text() == GENERATED.read_text(), (
        "clients/js/src/catalog.ts is stale: run `npm run generate` (then `npm run build`) "
        "in clients/js"
    )


def test_the_served_client_is_the_packages_build(build: Path) -> None:
    assert (build / "bugstream.js").read_text() == SERVED.read_text(), (
        "src/bugstream/web/bugstream.js is not the build of clients/js/src/bugstream.ts: "
        "run `npm run build` in clients/js"
    )
    assert (build / "bugstream.d.ts").exists()


@asynccontextmanager
async def control(live: LiveServer) -> AsyncIterator[str]:
    """A small HTTP endpoint for the Node tests: POST /going-away closes every connection from
    the server side with 1001, as a restarting server does."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        status = b"404 Not Found"
        if request.startswith(b"POST /going-away "):
            for conn in live.gateway.hub.connections():
                live.gateway.revoke(conn, CloseCode.GOING_AWAY, "restarting (test)")
            status = b"204 No Content"
        writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


async def test_the_node_tests_pass_against_a_live_server(node: str, build: Path) -> None:
    async with live_server() as live, control(live) as control_url:
        admin = await live.create_user("ada", Role.ADMIN)
        env = {
            **os.environ,
            "BUGSTREAM_HTTP_URL": live.http_url,
            "BUGSTREAM_WS_URL": live.ws_url,
            "BUGSTREAM_TOKEN": live.token_for(admin),
            "BUGSTREAM_CONTROL_URL": control_url,
            "BUGSTREAM_CLIENT_MODULE": (build / "bugstream.js").as_uri(),
        }
        tests = await asyncio.create_subprocess_exec(
            node, "--test", "--test-reporter=spec", "--test-concurrency=1", "test/",
            cwd=PACKAGE, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        async with asyncio.timeout(120):
            output, _ = await tests.communicate()
    report = output.decode(errors="replace")
    assert tests.returncode == 0, report
    # The live suite ran (it skips without the server's address).
    assert re.search(r"\bskipped 0$", report, re.MULTILINE), report


@pytest.fixture(scope="module")
def packed(node: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """`npm pack` (its prepack builds dist/ in clients/js), installed into an empty project."""
    where = tmp_path_factory.mktemp("pack")
    name = run("npm", "pack", "--silent", "--pack-destination", where, timeout=300).split()[-1]
    app = where / "app"
    app.mkdir()
    (app / "package.json").write_text('{"name": "app", "private": true, "type": "module"}\n')
    run("npm", "install", "--silent", "--offline", "--no-audit", "--no-fund", where / name, cwd=app)
    yield app


def test_the_packed_package_installs_and_imports_from_node(node: str, packed: Path) -> None:
    script = (
        "import { BugstreamClient, CloseCode, isTerminal } from 'bugstream-client';"
        "const c = new BugstreamClient('ws://127.0.0.1:9/ws', { token: 't', wakeTarget: null });"
        "console.log(JSON.stringify([c.state.phase, CloseCode.GOING_AWAY, isTerminal(4001)]));"
    )
    out = run(node, "--input-type=module", "-e", script, cwd=packed)
    assert json.loads(out) == ["idle", 1001, True]
    installed = json.loads(
        (packed / "node_modules" / "bugstream-client" / "package.json").read_text()
    )
    assert installed.get("dependencies", {}) == {}


def test_tsc_resolves_the_packed_packages_types(node: str, packed: Path) -> None:
    shutil.copy(PACKAGE / "test" / "types" / "consumer.ts", packed / "consumer.ts")
    (packed / "tsconfig.json").write_text(
        json.dumps(
            {
                "compilerOptions": {
                    "target": "ES2022",
                    "module": "NodeNext",
                    "moduleResolution": "NodeNext",
                    "lib": ["ES2022", "DOM"],
                    "strict": True,
                    "noEmit": True,
                    "types": [],
                },
                "files": ["consumer.ts"],
            }
        )
    )
    run(node, PACKAGE / "node_modules" / "typescript" / "bin" / "tsc", "-p", "tsconfig.json",
        cwd=packed)  # fmt: skip

"""deploy/nginx/bugstream.conf works: nginx accepts it, and wss:// through it reaches both
bugstream instances behind it, with REST on the same host.

The file is used as shipped except for what a test machine must change: the certificate
(a self-signed one), the log directory and the ports (the upstreams are two live servers).
Needs `nginx` on PATH (`apt-get install nginx-light`); without it the tests skip, and fail in
CI (BUGSTREAM_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import websockets

from bugstream.client import Client, Phase
from bugstream.domain.enums import Role
from tests.conftest import skip_or_fail
from tests.support.factory import Factory
from tests.support.live import LiveServer, live_server
from tests.support.net import free_port
from tests.support.tls import self_signed_certificate

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "deploy" / "nginx" / "bugstream.conf"
TIMEOUT = 5.0


def nginx_binary() -> str:
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None
    )
    if found is None:
        skip_or_fail("nginx is not installed (apt-get install nginx-light)")
    assert found is not None
    return found


def replace(text: str, old: str, new: str) -> str:
    assert old in text, f"deploy/nginx/bugstream.conf no longer has {old!r}: update this test"
    return text.replace(old, new)


def site_config(
    directory: Path, *, ports: tuple[int, int] | None = None, upstreams: tuple[int, ...] = ()
) -> Path:
    """The shipped file with a test certificate and log directory (and, for a real run,
    loopback ports)."""
    cert, key = self_signed_certificate(directory)
    text = CONF.read_text(encoding="utf-8")
    text = replace(text, "/etc/ssl/bugstream/fullchain.pem", str(cert))
    text = replace(text, "/etc/ssl/bugstream/privkey.pem", str(key))
    text = replace(text, "/var/log/nginx/", f"{directory}/")
    if ports is not None:
        http_port, https_port = ports
        text = replace(text, "    listen [::]:80;\n", "")
        text = replace(text, "    listen [::]:443 ssl;\n", "")
        text = replace(text, "listen 80;", f"listen 127.0.0.1:{http_port};")
        text = replace(text, "listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;")
    for shipped, port in zip((8001, 8002), upstreams, strict=False):
        text = replace(text, f"server 127.0.0.1:{shipped} ", f"server 127.0.0.1:{port} ")
    site = directory / "bugstream.conf"
    site.write_text(text, encoding="utf-8")
    return site


def main_config(directory: Path, site: Path) -> Path:
    """A minimal nginx.conf that includes the site inside `http {}`, as the file asks."""
    conf = directory / "nginx.conf"
    conf.write_text(
        f"pid {directory}/nginx.pid;\n"
        "worker_processes 1;\n"
        "events { worker_connections 256; }\n"
        "http {\n"
        "    access_log off;\n"
        f"    client_body_temp_path {directory}/body;\n"
        f"    proxy_temp_path {directory}/proxy;\n"
        f"    include {site};\n"
        "}\n",
        encoding="utf-8",
    )
    return conf


def nginx_command(nginx: str, directory: Path, conf: Path, *args: str) -> list[str]:
    return [nginx, "-p", str(directory), "-c", str(conf), "-e", str(directory / "error.log"), *args]


def test_nginx_accepts_the_configuration(tmp_path: Path) -> None:
    nginx = nginx_binary()
    conf = main_config(tmp_path, site_config(tmp_path))
    result = subprocess.run(
        nginx_command(nginx, tmp_path, conf, "-t"),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@asynccontextmanager
async def running_nginx(nginx: str, directory: Path, conf: Path, port: int) -> AsyncIterator[None]:
    """nginx in the foreground until the block ends; ready when `port` accepts."""
    process = subprocess.Popen(
        nginx_command(nginx, directory, conf, "-g", "daemon off;"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    log = directory / "error.log"
    try:
        for _ in range(500):
            assert process.poll() is None, log.read_text() if log.exists() else "nginx exited"
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.01)
                continue
            writer.close()
            break
        else:
            raise AssertionError(f"nginx does not listen on {port}")
        yield
    finally:
        process.terminate()
        try:
            await asyncio.to_thread(process.wait, 10)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait, 10)


async def next_json(ws: Any) -> dict[str, Any]:
    message: dict[str, Any] = orjson.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    return message


@dataclass
class Fronted:
    """Two live instances behind the shipped nginx: `ports` (http, https), and the TLS
    context that trusts nginx's test certificate."""

    one: LiveServer
    two: LiveServer
    ports: tuple[int, int]
    trust: ssl.SSLContext


@asynccontextmanager
async def behind_nginx(factory: Factory, directory: Path) -> AsyncIterator[Fronted]:
    nginx = nginx_binary()
    ports = (free_port(), free_port())
    async with (
        live_server(factory.ctx, behind_tls_proxy=True) as one,
        live_server(factory.ctx, behind_tls_proxy=True) as two,
    ):
        site = site_config(directory, ports=ports, upstreams=(one.port, two.port))
        conf = main_config(directory, site)
        trust = ssl.create_default_context(cafile=str(directory / "cert.pem"))
        async with running_nginx(nginx, directory, conf, ports[1]):
            yield Fronted(one, two, ports, trust)


async def test_wss_through_nginx_reaches_both_instances_without_sticky_sessions(
    factory: Factory, tmp_path: Path
) -> None:
    dev = await factory.user(Role.DEVELOPER)
    project = await factory.project(dev)
    async with behind_nginx(factory, tmp_path) as fronted:
        one, two, ports, trust = fronted.one, fronted.two, fronted.ports, fronted.trust
        token = one.token_for(dev)
        url = f"wss://127.0.0.1:{ports[1]}/ws?token={token}"
        first = await websockets.connect(url, ssl=trust, open_timeout=TIMEOUT)
        second = await websockets.connect(url, ssl=trust, open_timeout=TIMEOUT)
        try:
            for ws in (first, second):
                assert (await next_json(ws))["type"] == "welcome"
            # least_conn: one connection on each instance.
            assert one.gateway.hub.connection_count == 1
            assert two.gateway.hub.connection_count == 1

            # REST through the same host; each instance delivers the event to its client.
            async with httpx.AsyncClient(
                base_url=f"https://127.0.0.1:{ports[1]}",
                verify=trust,
                headers={"Authorization": f"Bearer {token}"},
                timeout=TIMEOUT,
            ) as http:
                created = await http.post(
                    "/api/v1/bugs", json={"project_id": project.id, "title": "via nginx"}
                )
                assert created.status_code == 201, created.text
                # Metrics and probes are not published through the proxy.
                for path in ("/metrics", "/healthz", "/readyz"):
                    assert (await http.get(path)).status_code == 404
                assert (await http.get("/docs")).status_code == 200
            for ws in (first, second):
                event = await next_json(ws)
                assert (event["type"], event["event"]) == ("bug_report", "created")
                assert event["payload"]["title"] == "via nginx"
        finally:
            await first.close()
            await second.close()

        # Plain http is sent to https.
        async with httpx.AsyncClient(timeout=TIMEOUT) as plain:
            response = await plain.get(f"http://127.0.0.1:{ports[0]}/ws?token={token}")
        assert response.status_code == 301
        assert response.headers["location"].startswith("https://")


async def test_the_sse_fallback_through_nginx_keeps_stream_and_posts_on_one_instance(
    factory: Factory, tmp_path: Path
) -> None:
    # The stream's location hashes by client address: a client's stream and the messages it
    # posts for it reach the same instance (else each POST would be 404), and events are not
    # held in nginx's buffers (the stream's `X-Accel-Buffering: no`, and proxy_buffering off):
    # they arrive while the stream stays open.
    dev = await factory.user(Role.DEVELOPER)
    project = await factory.project(dev)
    async with behind_nginx(factory, tmp_path) as fronted:
        one, two, trust = fronted.one, fronted.two, fronted.trust
        url = f"wss://127.0.0.1:{fronted.ports[1]}/ws"
        clients = [
            Client(url, token=one.token_for(dev), ssl=trust, transport="sse") for _ in range(2)
        ]
        for client in clients:
            await client.connect()
        try:
            counts = sorted(s.gateway.hub.connection_count for s in (one, two))
            assert counts == [0, 2], "both streams of one address on one instance"
            for n in range(5):
                for client in clients:
                    created = await client.send(
                        "bug_report.create", {"project_id": project.id, "title": f"t{n}"}
                    )
                    assert created["title"] == f"t{n}"
            titles = [f"t{n}" for n in range(5) for _ in clients]
            for client in clients:
                received: list[str] = []
                events = client.events()
                while len(received) < len(titles):
                    event = await asyncio.wait_for(anext(events), TIMEOUT)
                    received.append(event.raw["title"])
                assert received == titles
                assert client.state.phase is Phase.CONNECTED
                assert client.transport == "sse"
        finally:
            for client in clients:
                await client.close()

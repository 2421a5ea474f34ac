"""wss:// and production transport security, with a real `bugstream serve` process.

- `serve --certfile --keyfile` serves https and wss with a generated self-signed certificate;
- `BUGSTREAM_ENV=production` refuses to start without TLS (exit code 2, naming the setting);
- behind a TLS-terminating proxy (`BUGSTREAM_BEHIND_TLS_PROXY=true`) it starts, and refuses
  WebSocket upgrades whose `X-Forwarded-Proto` is not https.
"""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from bugstream.client import Backoff, Client, ReconnectFailed, Transport
from tests.gateway.test_lifecycle import Served, admin_token, start_serve
from tests.support.net import free_port
from tests.support.tls import self_signed_certificate
from tests.test_cli import clean_env

JWT_SECRET = "tls-tests-secret-0123456789abcdef0123456789"


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[Served, ssl.SSLContext]]:
    cert, key = self_signed_certificate(tmp_path)
    server = start_serve(tmp_path, "--certfile", str(cert), "--keyfile", str(key))
    trust = ssl.create_default_context(cafile=str(cert))
    try:
        yield server, trust
    finally:
        server.stop()


async def welcome_over(url: str, **kwargs: Any) -> dict[str, Any]:
    async with websockets.connect(url, open_timeout=5, **kwargs) as ws:
        message: dict[str, Any] = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
        await ws.send('{"type": "ping"}')
        pong = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
        assert pong["type"] == "pong"
        return message


async def test_wss_and_https_with_a_self_signed_certificate(
    tls_server: tuple[Served, ssl.SSLContext],
) -> None:
    server, trust = tls_server
    assert server.scheme == "https"
    token = await asyncio.to_thread(admin_token, server, verify=trust)
    me = await asyncio.to_thread(
        httpx.get,
        f"{server.url}/api/v1/users/me",
        headers={"Authorization": f"Bearer {token}"},
        verify=trust,
    )
    assert me.status_code == 200 and me.json()["username"] == "admin"

    for host in ("127.0.0.1", "localhost"):
        url = f"wss://{host}:{server.port}/ws?token={token}"
        welcome = await welcome_over(url, ssl=trust)
        assert welcome["type"] == "welcome"
        assert welcome["payload"]["user"]["username"] == "admin"

    # It really is that certificate: a client that does not trust it cannot connect.
    with pytest.raises(ssl.SSLCertVerificationError):
        await welcome_over(
            f"wss://127.0.0.1:{server.port}/ws?token={token}", ssl=ssl.create_default_context()
        )
    with pytest.raises(httpx.ConnectError):
        await asyncio.to_thread(httpx.get, f"{server.url}/api/v1/users/me")


@pytest.mark.parametrize("transport", ["websocket", "sse"])
async def test_the_sdk_connects_over_tls_on_either_transport(
    tls_server: tuple[Served, ssl.SSLContext], transport: Transport
) -> None:
    # wss:// for the socket, https:// for the SSE fallback: both trust the context given,
    # and neither connects without it.
    server, trust = tls_server
    token = await asyncio.to_thread(admin_token, server, verify=trust)
    url = f"wss://127.0.0.1:{server.port}/ws"
    async with Client(url, token=token, ssl=trust, transport=transport) as client:
        assert client.welcome["user"]["username"] == "admin"
        assert client.transport == transport
        # A command's answer comes back (over SSE: posted over https, answered on the stream).
        assert await client.send("notification.mark_all_read") == {"ids": []}
    untrusting = Client(
        url,
        token=token,
        ssl=ssl.create_default_context(),
        transport=transport,
        backoff=Backoff(initial=0.01, max_attempts=1),
    )
    with pytest.raises(ReconnectFailed) as failed:
        await untrusting.connect()
    assert "CERTIFICATE_VERIFY_FAILED" in repr(failed.value.error)


def test_production_without_tls_refuses_to_start(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bugstream.cli", "serve", "--port", str(free_port())],
        cwd=tmp_path,
        env=clean_env(
            BUGSTREAM_ENV="production",
            BUGSTREAM_JWT_SECRET=JWT_SECRET,
            BUGSTREAM_DATA_DIR=str(tmp_path / "data"),
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "BUGSTREAM_TLS_CERTFILE" in result.stderr
    assert "Uvicorn running" not in result.stdout + result.stderr


def test_only_one_of_certfile_and_keyfile_refuses_to_start(tmp_path: Path) -> None:
    cert, _key = self_signed_certificate(tmp_path)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bugstream.cli",
            "serve",
            "--port",
            str(free_port()),
            "--certfile",
            str(cert),
        ],
        cwd=tmp_path,
        env=clean_env(BUGSTREAM_DATA_DIR=str(tmp_path / "data")),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "BUGSTREAM_TLS_KEYFILE" in result.stderr


@pytest.fixture
def proxied_server(tmp_path: Path) -> Iterator[Served]:
    server = start_serve(
        tmp_path,
        BUGSTREAM_ENV="production",
        BUGSTREAM_BEHIND_TLS_PROXY="true",
        BUGSTREAM_JWT_SECRET=JWT_SECRET,
    )
    try:
        yield server
    finally:
        server.stop()


async def test_behind_a_tls_proxy_upgrades_need_forwarded_https(proxied_server: Served) -> None:
    server = proxied_server
    token = await asyncio.to_thread(admin_token, server)
    url = f"{server.ws_url}?token={token}"
    for headers in ({}, {"X-Forwarded-Proto": "http"}, {"X-Forwarded-Proto": "ws"}):
        with pytest.raises(InvalidStatus) as refused:
            await welcome_over(url, additional_headers=headers)
        assert refused.value.response.status_code == 403, headers
        assert b"https" in refused.value.response.body

    welcome = await welcome_over(url, additional_headers={"X-Forwarded-Proto": "https"})
    assert welcome["type"] == "welcome"
    assert welcome["payload"]["user"]["role"] == "admin"

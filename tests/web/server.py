"""`bugstream serve` as a subprocess on a known port and data directory, as a user runs it.

`Site` owns a data directory and a port; `cli(...)` runs `bugstream` commands against it,
`start()` / `stop()` run the server (SIGTERM, as an operator stops it), and `api(user)` is a
REST client logged in as a user.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

JWT_SECRET = "web-tests-secret-0123456789abcdef0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Site:
    data_dir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None
    passwords: dict[str, str] = field(default_factory=dict)
    #: More BUGSTREAM_* settings for this server, e.g. {"BUGSTREAM_ALLOWED_ORIGINS": "[...]"}.
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BUGSTREAM_")}
        env.update(
            BUGSTREAM_DATA_DIR=str(self.data_dir),
            BUGSTREAM_JWT_SECRET=JWT_SECRET,
            BUGSTREAM_BOOTSTRAP_ADMIN="false",
            BUGSTREAM_REMINDERS_ENABLED="false",
            BUGSTREAM_SHUTDOWN_GRACE_SECONDS="1",
            BUGSTREAM_LOG_LEVEL="INFO",
        )
        env.update(self.settings)
        return env

    def cli(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "bugstream.cli", *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def create_user(self, username: str, role: str) -> None:
        password = f"{username}-password-123"
        self.cli(
            "create-user",
            "--username",
            username,
            "--email",
            f"{username}@example.com",
            "--role",
            role,
            "--password",
            password,
        )
        self.passwords[username] = password

    def start(self, timeout: float = 60) -> None:
        assert self.process is None, "already running"
        self.log = (self.data_dir / "server.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bugstream.cli", "serve", "--port", str(self.port)],
            env=self.env(),
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited:\n{self.output()}")
            try:
                if httpx.get(f"{self.url}/", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"the server did not start:\n{self.output()}")

    def stop(self) -> int | None:
        """SIGTERM, as an operator stops it; the exit status."""
        process, self.process = self.process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self.log is not None:
            self.log.close()
            self.log = None
        return process.returncode

    def kill(self) -> None:
        """kill -9, as a crash would."""
        process, self.process = self.process, None
        if process is not None:
            process.kill()
            process.wait()
        if self.log is not None:
            self.log.close()
            self.log = None

    def output(self) -> str:
        path = self.data_dir / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def outbox_ids(self, project_id: int, *, after: int) -> list[int]:
        """The ids of the project's events after `after`, in commit order, read from the
        server's SQLite file (what a member of the project must receive)."""
        path = self.data_dir / "bugstream.db"
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            rows = db.execute(
                "SELECT id FROM outbox WHERE id > ? AND project_id = ? ORDER BY id",
                (after, project_id),
            ).fetchall()
        return [int(row[0]) for row in rows]

    def api(self, username: str) -> httpx.Client:
        """A REST client with a fresh token of `username` (close it after use)."""
        response = httpx.post(
            f"{self.url}/api/v1/auth/token",
            json={"username": username, "password": self.passwords[username]},
        )
        assert response.status_code == 200, response.text
        token = response.json()["access_token"]
        return httpx.Client(
            base_url=f"{self.url}/api/v1", headers={"Authorization": f"Bearer {token}"}
        )


def ok(response: httpx.Response) -> Any:
    assert response.is_success, f"{response.request.method} {response.request.url}: {response.text}"
    return response.json() if response.content else None

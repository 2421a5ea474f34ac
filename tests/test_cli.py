"""The `bugstream` command, run as a user runs it: a real process on a real port."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bugstream.auth.tokens import TokenConfig, verify_token
from bugstream.cli import main
from tests.support.net import free_port


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUGSTREAM_")}
    env.update(extra)
    return env


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty directory as the current one, with no BUGSTREAM_* settings inherited."""
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith("BUGSTREAM_"):
            monkeypatch.delenv(key)
    return tmp_path


class Server:
    def __init__(self, process: subprocess.Popen[str], port: int, output: list[str]) -> None:
        self.process = process
        self.url = f"http://127.0.0.1:{port}"
        self.output = output


def start_server(cwd: Path) -> Server:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bugstream.cli", "serve", "--port", str(port)],
        cwd=cwd,
        env=clean_env(BUGSTREAM_REMINDERS_ENABLED="false"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    output: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        output.append(line)
        if "bugstream is running" in line:
            return Server(process, port, output)
    process.kill()
    raise AssertionError("server did not start:\n" + "".join(output))


def stop_server(server: Server) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        server.process.communicate(timeout=15)


@pytest.fixture
def first_run(tmp_path: Path) -> Iterator[Server]:
    server = start_server(tmp_path)
    yield server
    stop_server(server)


def test_first_run_creates_data_dir_secret_and_admin_shown_once(tmp_path: Path) -> None:
    server = start_server(tmp_path)
    try:
        text = "".join(server.output)
        password = re.search(r"password: (\S+)", text)
        assert password, text
        assert (tmp_path / "var" / "bugstream.db").exists()
        secret_file = tmp_path / "var" / "jwt-secret"
        assert oct(secret_file.stat().st_mode & 0o777) == "0o600"
        login = httpx.post(
            f"{server.url}/api/v1/auth/token",
            json={"username": "admin", "password": password.group(1)},
        )
        assert login.status_code == 200, login.text
        token = login.json()["access_token"]
        me = httpx.get(
            f"{server.url}/api/v1/users/me", headers={"Authorization": f"Bearer {token}"}
        )
        assert me.json()["role"] == "admin"
    finally:
        stop_server(server)

    # Second run: same secret (old tokens stay valid), no new admin, no password printed.
    server = start_server(tmp_path)
    try:
        assert "password:" not in "".join(server.output)
        me = httpx.get(
            f"{server.url}/api/v1/users/me", headers={"Authorization": f"Bearer {token}"}
        )
        assert me.status_code == 200
    finally:
        stop_server(server)


def test_sigterm_stops_the_server_cleanly(first_run: Server) -> None:
    first_run.process.send_signal(signal.SIGTERM)
    rest, _ = first_run.process.communicate(timeout=15)
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status tells why.
    assert "Application shutdown complete" in rest
    assert first_run.process.returncode in (0, -signal.SIGTERM)


def test_migrate_create_user_and_issue_token(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate"]) == 0
    assert "schema at revision" in capsys.readouterr().out
    assert main(["migrate"]) == 0  # idempotent

    code = main(
        [
            "create-user",
            "--username",
            "ci-bot",
            "--email",
            "bot@example.com",
            "--role",
            "developer",
            "--password",
            "long enough password",
        ]
    )
    assert code == 0
    assert "created user ci-bot" in capsys.readouterr().out

    assert main(["issue-token", "--username", "ci-bot", "--ttl", "120"]) == 0
    token = capsys.readouterr().out.strip()
    secret = (workdir / "var" / "jwt-secret").read_text().strip()
    claims = verify_token(TokenConfig(secret=secret), token)
    assert claims.role == "developer"
    assert (claims.expires_at - claims.issued_at).total_seconds() == 120  # type: ignore[operator]


def test_cli_reports_bad_input_and_unknown_users(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["create-user", "--username", "x", "--email", "not-an-email", "--password", "short"]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "username" in err and "email" in err and "password" in err

    assert main(["issue-token", "--username", "nobody"]) == 1
    assert "no user named 'nobody'" in capsys.readouterr().err

    main(["create-user", "--username", "dup", "--email", "d@example.com", "--password", "12345678"])
    code = main(
        ["create-user", "--username", "dup", "--email", "e@example.com", "--password", "12345678"]
    )
    assert code == 1
    assert "conflict" in capsys.readouterr().err


def test_production_refuses_to_invent_a_jwt_secret(workdir: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bugstream.cli", "serve", "--port", str(free_port())],
        cwd=workdir,
        env=clean_env(BUGSTREAM_ENV="production", BUGSTREAM_BEHIND_TLS_PROXY="true"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "BUGSTREAM_JWT_SECRET must be set in production" in result.stderr
    assert not (workdir / "var" / "jwt-secret").exists()


def run_cli(cwd: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """`bugstream ...` in `cwd`, with `stdin` piped (no terminal), as a script runs it."""
    return subprocess.run(
        [sys.executable, "-m", "bugstream.cli", *args],
        cwd=cwd,
        env=clean_env(),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_issue_token_elsewhere_says_where_it_looked_and_creates_nothing(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "issue-token", "--username", "admin")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"no bugstream database at {tmp_path / 'var' / 'bugstream.db'}" in result.stderr
    assert "BUGSTREAM_DATA_DIR" in result.stderr and str(tmp_path) in result.stderr
    assert not (tmp_path / "var" / "bugstream.db").exists(), "it left an empty database"


def test_issue_token_on_a_database_without_tables_says_to_migrate(tmp_path: Path) -> None:
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "bugstream.db").touch()
    result = run_cli(tmp_path, "issue-token", "--username", "admin")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "has no bugstream tables: run `bugstream migrate`" in result.stderr


def test_create_user_without_a_terminal_reads_a_piped_password_or_says_how(
    tmp_path: Path,
) -> None:
    user = ["create-user", "--username", "bot", "--email", "bot@example.com"]
    nothing = run_cli(tmp_path, *user, stdin="")
    assert nothing.returncode == 1
    assert "Traceback" not in nothing.stderr
    assert "no password: pass --password, or pipe it on stdin" in nothing.stderr
    piped = run_cli(tmp_path, *user, stdin="piped-password-123\n")
    assert piped.returncode == 0, piped.stderr
    assert f"created user bot (id 1, role reporter) in {tmp_path / 'var'}" in piped.stdout


def test_serve_shows_the_board_url_and_makes_no_admin_when_it_cannot_bind(
    tmp_path: Path,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        failed = subprocess.run(
            [sys.executable, "-m", "bugstream.cli", "serve", "--port", str(port)],
            cwd=tmp_path,
            env=clean_env(BUGSTREAM_REMINDERS_ENABLED="false"),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert failed.returncode != 0
    assert "password:" not in failed.stdout + failed.stderr
    assert "bugstream is running" not in failed.stdout
    # The admin was not made then (its password would have been lost): it is now.
    server = start_server(tmp_path)
    try:
        text = "".join(server.output)
        assert "password:" in text
        banner = f"bugstream is running: the live board at {server.url}/ , the API docs at"
        assert banner in server.output[-1]
    finally:
        stop_server(server)

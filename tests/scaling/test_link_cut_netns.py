"""A real 10 s link cut between two hosts: network namespaces joined by a veth pair.

The server (`bugstream serve`) and a writer run in namespace A; the Python SDK listens from
namespace B over the veth link. While bugs are created, the link goes down for 10 s
(`ip link set ... down`): the SDK's pings go unanswered, it gives the connection up and retries
into a dead link. When the link comes back it must be connected again within a bound, and it
must have every event of its user's project once, in commit order.

Network namespaces need root (CI runs as root); elsewhere the test skips saying so.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import skip_or_fail
from tests.support.waiting import wait_until_blocking
from tests.web.server import Site

ROOT = Path(__file__).parents[2]
CUT_SECONDS = 10.0
#: After the link is back: the SDK's longest backoff wait (2 s), a handshake, slack.
BACK_WITHIN = 5.0
PORT = 8000


@dataclass(frozen=True)
class Hosts:
    a: str  # namespace names
    b: str
    a_link: str  # interface names
    b_link: str
    a_address: str

    def link(self, state: str) -> None:
        result = subprocess.run(["ip", "-n", self.a, "link", "set", self.a_link, state])
        assert result.returncode == 0


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    assert result.returncode == 0, f"ip {' '.join(args)}: {result.stderr}"


@contextmanager
def two_hosts() -> Iterator[Hosts]:
    if os.geteuid() != 0:
        skip_or_fail("the link-cut test needs root for network namespaces (ip netns); CI is root")
    if shutil.which("ip") is None:
        skip_or_fail("the link-cut test needs iproute2's `ip` (apt-get install iproute2)")
    tag = os.getpid() % 100_000
    subnet = f"10.251.{tag % 250}"
    hosts = Hosts(f"bsA{tag}", f"bsB{tag}", f"bsa{tag}", f"bsb{tag}", f"{subnet}.1")
    _ip("netns", "add", hosts.a)
    try:
        _ip("netns", "add", hosts.b)
        try:
            _ip(
                "link",
                "add",
                hosts.a_link,
                "netns",
                hosts.a,
                "type",
                "veth",
                "peer",
                "name",
                hosts.b_link,
                "netns",
                hosts.b,
            )
            for ns, link, address in ((hosts.a, hosts.a_link, 1), (hosts.b, hosts.b_link, 2)):
                _ip("-n", ns, "addr", "add", f"{subnet}.{address}/30", "dev", link)
                _ip("-n", ns, "link", "set", link, "up")
                _ip("-n", ns, "link", "set", "lo", "up")
            yield hosts
        finally:
            _ip("netns", "delete", hosts.b)
    finally:
        _ip("netns", "delete", hosts.a)


def _peer(hosts: Hosts, ns: str, *args: str, **popen: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, "-m", "tests.support.netns_peer", *args],
        cwd=ROOT,
        text=True,
        **popen,
    )


def _lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def test_a_10_second_link_cut_loses_nothing_and_the_sdk_comes_back(tmp_path: Path) -> None:
    with two_hosts() as hosts:
        site = Site(tmp_path / "site", port=PORT)
        site.data_dir.mkdir()
        site.create_user("admin", "admin")
        site.create_user("dana", "developer")
        env = site.env()
        server = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                hosts.a,
                sys.executable,
                "-m",
                "bugstream.cli",
                "serve",
                "--host",
                "0.0.0.0",
                "--port",
                str(PORT),
            ],
            env=env,
            stdout=(tmp_path / "server.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        listener: subprocess.Popen[str] | None = None
        try:
            local = f"http://127.0.0.1:{PORT}"
            assert _peer(hosts, hosts.a, "wait", "--url", local).wait(90) == 0
            tokens = {
                name: site.cli("issue-token", "--username", name).strip()
                for name in ("admin", "dana")
            }
            project = _project(hosts, local, tokens)
            events = tmp_path / "events.jsonl"
            listener = _peer(
                hosts,
                hosts.b,
                "listen",
                "--url",
                f"ws://{hosts.a_address}:{PORT}/ws",
                "--token",
                tokens["dana"],
                "--out",
                str(events),
            )
            wait_until_blocking(
                lambda: any("start" in line for line in _lines(events)), 30, "the welcome"
            )
            start = next(line["start"] for line in _lines(events) if "start" in line)

            writer = _peer(
                hosts,
                hosts.a,
                "write",
                "--url",
                local,
                "--token",
                tokens["dana"],
                "--project",
                str(project),
                "--count",
                "150",
                "--pace",
                "0.1",
            )
            time.sleep(2.0)
            hosts.link("down")
            cut_at = time.time()
            time.sleep(CUT_SECONDS)
            hosts.link("up")
            restored_at = time.time()
            assert writer.wait(60) == 0

            expected = site.outbox_ids(project, after=start)
            assert len(expected) >= 150
            wait_until_blocking(
                lambda: expected[-1] in _ids(events), 30, "every event after the cut"
            )
            time.sleep(0.3)  # nothing more may come
            got = _ids(events)
            assert sorted(set(expected) - set(got)) == [], "lost"
            assert got == expected, "duplicated or out of order"
            states = [line for line in _lines(events) if "state" in line]
            during = [s["state"] for s in states if cut_at <= s["t"] < restored_at]
            assert "reconnecting" in during, "the SDK did not notice the dead link"
            back = min(
                s["t"] for s in states if s["t"] >= restored_at and s["state"] == "connected"
            )
            assert back - restored_at <= BACK_WITHIN, back - restored_at
        finally:
            for process in (listener, server):
                if process is not None and process.poll() is None:
                    process.send_signal(signal.SIGTERM)
                    try:
                        process.wait(20)
                    except subprocess.TimeoutExpired:
                        process.kill()
                        process.wait()


def _project(hosts: Hosts, url: str, tokens: dict[str, str]) -> int:
    """A project with dana in it, made over REST inside namespace A."""
    peer = _peer(
        hosts,
        hosts.a,
        "project",
        "--url",
        url,
        "--token",
        tokens["admin"],
        "--member-token",
        tokens["dana"],
        stdout=subprocess.PIPE,
    )
    out, _ = peer.communicate(timeout=60)
    assert peer.returncode == 0
    return int(out.strip())


def _ids(path: Path) -> list[int]:
    return [line["id"] for line in _lines(path) if "id" in line]

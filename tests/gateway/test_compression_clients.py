"""permessage-deflate with the clients people use: Node's `ws` (the package most Node
integrations use; it offers compression by default) and the Python SDK's `websockets`. Both
negotiate it with a live server and get large and small events intact, and their compressed
commands are answered.

The Node test needs Node.js and clients/js's dev dependencies (`npm ci` in clients/js, which
`.ci/run` does); without them it skips, and fails under BUGSTREAM_REQUIRE_SERVICES=1 (CI).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path

from bugstream.client import Client
from bugstream.domain.enums import Role
from tests.conftest import skip_or_fail
from tests.support.factory import Factory
from tests.support.live import live_server

PACKAGE = Path(__file__).parents[2] / "clients" / "js"
LONG = ("Steps: open the board, drag a card, watch it jump back. " * 30).strip()

#: Posts a large and a short bug once welcomed, sends a ping (compressed: threshold 0), and
#: prints what was negotiated and what arrived.
NODE_CLIENT = """
import WebSocket from 'ws';
const { WS_URL, HTTP_URL, TOKEN, PROJECT, LONG } = process.env;
const ws = new WebSocket(`${WS_URL}?token=${TOKEN}`, { perMessageDeflate: { threshold: 0 } });
const seen = { descriptions: [], pong: false };
const post = (description) => fetch(`${HTTP_URL}/api/v1/bugs`, {
  method: 'POST',
  headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
  body: JSON.stringify({ project_id: Number(PROJECT), title: 'Crash', description }),
});
const timer = setTimeout(() => { console.log(JSON.stringify(seen)); process.exit(2); }, 10000);
ws.on('message', async (data) => {
  const message = JSON.parse(data.toString());
  if (message.type === 'welcome') {
    seen.extensions = ws.extensions;
    seen.params = ws._extensions['permessage-deflate']?.params ?? null;
    ws.send(JSON.stringify({ type: 'ping', request_id: 'node' }));
    await post(LONG);
    await post('short');
  } else if (message.type === 'pong') {
    seen.pong = true;
  } else if (message.event_id) {
    seen.descriptions.push(message.payload.description);
  }
  if (seen.pong && seen.descriptions.length === 2) {
    clearTimeout(timer);
    console.log(JSON.stringify(seen));
    ws.close();
  }
});
"""


async def test_node_ws_negotiates_compression_and_gets_every_event_intact(
    factory: Factory,
) -> None:
    node = shutil.which("node")
    if node is None or not (PACKAGE / "node_modules" / "ws").exists():
        skip_or_fail("needs Node.js and `npm ci` in clients/js (for the ws package)")
    dev = await factory.user(Role.DEVELOPER)
    project = await factory.project(dev)
    async with live_server(factory.ctx) as live:
        env = {
            **os.environ,
            "WS_URL": live.ws_url,
            "HTTP_URL": live.http_url,
            "TOKEN": live.token_for(dev),
            "PROJECT": str(project.id),
            "LONG": LONG,
        }
        process = await asyncio.create_subprocess_exec(
            node, "--input-type=module", "-e", NODE_CLIENT, cwd=PACKAGE, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        async with asyncio.timeout(30):
            output, _ = await process.communicate()
    assert process.returncode == 0, output.decode(errors="replace")
    seen = json.loads(output.decode().strip().splitlines()[-1])
    assert seen["extensions"] == "permessage-deflate"
    assert seen["params"] == {
        "server_no_context_takeover": True,
        "client_no_context_takeover": True,
    }
    assert seen["descriptions"] == [LONG, "short"]
    assert seen["pong"], "the compressed ping was understood"


async def test_the_python_sdk_negotiates_compression(factory: Factory) -> None:
    """`bugstream.client.Client` connects with `websockets.connect`'s defaults, which offer
    permessage-deflate: the server agrees, events of every size arrive intact, and the
    commands it sends (websockets compresses every message) are answered."""
    dev = await factory.user(Role.DEVELOPER)
    project = await factory.project(dev)
    async with (
        live_server(factory.ctx) as live,
        Client(live.ws_url, token=live.token_for(dev)) as client,
    ):
        [conn] = live.gateway.hub.connections()
        assert conn.deflate_bits == 15, "compression was negotiated"
        for description in (LONG, "short"):
            bug = await client.send(
                "bug_report.create",
                {"project_id": project.id, "title": "Crash", "description": description},
            )
            assert bug["description"] == description
        received = []
        async for event in client.events():
            received.append(event.raw["description"])
            if len(received) == 2:
                break
        assert received == [LONG, "short"]

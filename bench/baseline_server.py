"""The baseline: WebSocket fan-out written the common way with FastAPI.

`/ws?token=<JWT>` checks the token (same secret, same HS256 tokens as bugstream), accepts,
sends a `welcome`, and keeps the socket in a set. `POST /publish` builds the same JSON
envelope bugstream sends for `bug_report.created` and does
`for ws in list(conns): await ws.send_text(msg)`. No database, no resume, no backpressure.

Run: `uv run python bench/baseline_server.py --port 8100` (secret in `BENCH_JWT_SECRET`).
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import UTC, datetime
from typing import Any

import jwt
import uvicorn
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

SECRET = os.environ.get("BENCH_JWT_SECRET", "")
app = FastAPI()
conns: set[WebSocket] = set()
state = {"event_id": 0, "bug_id": 0}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@app.get("/healthz")
async def healthz() -> dict[str, Any]:
    return {"status": "ok", "connections": len(conns)}


@app.websocket("/ws")
async def ws_endpoint(websocket: WebSocket, token: str = "") -> None:
    try:
        claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    except jwt.PyJWTError:
        await websocket.close(code=4001)
        return
    await websocket.accept()
    welcome = {
        "type": "welcome",
        "payload": {"user": {"id": int(claims["sub"])}, "latest_event_id": state["event_id"]},
    }
    await websocket.send_text(json.dumps(welcome))
    conns.add(websocket)
    try:
        while True:
            await websocket.receive_text()
    except WebSocketDisconnect:
        pass
    finally:
        conns.discard(websocket)


@app.post("/publish")
async def publish(body: dict[str, Any]) -> dict[str, Any]:
    state["event_id"] += 1
    state["bug_id"] += 1
    now = _now()
    event = {
        "type": "bug_report",
        "event": "created",
        "payload": {
            "id": state["bug_id"],
            "title": body.get("title", ""),
            "description": body.get("description", ""),
            "status": "open",
            "priority": "medium",
            "assignee_id": None,
            "reporter_id": 1,
            "project_id": body.get("project_id", 1),
            "created_at": now,
            "updated_at": now,
        },
        "event_id": state["event_id"],
    }
    msg = json.dumps(event)
    for ws in list(conns):
        try:
            await ws.send_text(msg)
        except Exception:  # a dead socket: drop it, go on with the others
            conns.discard(ws)
    return {"event_id": state["event_id"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()

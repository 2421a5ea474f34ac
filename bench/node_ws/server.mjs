// Baseline for bench/fanout.py: WebSocket fan-out the way Node's `ws` README broadcasts.
//
// `/ws?token=<JWT>` checks the token (HS256, the bench's secret in BENCH_JWT_SECRET) with
// jsonwebtoken during the upgrade, accepts, sends a `welcome` and keeps the socket in
// `wss.clients`. `POST /publish` builds the same `bug_report.created` envelope as
// bench/baseline_server.py and sends it to every open client in turn
// (`client.send(data)` in `wss.clients.forEach`, the README's "broadcast to all" loop).
// No database, no resume, no backpressure. `GET /healthz` answers 200.
//
// Run: node bench/node_ws/server.mjs --port 8200   (after `npm ci` in bench/node_ws)

import http from "node:http";
import jwt from "jsonwebtoken";
import { WebSocket, WebSocketServer } from "ws";

const SECRET = process.env.BENCH_JWT_SECRET ?? "";
const portArg = process.argv.indexOf("--port");
const PORT = portArg > 0 ? Number(process.argv[portArg + 1]) : 8200;
const state = { eventId: 0, bugId: 0 };

const wss = new WebSocketServer({ noServer: true });

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

const server = http.createServer(async (req, res) => {
  if (req.method === "GET" && req.url === "/healthz") {
    const answer = JSON.stringify({ status: "ok", connections: wss.clients.size });
    res.writeHead(200, {
      "content-type": "application/json",
      "content-length": Buffer.byteLength(answer),
    });
    res.end(answer);
    return;
  }
  if (req.method === "POST" && req.url === "/publish") {
    const body = JSON.parse((await readBody(req)) || "{}");
    state.eventId += 1;
    state.bugId += 1;
    const now = new Date().toISOString();
    const data = JSON.stringify({
      type: "bug_report",
      event: "created",
      payload: {
        id: state.bugId,
        title: body.title ?? "",
        description: body.description ?? "",
        status: "open",
        priority: "medium",
        assignee_id: null,
        reporter_id: 1,
        project_id: body.project_id ?? 1,
        created_at: now,
        updated_at: now,
      },
      event_id: state.eventId,
    });
    wss.clients.forEach(function each(client) {
      if (client.readyState === WebSocket.OPEN) {
        client.send(data);
      }
    });
    const answer = JSON.stringify({ event_id: state.eventId });
    res.writeHead(200, {
      "content-type": "application/json",
      "content-length": Buffer.byteLength(answer),
    });
    res.end(answer);
    return;
  }
  res.writeHead(404);
  res.end();
});

server.on("upgrade", (req, socket, head) => {
  const url = new URL(req.url, "http://localhost");
  if (url.pathname !== "/ws") {
    socket.destroy();
    return;
  }
  let claims;
  try {
    claims = jwt.verify(url.searchParams.get("token") ?? "", SECRET, { algorithms: ["HS256"] });
  } catch {
    socket.write("HTTP/1.1 401 Unauthorized\r\nConnection: close\r\n\r\n");
    socket.destroy();
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    ws.send(
      JSON.stringify({
        type: "welcome",
        payload: { user: { id: Number(claims.sub) }, latest_event_id: state.eventId },
      }),
    );
    ws.on("error", () => {});
  });
});

server.listen(PORT, "127.0.0.1");
process.on("SIGTERM", () => process.exit(0));

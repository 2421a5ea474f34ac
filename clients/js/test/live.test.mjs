// The client against a live bugstream server. tests/client/test_js_package.py starts one and
// runs `node --test` with:
//   BUGSTREAM_HTTP_URL, BUGSTREAM_WS_URL   the server
//   BUGSTREAM_TOKEN                         an admin's access token
//   BUGSTREAM_CONTROL_URL                   POST /going-away: the server closes every socket
//                                           with 1001, as a restart does
//   BUGSTREAM_CLIENT_MODULE                 the build to test (default: this package's dist)
// Without them these tests skip.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import WebSocket from "ws";

const env = process.env;
const live = Boolean(env.BUGSTREAM_WS_URL && env.BUGSTREAM_TOKEN);
const { BugstreamClient, CommandError, HistoryGap, Phase, history } = await import(
  env.BUGSTREAM_CLIENT_MODULE ?? "bugstream-client"
);

/** The first event for which `match` holds (events already seen by `client` count too). */
function nextEvent(client, match, timeout = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error("no matching event in time"));
    }, timeout);
    const off = client.on(null, null, (event) => {
      if (!match(event)) return;
      clearTimeout(timer);
      off();
      resolve(event);
    });
  });
}

async function rest(method, path, body) {
  const response = await fetch(env.BUGSTREAM_HTTP_URL + path, {
    method,
    headers: { Authorization: `Bearer ${env.BUGSTREAM_TOKEN}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  assert.ok(response.ok, `${method} ${path}: ${response.status} ${await response.clone().text()}`);
  return response.json();
}

describe("against a live server", { skip: !live && "BUGSTREAM_WS_URL and BUGSTREAM_TOKEN unset" }, () => {
  let client;
  let project;
  const opened = []; // the URL of every connection the client opened

  class RecordingWebSocket extends WebSocket {
    constructor(url) {
      super(url);
      opened.push(new URL(url));
    }
  }

  before(async () => {
    project = await rest("POST", "/api/v1/projects", { name: `js-${process.pid}-${Date.now()}` });
    client = new BugstreamClient(env.BUGSTREAM_WS_URL, {
      token: env.BUGSTREAM_TOKEN,
      WebSocket: RecordingWebSocket,
      // Long waits: the test reconnects itself (reconnect()) when it has done what it must
      // do while the client is away.
      backoff: { initial: 60000, jitter: false },
    });
  });

  after(() => client?.close());

  test("connects and gets the welcome", async () => {
    const welcomes = [];
    client.addEventListener("welcome", (e) => welcomes.push(e.detail));
    await client.connect();
    assert.equal(client.state.phase, Phase.CONNECTED);
    assert.equal(welcomes.length, 1);
    assert.equal(welcomes[0].user.role, "admin");
    assert.ok(Number.isInteger(client.lastEventId));
    assert.equal(opened[0].searchParams.get("token"), env.BUGSTREAM_TOKEN);
  });

  test("a command's ack resolves with the entity, and its event follows", async () => {
    const seen = nextEvent(client, (e) => e.type === "bug_report" && e.event === "created");
    const bug = await client.send("bug_report.create", {
      project_id: project.id,
      title: "Crash on save",
      priority: "high",
    });
    assert.equal(bug.title, "Crash on save");
    assert.equal(bug.priority, "high");
    assert.equal(bug.status, "open");
    const event = await seen;
    assert.deepEqual(event.payload, bug);
    assert.equal(event.event_id, client.lastEventId);

    const moved = await client.send("bug_report.change_status", { id: bug.id, status: "resolved" });
    assert.equal(moved.status, "resolved");
  });

  test("bad input rejects with a CommandError naming the field", async () => {
    await assert.rejects(
      client.send("bug_report.create", { project_id: project.id, title: "" }),
      (error) => {
        assert.ok(error instanceof CommandError, String(error));
        assert.equal(error.code, "validation_failed");
        assert.equal(error.command, "bug_report.create");
        assert.match(JSON.stringify(error.fields), /title/);
        return true;
      },
    );
    await assert.rejects(client.send("bug_report.delete", { id: 999999999 }), {
      name: "CommandError",
      code: "not_found",
    });
  });

  test("after the server closes (1001) it reconnects and resumes: nothing missed", async () => {
    assert.equal(client.state.phase, Phase.CONNECTED);
    const before = client.lastEventId;
    const away = new Promise((resolve) =>
      client.addEventListener("state", function waiting(e) {
        if (e.detail.phase !== Phase.RECONNECTING) return;
        client.removeEventListener("state", waiting);
        resolve(e.detail);
      }),
    );
    const control = await fetch(new URL("/going-away", env.BUGSTREAM_CONTROL_URL), {
      method: "POST",
    });
    assert.equal(control.status, 204);
    const state = await away;
    assert.equal(state.closeCode, 1001);

    // While the client is away, a bug report is filed over REST.
    const missed = await rest("POST", "/api/v1/bugs", {
      project_id: project.id,
      title: "filed while the client was away",
    });
    const replayed = nextEvent(client, (e) => e.type === "bug_report" && e.payload.id === missed.id);
    await client.reconnect();
    const event = await replayed;
    assert.equal(event.event, "created");
    assert.equal(event.payload.title, "filed while the client was away");
    assert.ok(event.event_id > before);
    assert.equal(opened.length, 2);
    assert.equal(opened[1].searchParams.get("last_event_id"), String(before));
  });

  test("history() pages through what the socket delivered, the same JSON", async () => {
    const start = client.lastEventId;
    const delivered = [];
    const off = client.on(null, null, (event) => delivered.push(event));
    for (const title of ["h1", "h2", "h3"]) {
      await client.send("bug_report.create", { project_id: project.id, title });
    }
    await nextEvent(client, (e) => e.type === "bug_report" && e.payload.title === "h3");
    off();
    const fetched = [];
    for await (const event of history(env.BUGSTREAM_HTTP_URL, env.BUGSTREAM_TOKEN, {
      after: start,
      limit: 2,
    })) {
      fetched.push(event);
    }
    assert.deepEqual(fetched, delivered);
    assert.equal(fetched.length, 3);
  });
});

test("history() throws HistoryGap past the window, with the server's ids", async () => {
  const answer = {
    type: "error",
    payload: {
      code: "resync_required",
      message: "gone",
      last_event_id: 3,
      oldest_event_id: 50,
      latest_event_id: 90,
    },
  };
  const fetch = async () => new Response(JSON.stringify(answer), { status: 409 });
  await assert.rejects(history("http://x", "t", { after: 3, fetch }).next(), (error) => {
    assert.ok(error instanceof HistoryGap);
    assert.equal(error.code, "resync_required");
    assert.deepEqual([error.lastEventId, error.oldestEventId, error.latestEventId], [3, 50, 90]);
    return true;
  });
});

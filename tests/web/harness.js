// Test harness for bugstream.js in a real browser: a fake clock (the client's timers) and a
// fake WebSocket the test plays the server with. Loaded by tests/web/test_js_client.py.

import { BugstreamClient } from "/static/bugstream.js";

const realSetTimeout = globalThis.setTimeout.bind(globalThis);

/** Let pending promise callbacks and awaits run. */
export async function flush() {
  for (let i = 0; i < 5; i += 1) await new Promise((resolve) => realSetTimeout(resolve, 0));
}

export class FakeClock {
  constructor(start = Date.UTC(2026, 0, 5, 9, 0, 0)) {
    this.time = start;
    this.timers = new Map();
    this.nextId = 1;
    this.now = () => this.time;
    this.setTimeout = (fn, ms) => {
      const id = this.nextId++;
      this.timers.set(id, { id, at: this.time + Math.max(0, ms), fn });
      return id;
    };
    this.clearTimeout = (id) => {
      this.timers.delete(id);
    };
  }

  /** Move time forward by `ms`, firing every timer that falls due, in order. */
  async advance(ms) {
    const target = this.time + ms;
    for (;;) {
      await flush();
      const due = [...this.timers.values()]
        .filter((t) => t.at <= target)
        .sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (due === undefined) break;
      this.timers.delete(due.id);
      this.time = due.at;
      due.fn();
    }
    this.time = target;
    await flush();
  }
}

export class FakeWebSocket {
  constructor(url) {
    this.url = url;
    this.sent = [];
    this.closedWith = null;
    this.readyState = 0;
  }

  get params() {
    return Object.fromEntries(new URL(this.url).searchParams);
  }

  send(text) {
    if (this.readyState !== 1) throw new Error("not open");
    this.sent.push(JSON.parse(text));
  }

  close(code = 1000, reason = "") {
    this.closedWith = { code, reason };
    this.readyState = 2;
  }

  // ---- the server's side ----

  receive(message) {
    this.onmessage?.({ data: typeof message === "string" ? message : JSON.stringify(message) });
  }

  /** Accept the connection and send the welcome (defaults: token valid for an hour). */
  welcome(clock, payload = {}) {
    this.readyState = 1;
    this.onopen?.({});
    this.receive({
      type: "welcome",
      payload: {
        connection_id: `conn-${Math.random().toString(16).slice(2, 8)}`,
        user: { id: 1, username: "dana", role: "developer" },
        server_time: new Date(clock.now()).toISOString(),
        latest_event_id: 0,
        token_expires_at: new Date(clock.now() + 3600_000).toISOString(),
        ...payload,
      },
    });
  }

  event(id, type = "bug_report", event = "updated", payload = { id: 1 }) {
    this.receive({ type, event, payload, event_id: id });
  }

  /** The connection ends (1006: no close frame, e.g. the server is down). */
  drop(code = 1006, reason = "") {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
}

/**
 * A client wired to a fake clock and fake sockets, with everything it reports recorded.
 * `randoms`: the jitter source's values, in turn (default: always 1, the full bound).
 */
export function world(options = {}, randoms = null) {
  const clock = new FakeClock();
  const sockets = [];
  class Socket extends FakeWebSocket {
    constructor(url) {
      super(url);
      sockets.push(this);
    }
  }
  let draw = 0;
  const random = () => (randoms === null ? 1 : randoms[draw++ % randoms.length]);
  const client = new BugstreamClient("ws://bugstream.test/ws", {
    token: "token-1",
    WebSocket: Socket,
    // These scenarios script WebSocket failures; the SSE fallback is tested on its own
    // (test_auto_transport_*), and end to end in test_board_e2e.py.
    transport: "websocket",
    random,
    now: clock.now,
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    ...options,
  });
  const states = [];
  const events = [];
  const resyncs = [];
  const serverErrors = [];
  client.addEventListener("state", (e) => {
    states.push({ ...e.detail, error: e.detail.error?.name ?? null });
  });
  client.addEventListener("event", (e) => events.push(e.detail.event_id));
  client.addEventListener("resync", (e) => resyncs.push(e.detail));
  client.addEventListener("servererror", (e) => serverErrors.push(e.detail));
  return {
    client,
    clock,
    sockets,
    states,
    events,
    resyncs,
    serverErrors,
    /** Start the client; returns how its connect() promise settled (see `outcome`). */
    connect: () => outcome(client.connect()),
    last: () => sockets[sockets.length - 1],
    state: () => client.state,
  };
}

/** How a promise settled: {ok, value} or {ok: false, name, code, message, ...}. */
export function outcome(promise) {
  const box = { settled: false };
  promise.then(
    (value) => Object.assign(box, { settled: true, ok: true, value }),
    (error) =>
      Object.assign(box, {
        settled: true,
        ok: false,
        name: error.name,
        code: error.code,
        message: error.message,
        fields: error.fields ?? null,
        closeCode: error.closeCode ?? null,
      }),
  );
  return box;
}

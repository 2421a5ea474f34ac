/**
 * bugstream.js: the client of bugstream's `/ws` event stream, for browsers and Node (20+).
 * One ES module, no dependencies: the npm package `bugstream-client` (clients/js, written in
 * TypeScript, with types for every event and command), which the server also serves at
 * `/static/bugstream.js`.
 *
 *     import { BugstreamClient } from "/static/bugstream.js";   // or from "bugstream-client"
 *
 *     const client = new BugstreamClient("/ws", { token, tokenProvider });
 *     client.addEventListener("state", (e) => console.log(describeState(e.detail)));
 *     client.on("bug_report", "created", (event) => console.log(event.payload.title));
 *     await client.connect();
 *     const bug = await client.send("bug_report.create", { project_id: 1, title: "Crash" });
 *
 * It follows the same rules as the Python SDK (docs/integration.md):
 *
 * - the token travels as `?token=` (browsers cannot set headers on a WebSocket);
 * - a dropped connection is retried with exponential backoff and full jitter: attempt n waits
 *   a random time in [0, min(maxDelay, initial * factor^(n-1))], by default 2, 4, 8, 16 and
 *   32 s for the 5 attempts; a connection that reaches the server's welcome resets the count;
 *   when the attempts run out the client is "offline" (`reconnect()` starts again);
 * - close codes 4000-4099 (and 1002, 1008) mean "do not reconnect with this token": the
 *   client goes offline, except that after 4001/4002 it asks `tokenProvider` once for a new
 *   token and retries with it;
 * - every reconnect resumes with `?last_event_id=`; events already seen (by event_id) are
 *   dropped, so the application sees each event once, in order; `resync_required` (the server
 *   no longer holds the missed events) is dispatched as a "resync" event: refetch over REST;
 * - with a `tokenProvider`, a fresh token is sent (`{"type":"auth"}`) before the current one
 *   expires (the welcome says when), on the same connection;
 * - `send(command, payload)` returns a Promise of the ack's `result`, rejected with a
 *   `CommandError` ({code, message, ...}) or `CommandTimeout`; commands sent while
 *   reconnecting wait for the connection (the timeout counts);
 * - an application-level `ping` goes out every 25 s (browsers do not expose WebSocket pings);
 *   a connection that answers nothing within `pongTimeout` is treated as dropped.
 *
 * Events dispatched (EventTarget; `detail` carries the data):
 *   "state"       the connection state changed (see `describeState`)
 *   "welcome"     the server's welcome payload, on every (re)connection
 *   "event"       a bugstream event: {type, event, payload, event_id}
 *   "presence"    who is online / viewing a bug report changed: {type: "presence", event,
 *                 payload: {project_id, user: {id, username}, bug_report_id?}} (no event_id:
 *                 state, not history; read GET /api/v1/projects/{id}/presence after "welcome",
 *                 and again on event "resync": changes may have been missed)
 *   "resync"      the resync_required payload: events were missed, refetch state
 *   "servererror" an error payload that answers no command
 *   "token"       a new token is in use: {token, expiresAt}
 *
 * Times given to the client are in milliseconds (JavaScript's unit), unlike the Python SDK's
 * seconds.
 */
/** WebSocket close codes (bugstream.domain.protocol.CloseCode, docs/errors.md). */
export const CloseCode = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  PROTOCOL_ERROR: 1002,
  ABNORMAL: 1006,
  INVALID_DATA: 1007,
  POLICY_VIOLATION: 1008,
  MESSAGE_TOO_BIG: 1009,
  INTERNAL_ERROR: 1011,
  INVALID_TOKEN: 4001,
  TOKEN_EXPIRED: 4002,
  FORBIDDEN: 4003,
  BLOCKED: 4004,
  HEARTBEAT_TIMEOUT: 4100,
  SLOW_CONSUMER: 4101,
  TOO_MANY_CONNECTIONS: 4102,
  SERVER_FULL: 4103,
});
/** Whether a close code tells the client not to reconnect with the same token. */
export function isTerminal(code) {
  return (code >= 4000 && code < 4100) || code === 1002 || code === 1008;
}
/** Whether a new token (from a token provider) makes reconnecting worthwhile again. */
export function needsNewToken(code) {
  return code === CloseCode.INVALID_TOKEN || code === CloseCode.TOKEN_EXPIRED;
}
/** The phases of `client.state.phase`. */
export const Phase = Object.freeze({
  IDLE: "idle", // not started
  CONNECTING: "connecting", // the first connection is being opened
  CONNECTED: "connected", // welcome received; events flow
  RECONNECTING: "reconnecting", // waiting `nextDelay` ms before attempt `attempt`, or in it
  OFFLINE: "offline", // gave up: attempts ran out, or a "do not reconnect" code (`error`)
  CLOSED: "closed", // closed by the application
});
/** Exponential backoff with full jitter; times in milliseconds. */
export class Backoff {
  constructor({
    initial = 2000,
    factor = 2,
    maxAttempts = 5,
    maxDelay = 60000,
    jitter = true,
  } = {}) {
    if (!(Number.isFinite(initial) && initial >= 0)) throw new RangeError("initial must be >= 0");
    if (!(Number.isFinite(factor) && factor >= 1)) throw new RangeError("factor must be >= 1");
    if (!((Number.isInteger(maxAttempts) && maxAttempts >= 0) || maxAttempts === Infinity)) {
      throw new RangeError("maxAttempts must be a non-negative integer, or Infinity");
    }
    if (maxAttempts === Infinity && !Number.isFinite(maxDelay)) {
      throw new RangeError("retrying forever needs a finite maxDelay");
    }
    if (!(maxDelay >= 0)) throw new RangeError("maxDelay must be >= 0");
    Object.assign(this, { initial, factor, maxAttempts, maxDelay, jitter: Boolean(jitter) });
    Object.freeze(this);
  }
  /** The longest wait before attempt `attempt` (1-based). */
  bound(attempt) {
    if (attempt < 1) throw new RangeError("attempts count from 1");
    return Math.min(this.maxDelay, this.initial * this.factor ** (attempt - 1));
  }
  /** The wait before attempt `attempt`: bound * random() with jitter, else the bound. */
  delay(attempt, random = Math.random) {
    const bound = this.bound(attempt);
    return this.jitter ? bound * Math.min(1, Math.max(0, random())) : bound;
  }
}
/** Root of the errors this module creates. */
export class BugstreamError extends Error {
  constructor(message, code) {
    super(message);
    this.name = new.target.name;
    this.code = code;
  }
}
/** A command's error answer: `code`, `message`, and every other field of the payload. */
export class CommandError extends BugstreamError {
  constructor(payload, command) {
    super(String(payload.message ?? "error"), String(payload.code ?? "error"));
    this.command = command;
    this.requestId = payload.request_id ?? null;
    this.payload = payload;
    /** Field errors of validation_failed / missing_required_fields, when given. */
    this.fields = payload.fields ?? null;
  }
}
/** No answer to a command within its timeout. */
export class CommandTimeout extends BugstreamError {
  constructor(command, requestId, timeout) {
    super(`no answer to ${command} (${requestId}) within ${timeout} ms`, "timeout");
    Object.assign(this, { command, requestId, timeout });
  }
}
/** The connection closed after a command went out and before its answer. */
export class ConnectionLost extends BugstreamError {
  constructor(command, requestId) {
    super(`the connection closed before ${command} (${requestId}) was answered`, "connection_lost");
    Object.assign(this, { command, requestId });
  }
}
/** The client was closed by the application. */
export class ClientClosed extends BugstreamError {
  constructor(message = "the client is closed") {
    super(message, "client_closed");
  }
}
/** The server closed with a "do not reconnect" code (4001 invalid token, 4003 forbidden...). */
export class ConnectionRejected extends BugstreamError {
  constructor(message, { closeCode = null, reason = "", error = null, code = "rejected" } = {}) {
    super(message, code);
    Object.assign(this, { closeCode, reason, error });
  }
}
/** Every reconnect attempt failed. */
export class ReconnectFailed extends BugstreamError {
  constructor(attempts, { closeCode = null, reason = "" } = {}) {
    super(`could not reconnect after ${attempts} attempts`, "reconnect_failed");
    Object.assign(this, { attempts, closeCode, reason });
  }
}
/** A one-line text for a connection state, for status lines and indicators. */
export function describeState(state) {
  switch (state.phase) {
    case Phase.CONNECTED:
      return "connected";
    case Phase.CONNECTING:
      return "connecting";
    case Phase.RECONNECTING:
      return Number.isFinite(state.maxAttempts)
        ? `reconnecting, attempt ${state.attempt} of ${state.maxAttempts}`
        : `reconnecting, attempt ${state.attempt}`;
    case Phase.OFFLINE:
      return "offline";
    case Phase.CLOSED:
      return "closed";
    default:
      return "not connected";
  }
}
const STALE_TOKEN_MS = 1000;
/** What wakes a waiting client (see `wakeTarget`): the window gets all three. */
const WAKE_EVENTS = ["online", "visibilitychange", "focus"];
/**
 * Who may see each event type (bugstream.domain.catalog; tests/web/test_js_protocol_sync.py
 * checks this copy): "project" types go to the project's members, "personal" and "user" ones
 * to the user they name (and admins); `bugReportField` names the bug report, for
 * subscriptions by bug report.
 */
export const EVENT_SCOPES = Object.freeze({
  bug_report: { scope: "project", bugReportField: "id" },
  comment: { scope: "project", bugReportField: "bug_report_id" },
  project: { scope: "project", bugReportField: null },
  user: { scope: "user", bugReportField: null },
  notification: { scope: "personal", bugReportField: null },
  membership: { scope: "project", bugReportField: null },
});
/**
 * A declared subscription: everything (`null` lists), or only these projects and bug reports
 * (personal events always arrive). The client keeps it across reconnects and filters events
 * by the server's rule, so nothing outside it reaches the page even before the server has it.
 */
export function subscriptionWants(subscription, message, userId) {
  if (subscription === null) return true;
  const meaning = EVENT_SCOPES[message.type];
  if (meaning === undefined || meaning.scope !== "project") return true;
  const payload = message.payload ?? {};
  if (message.type === "membership" && payload.user_id === userId) return true;
  const projectId = message.type === "project" ? payload.id : payload.project_id;
  if (subscription.projects.has(projectId)) return true;
  return (
    meaning.bugReportField !== null && subscription.bugReports.has(payload[meaning.bugReportField])
  );
}
/**
 * One reconnecting, resuming session with a bugstream server.
 *
 * `url`: "ws://host/ws", "wss://host/ws", or a path ("/ws") on the page's own host.
 * Options: `token` and/or `tokenProvider` (a function returning a token or a Promise of one;
 * called for the first connection when there is no token, before the token expires, and once
 * after close code 4001/4002), `lastEventId` (resume a stream an earlier page left),
 * `subscription` ({projects, bugReports}: declared at the start, see `subscribe`),
 * `wakeTarget` (globalThis: in a page, the window; `online`, `visibilitychange` and `focus`
 * there make a waiting client retry at once), `backoff.maxAttempts: Infinity` to never give
 * up (each wait at most `maxDelay`),
 * `ticketProvider` (a function returning a Promise of a connection ticket, from
 * POST /api/v1/auth/ws-ticket: then every connection opens with `?ticket=`, and the token
 * never appears in a URL; `token`/`tokenProvider` still refresh the connection),
 * `backoff` ({initial, factor, maxAttempts, maxDelay, jitter} or a Backoff),
 * `commandTimeout` (10000), `openTimeout` (10000: the welcome must come within it),
 * `pingInterval` (25000; 0 turns pings off), `pongTimeout` (10000), `refreshRatio` (0.8) and
 * `refreshMargin` (30000): refresh at the earlier of 80% of the time left and 30 s before
 * expiry, never before half the time left. Tests may replace `WebSocket`, `random`, `now`,
 * `setTimeout` and `clearTimeout`.
 */
/** How a refused SSE stream (an HTTP status and error code) maps to `/ws` close codes. */
const SSE_REFUSALS = Object.freeze({
  invalid_token: 4001,
  token_expired: 4002,
  blocked: 4004,
  too_many_connections: 4102,
  service_unavailable: 4103,
});
/** The server no longer keeps the events after `after`: reload state, go on from `latest`. */
export class HistoryGap extends BugstreamError {
  constructor(payload) {
    super(payload.message ?? "the events asked for are no longer kept", "resync_required");
    this.lastEventId = Number(payload.last_event_id);
    this.oldestEventId = Number(payload.oldest_event_id);
    this.latestEventId = Number(payload.latest_event_id);
  }
}
/**
 * The history over REST, oldest first: every event after `after` that the token's user may
 * see, exactly as `/ws` delivers it, paged by the server's cursor. For polling scripts and
 * for catching up without a connection. `baseUrl` is the server's origin ("" on the page the
 * server serves). Throws `HistoryGap` when `after` is older than the server keeps, and
 * `BugstreamError` (with the error code) for other refusals.
 *
 *     for await (const event of history("", token, { after: lastSeen })) apply(event);
 */
export async function* history(
  baseUrl,
  token,
  { after = 0, limit = 100, fetch: fetchImpl = globalThis.fetch?.bind(globalThis) } = {},
) {
  let cursor = after;
  for (;;) {
    const query = new URLSearchParams({ after: String(cursor), limit: String(limit) });
    const response = await fetchImpl(`${baseUrl}/api/v1/events?${query}`, {
      headers: { Authorization: `Bearer ${token}`, Accept: "application/json" },
    });
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      const payload = body?.payload ?? {
        code: "internal_error",
        message: `HTTP ${response.status}`,
      };
      if (payload.code === "resync_required") throw new HistoryGap(payload);
      throw new BugstreamError(payload.message, payload.code);
    }
    const page = body;
    yield* page.items;
    if (!page.has_more) return;
    cursor = page.next_after;
  }
}
export class SseSocket {
  /** `url`: the `/ws` URL the client would open (its query carries token or ticket). */
  constructor(url, options = {}) {
    this.onmessage = null;
    this.onclose = null;
    this.onerror = null;
    this._abort = new AbortController();
    this._connectionId = null;
    this._closed = false;
    this._outbox = Promise.resolve();
    const fetchImpl = options.fetch ?? globalThis.fetch?.bind(globalThis);
    if (typeof fetchImpl !== "function") throw new TypeError("the SSE fallback needs fetch");
    this._fetch = fetchImpl;
    const stream = new URL(url);
    stream.protocol = stream.protocol === "wss:" ? "https:" : "http:";
    const token = stream.searchParams.get("token");
    stream.searchParams.delete("token"); // a header, not the URL
    this._token = options.token ?? (() => token);
    stream.pathname = stream.pathname.replace(/\/ws$/, "") + "/api/v1/events/stream";
    this._base = stream.origin + stream.pathname;
    void this._run(stream.toString(), token);
  }
  send(data) {
    if (this._closed) return;
    this._outbox = this._outbox.then(() => this._post(data));
  }
  close(code = 1000, reason = "") {
    this._end(code, reason);
    this._abort.abort();
  }
  async _run(url, token) {
    let code = 1006;
    let reason = "the stream ended";
    try {
      const headers = { Accept: "text/event-stream" };
      if (token) headers.Authorization = `Bearer ${token}`;
      const response = await this._fetch(url, {
        headers,
        signal: this._abort.signal,
        cache: "no-store",
      });
      if (!response.ok || response.body === null) {
        const body = await response.json().catch(() => null);
        const error = body?.payload;
        if (error) this._deliver(JSON.stringify(body)); // as /ws sends it before closing
        code = SSE_REFUSALS[error?.code] ?? 1006;
        reason = error?.message ?? `HTTP ${response.status}`;
        return;
      }
      const closing = await this._read(response.body);
      if (closing) ({ code, reason } = closing);
    } catch (error) {
      reason = String(error);
    } finally {
      this._end(code, reason);
    }
  }
  /** Dispatch each event of the stream; the server's close, if it sent one. */
  async _read(body) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return null;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let kind = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("data: ")) data.push(line.slice(6));
          else if (line.startsWith("event: ")) kind = line.slice(7);
        }
        if (data.length === 0) continue; // a heartbeat (comment) or only an id
        const text = data.join("\n");
        if (kind === "close") {
          const { code = 1006, reason = "" } = JSON.parse(text);
          return { code, reason };
        }
        this._deliver(text);
      }
    }
  }
  _deliver(text) {
    if (this._connectionId === null) {
      try {
        const message = JSON.parse(text);
        if (message?.type === "welcome") this._connectionId = message.payload?.connection_id;
      } catch {
        // not JSON: the client ignores it too
      }
    }
    if (!this._closed) this.onmessage?.({ data: text });
  }
  async _post(data) {
    if (this._closed || this._connectionId === null) return;
    try {
      const token = await this._token();
      const headers = { "Content-Type": "application/json" };
      if (token) headers.Authorization = `Bearer ${token}`;
      const response = await this._fetch(`${this._base}/${this._connectionId}`, {
        method: "POST",
        headers,
        body: data,
      });
      if (response.status === 404) {
        // The stream is not open on the instance that answered: start again.
        this.close(1006, "the stream is gone");
      } else if (!response.ok) {
        // Refused before the stream saw it: answer the message here, with its request id.
        const body = await response.json().catch(() => null);
        const request = JSON.parse(data);
        const payload = { ...(body?.payload ?? {}), request_id: request?.request_id };
        this._deliver(JSON.stringify({ type: "error", payload }));
      }
    } catch (error) {
      this.close(1006, String(error));
    }
  }
  _end(code, reason) {
    if (this._closed) return;
    this._closed = true;
    this.onclose?.({ code, reason });
  }
}
export class BugstreamClient extends EventTarget {
  constructor(url, options = {}) {
    super();
    this._viewing = null;
    const {
      token = null,
      tokenProvider = null,
      ticketProvider = null,
      wakeTarget = globalThis,
      lastEventId = null,
      subscription = null,
      backoff = {},
      commandTimeout = 10000,
      openTimeout = 10000,
      pingInterval = 25000,
      pongTimeout = 10000,
      refreshRatio = 0.8,
      refreshMargin = 30000,
      WebSocket: WebSocketImpl = globalThis.WebSocket,
      transport = "auto",
      presence = false,
      fallbackAfter = 2,
      fetch: fetchImpl = globalThis.fetch?.bind(globalThis),
      random = Math.random,
      now = () => Date.now(),
      setTimeout: setTimer = (fn, ms) => globalThis.setTimeout(fn, ms),
      clearTimeout: clearTimer = (id) => globalThis.clearTimeout(id),
    } = options;
    if (!token && !tokenProvider) throw new TypeError("give a token or a tokenProvider");
    if (lastEventId !== null && !(Number.isInteger(lastEventId) && lastEventId >= 0)) {
      throw new RangeError("lastEventId must be a non-negative integer");
    }
    if (!(refreshRatio > 0 && refreshRatio < 1)) throw new RangeError("refreshRatio in (0, 1)");
    this.url = resolveUrl(url);
    this.backoff = backoff instanceof Backoff ? backoff : new Backoff(backoff);
    this._token = token;
    this._provider = tokenProvider;
    // The network came back, or the page was shown or focused: a client waiting to retry
    // (or one that gave up after its attempts) tries again at once instead of sleeping on.
    this._wakeTarget = wakeTarget;
    this._onWake = () => this._wake();
    if (typeof wakeTarget?.addEventListener === "function") {
      for (const type of WAKE_EVENTS) wakeTarget.addEventListener(type, this._onWake);
    }
    this._ticketProvider = ticketProvider;
    this._lastEventId = lastEventId;
    this._subscription =
      subscription === null
        ? null
        : {
            projects: new Set(subscription.projects ?? []),
            bugReports: new Set(subscription.bugReports ?? []),
          };
    this._commandTimeout = commandTimeout;
    this._openTimeout = openTimeout;
    this._pingInterval = pingInterval;
    this._pongTimeout = pongTimeout;
    this._refreshRatio = refreshRatio;
    this._refreshMargin = refreshMargin;
    this._WebSocket = WebSocketImpl;
    this._transport = transport;
    this._presence = presence;
    this._fallbackAfter = fallbackAfter;
    this._fetch = fetchImpl;
    this._usingSse = transport === "sse";
    this._webSocketWorked = false;
    this._failuresBeforeWelcome = 0;
    this._random = random;
    this._now = now;
    this._setTimeout = setTimer;
    this._clearTimeout = clearTimer;
    this._state = freezeState({ phase: Phase.IDLE, maxAttempts: this.backoff.maxAttempts });
    this._ws = null;
    this._welcomed = false;
    this._lastError = null; // the last error payload that answered no command
    this._failures = 0; // failed connections since the last welcome
    this._tokenRetryUsed = false;
    this._started = false;
    this._stopped = false; // closed by the application
    this._offlineError = null;
    this._pending = new Map(); // request_id -> entry (sent, waiting for the answer)
    this._waiting = []; // entries waiting for a connection
    this._requestIds = 0;
    this._timers = { retry: null, open: null, ping: null, pong: null, refresh: null };
    this._welcome = null;
    this._tokenExpiresAt = null; // server clock, epoch ms
    this._clockOffset = 0; // server clock minus ours, ms
    this._connectWaiters = [];
  }
  // ---- what the application observes ----------------------------------------------------
  /** The connection state: {phase, attempt, maxAttempts, nextDelay, retryAt, closeCode,
   * reason, error, connectionId}. */
  get state() {
    return this._state;
  }
  /** The id of the newest event received (persist it to resume in a later page). */
  /** The transport in use, or of the next connection: "websocket" or "sse" (the fallback). */
  get transport() {
    return this._usingSse ? "sse" : "websocket";
  }
  get lastEventId() {
    return this._lastEventId;
  }
  /** The payload of the current (or last) welcome, or null. */
  get welcome() {
    return this._welcome;
  }
  /** When the token in use expires (server clock, epoch ms), or null when unknown. */
  get tokenExpiresAt() {
    return this._tokenExpiresAt;
  }
  /** The token in use. */
  get token() {
    return this._token;
  }
  /** Call `handler(event)` for events of `type` (and `event`, when given); null matches
   * any. Returns a function that removes the handler. */
  on(type, event, handler) {
    if (typeof event === "function") [event, handler] = [null, event];
    const listener = (e) => {
      const msg = e.detail;
      if ((type == null || msg.type === type) && (event == null || msg.event === event)) {
        handler(msg);
      }
    };
    this.addEventListener("event", listener);
    return () => this.removeEventListener("event", listener);
  }
  // ---- lifecycle ------------------------------------------------------------------------
  /** Start the session; resolves at the first welcome, rejects if the client goes offline
   * (or is closed) before it. */
  connect() {
    const promise = this._whenConnected();
    if (!this._started) {
      this._started = true;
      this._setState(Phase.CONNECTING, {});
      this._open();
    }
    return promise;
  }
  /** After going offline (or while waiting between attempts): try again now, with a fresh
   * series of attempts. */
  reconnect() {
    if (this._stopped) throw new ClientClosed();
    if (this._state.phase === Phase.CONNECTED || this._state.phase === Phase.CONNECTING) {
      return this._whenConnected();
    }
    const promise = this._whenConnected();
    this._cancel("retry");
    this._started = true;
    this._offlineError = null;
    this._failures = 0;
    this._tokenRetryUsed = false;
    if (this._ws === null) {
      this._setState(Phase.CONNECTING, {});
      this._open();
    }
    return promise;
  }
  _wake() {
    if (this._stopped || !this._started) return;
    if (globalThis.document?.visibilityState === "hidden") return;
    const waiting = this._state.phase === Phase.RECONNECTING && this._ws === null;
    const gaveUp =
      this._state.phase === Phase.OFFLINE && this._offlineError instanceof ReconnectFailed;
    if (waiting || gaveUp) this.reconnect().catch(() => {});
  }
  /** Close the connection (code 1000) for good; waiting commands reject with ClientClosed. */
  close() {
    if (this._stopped) return;
    this._stopped = true;
    for (const type of WAKE_EVENTS) this._wakeTarget?.removeEventListener?.(type, this._onWake);
    for (const name of Object.keys(this._timers)) this._cancel(name);
    const ws = this._ws;
    this._ws = null;
    if (ws !== null) {
      detach(ws);
      try {
        ws.close(1000, "client closed");
      } catch {
        // already closing
      }
    }
    this._failAll(new ClientClosed());
    this._setState(Phase.CLOSED, { closeCode: this._state.closeCode });
    this._settleConnect(new ClientClosed());
  }
  // ---- subscriptions --------------------------------------------------------------------
  /** The declared subscription: null (everything), or {projects, bugReports} as Sets. */
  get subscription() {
    return this._subscription;
  }
  /** Narrow the stream to these projects and bug reports (added to earlier ones); kept
   * across reconnects. Resolves with the server's subscription; rejects (not_found, ...)
   * and keeps the old one. */
  async subscribe({ projects = [], bugReports = [] } = {}) {
    const result = await this._command("subscribe", { projects, bug_reports: bugReports });
    const base = this._subscription ?? { projects: new Set(), bugReports: new Set() };
    this._subscription = {
      projects: new Set([...base.projects, ...projects]),
      bugReports: new Set([...base.bugReports, ...bugReports]),
    };
    return result;
  }
  /** Remove projects and bug reports from a narrowed subscription. */
  async unsubscribe({ projects = [], bugReports = [] } = {}) {
    if (this._subscription === null) {
      throw new RangeError("subscribe to what you want before unsubscribing");
    }
    const result = await this._command("unsubscribe", { projects, bug_reports: bugReports });
    const drop = (set, ids) => new Set([...set].filter((id) => !ids.includes(id)));
    this._subscription = {
      projects: drop(this._subscription.projects, projects),
      bugReports: drop(this._subscription.bugReports, bugReports),
    };
    return result;
  }
  /** Back to every event the user may see. */
  async subscribeAll() {
    const result = await this._command("subscribe", { all: true });
    this._subscription = null;
    return result;
  }
  /** A new connection starts with everything: narrow it again (events stay filtered here
   * until the server has it). */
  _renewSubscription() {
    const wanted = this._subscription;
    if (wanted === null) return;
    const projects = [...wanted.projects];
    const bugReports = [...wanted.bugReports];
    const renewal =
      projects.length || bugReports.length
        ? this._command("subscribe", { projects, bug_reports: bugReports })
        : this._command("unsubscribe", { all: true });
    renewal.catch((error) => console.warn("bugstream: could not renew the subscription", error));
  }
  // ---- presence -------------------------------------------------------------------------
  /** The bug report this client shows now (null: none): others in its project see it, as
   * `presence` `viewing`. Kept across reconnects (sent again after each welcome); rejects with
   * a CommandError `not_found` for a bug report the user may not see. */
  viewBug(bugReportId) {
    this._viewing = bugReportId;
    this._presence = true; // who shows what they view follows who else does
    return this._command("presence.view", { bug_report_id: bugReportId });
  }
  /** The bug report declared with `viewBug`, or null. */
  get viewing() {
    return this._viewing;
  }
  _renewView() {
    if (this._viewing === null) return; // a new connection views nothing
    this._command("presence.view", { bug_report_id: this._viewing }).catch((error) =>
      console.warn("bugstream: could not renew the viewed bug report", error),
    );
  }
  // ---- commands -------------------------------------------------------------------------
  /** Send a command ("bug_report.create", ...); resolves with the ack's `result`, rejects
   * with CommandError / CommandTimeout / ConnectionLost / ClientClosed. */
  send(command, ...args) {
    return this._command(command, ...args);
  }
  /** `send` for any message with a request id (commands, subscribe, unsubscribe). */
  _command(command, payload = {}, { timeout = this._commandTimeout } = {}) {
    return new Promise((resolve, reject) => {
      if (this._stopped) return reject(new ClientClosed());
      if (this._offlineError !== null) return reject(this._offlineError);
      const requestId = `c${++this._requestIds}`;
      const entry = {
        requestId,
        command,
        text: JSON.stringify({ type: command, request_id: requestId, payload }),
        resolve,
        reject,
        ws: null,
        timer: null,
      };
      entry.timer = this._setTimeout(() => {
        this._forget(entry);
        reject(new CommandTimeout(command, requestId, timeout));
      }, timeout);
      if (this._state.phase === Phase.CONNECTED && this._ws !== null) this._transmit(entry);
      else this._waiting.push(entry);
    });
  }
  _transmit(entry) {
    entry.ws = this._ws;
    this._pending.set(entry.requestId, entry);
    // The server's answer to an oversized message cannot name its request (it is not
    // parsed), so the command would wait out its timeout: refuse it here, as it would.
    const limit = this._welcome?.limits?.max_message_bytes;
    const size = new TextEncoder().encode(entry.text).length;
    if (Number.isInteger(limit) && size > limit) {
      const message = `the message is ${size} bytes; the server takes at most ${limit}`;
      const payload = { code: "message_too_large", message, size, limit };
      this._settle(entry.requestId, null, new CommandError(payload, entry.command));
      return;
    }
    try {
      this._ws.send(entry.text);
    } catch {
      this._pending.delete(entry.requestId);
      entry.ws = null;
      this._waiting.push(entry); // it never went out: wait for the next connection
    }
  }
  _forget(entry) {
    this._pending.delete(entry.requestId);
    const index = this._waiting.indexOf(entry);
    if (index >= 0) this._waiting.splice(index, 1);
  }
  _settle(requestId, result, error) {
    const entry = this._pending.get(requestId);
    if (entry === undefined) return false;
    this._pending.delete(requestId);
    this._clearTimeout(entry.timer);
    if (error) entry.reject(error);
    else entry.resolve(result);
    return true;
  }
  _failAll(error) {
    const entries = [...this._pending.values(), ...this._waiting];
    this._pending.clear();
    this._waiting = [];
    for (const entry of entries) {
      this._clearTimeout(entry.timer);
      entry.reject(error);
    }
  }
  // ---- the session ----------------------------------------------------------------------
  async _open() {
    let credential;
    try {
      // With a ticketProvider the token never goes in the URL: a single-use ticket does.
      credential = this._ticketProvider
        ? { ticket: await this._ticketProvider() }
        : { token: await this._tokenForConnect() };
    } catch (error) {
      console.warn("bugstream: getting a token or ticket failed:", error);
      if (!this._stopped) this._afterClose({ code: null, reason: String(error), welcomed: false });
      return;
    }
    if (this._stopped || this._ws !== null) return;
    let ws;
    try {
      ws = this._usingSse
        ? new SseSocket(this._streamUrl(credential), {
            fetch: this._fetch,
            token: () => this._tokenForConnect(),
          })
        : new this._WebSocket(this._streamUrl(credential));
    } catch (error) {
      this._afterClose({ code: null, reason: String(error), welcomed: false });
      return;
    }
    this._ws = ws;
    this._welcomed = false;
    this._lastError = null;
    ws.onmessage = (e) => this._onMessage(ws, e.data);
    ws.onclose = (e) => this._onClose(ws, e.code, e.reason);
    ws.onerror = () => {}; // a close event follows
    this._timers.open = this._setTimeout(() => {
      this._timers.open = null;
      this._abandon(ws, CloseCode.ABNORMAL, "no welcome in time");
    }, this._openTimeout);
  }
  _onMessage(ws, data) {
    if (ws !== this._ws) return;
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      console.warn("bugstream: ignoring a message that is not JSON");
      return;
    }
    if (message === null || typeof message !== "object") return;
    this._cancel("pong"); // any message shows the connection is alive
    const payload = message.payload && typeof message.payload === "object" ? message.payload : {};
    if ("event_id" in message && "event" in message) {
      const id = message.event_id;
      if (!Number.isInteger(id)) return;
      if (this._lastEventId !== null && id <= this._lastEventId) return; // already seen
      this._lastEventId = id;
      if (subscriptionWants(this._subscription, message, this._welcome?.user?.id)) {
        this._emit("event", message);
      }
      return;
    }
    switch (message.type) {
      case "welcome":
        this._onWelcome(ws, payload);
        break;
      case "ack":
        this._settle(payload.request_id, payload.result, null);
        break;
      case "presence":
        this._emit("presence", message);
        break;
      case "error": {
        const entry = this._pending.get(payload.request_id);
        if (entry !== undefined) {
          this._settle(entry.requestId, null, new CommandError(payload, entry.command));
        } else {
          this._lastError = payload;
          this._emit("servererror", payload);
        }
        break;
      }
      case "resync_required": {
        const latest = Number.isInteger(payload.latest_event_id) ? payload.latest_event_id : 0;
        // The server goes on after `latest_event_id`; a later reconnect resumes there.
        this._lastEventId = Math.max(this._lastEventId ?? 0, latest);
        this._emit("resync", payload);
        break;
      }
      default:
        break; // pong, subscribed, skipped...
    }
  }
  _onWelcome(ws, payload) {
    this._cancel("open");
    this._welcomed = true;
    this._failuresBeforeWelcome = 0;
    if (!this._usingSse) this._webSocketWorked = true;
    this._welcome = payload;
    this._failures = 0;
    this._tokenRetryUsed = false;
    const serverTime = Date.parse(payload.server_time);
    if (!Number.isNaN(serverTime)) this._clockOffset = serverTime - this._now();
    const expires = Date.parse(payload.token_expires_at);
    this._tokenExpiresAt = Number.isNaN(expires) ? null : expires;
    if (this._lastEventId === null && Number.isInteger(payload.latest_event_id)) {
      // A fresh start: what follows the server's position at this welcome is new.
      this._lastEventId = payload.latest_event_id;
    }
    this._setState(Phase.CONNECTED, { connectionId: payload.connection_id ?? null });
    this._emit("welcome", payload);
    this._schedulePing(ws);
    this._scheduleRefresh(ws);
    this._renewSubscription();
    this._renewView();
    const waiting = this._waiting;
    this._waiting = [];
    for (const entry of waiting) this._transmit(entry);
    this._settleConnect(null);
  }
  _onClose(ws, code, reason) {
    if (ws !== this._ws) return;
    this._ws = null;
    detach(ws);
    for (const name of ["open", "ping", "pong", "refresh"]) this._cancel(name);
    for (const entry of [...this._pending.values()]) {
      if (entry.ws === ws) {
        this._settle(entry.requestId, null, new ConnectionLost(entry.command, entry.requestId));
      }
    }
    if (this._stopped) return;
    this._afterClose({ code, reason, welcomed: this._welcomed, error: this._lastError });
  }
  /** Give up on a connection that does not answer: close it, and go on as if it closed. */
  _abandon(ws, code, reason) {
    if (ws !== this._ws) return;
    try {
      ws.close(1000, reason);
    } catch {
      // not open yet, or already closing
    }
    this._onClose(ws, code, reason);
  }
  async _afterClose({ code, reason, welcomed, error = null }) {
    if (welcomed) {
      this._failures = 0;
      this._tokenRetryUsed = false;
    }
    if (code !== null && isTerminal(code)) {
      if (needsNewToken(code) && this._provider && !this._tokenRetryUsed) {
        this._tokenRetryUsed = true;
        this._setState(Phase.RECONNECTING, {
          attempt: this._failures + 1,
          closeCode: code,
          reason,
        });
        if (await this._renewToken()) {
          if (!this._stopped && this._ws === null && this._state.phase === Phase.RECONNECTING) {
            this._open();
          }
          return;
        }
      }
      this._goOffline(rejection(code, reason, error, Boolean(this._provider)));
      return;
    }
    this._failures += 1;
    if (!welcomed) this._failuresBeforeWelcome += 1;
    if (
      this._transport === "auto" &&
      !this._usingSse &&
      !this._webSocketWorked &&
      this._failuresBeforeWelcome >= this._fallbackAfter
    ) {
      // WebSockets never got through (a proxy or network that blocks them): the same stream
      // over plain HTTP from now on, at once.
      this._usingSse = true;
      console.warn("bugstream: WebSockets fail here; using the SSE fallback");
      this._failures = 0;
      this._setState(Phase.RECONNECTING, { attempt: 1, closeCode: code, reason });
      this._open();
      return;
    }
    if (this._failures > this.backoff.maxAttempts) {
      this._goOffline(new ReconnectFailed(this.backoff.maxAttempts, { closeCode: code, reason }));
      return;
    }
    const attempt = this._failures;
    const delay = this.backoff.delay(attempt, this._random);
    this._setState(Phase.RECONNECTING, {
      attempt,
      nextDelay: delay,
      retryAt: this._now() + delay,
      closeCode: code,
      reason,
    });
    this._timers.retry = this._setTimeout(() => {
      this._timers.retry = null;
      if (this._stopped || this._ws !== null) return;
      this._setState(Phase.RECONNECTING, { attempt, closeCode: code, reason });
      this._open();
    }, delay);
  }
  _goOffline(error) {
    this._offlineError = error;
    this._failures = 0;
    this._failAll(error);
    this._setState(Phase.OFFLINE, {
      closeCode: error.closeCode ?? null,
      reason: error.reason ?? "",
      error,
    });
    this._settleConnect(error);
  }
  _streamUrl(credential) {
    const url = new URL(this.url);
    for (const name of ["last_event_id", "token", "ticket"]) url.searchParams.delete(name);
    for (const [name, value] of Object.entries(credential)) url.searchParams.set(name, value);
    if (this._presence || this._viewing !== null) url.searchParams.set("presence", "true");
    if (this._lastEventId !== null) {
      url.searchParams.set("last_event_id", String(this._lastEventId));
    }
    return url.toString();
  }
  // ---- heartbeat ------------------------------------------------------------------------
  _schedulePing(ws) {
    if (!(this._pingInterval > 0)) return;
    this._timers.ping = this._setTimeout(() => {
      this._timers.ping = null;
      if (ws !== this._ws) return;
      try {
        ws.send(JSON.stringify({ type: "ping" }));
      } catch {
        return; // closing: the close event follows
      }
      // The deadline runs from the first unanswered ping: restarting it at every ping never
      // let it expire when pongTimeout >= pingInterval, and a stalled link stayed "connected".
      if (this._timers.pong === null) {
        this._timers.pong = this._setTimeout(() => {
          this._timers.pong = null;
          this._abandon(ws, CloseCode.ABNORMAL, "no answer to ping");
        }, this._pongTimeout);
      }
      this._schedulePing(ws);
    }, this._pingInterval);
  }
  // ---- tokens ---------------------------------------------------------------------------
  async _tokenForConnect() {
    if (this._provider && (!this._token || this._tokenIsStale())) {
      this._token = await this._callProvider();
      this._tokenExpiresAt = null;
      this._emit("token", { token: this._token, expiresAt: null });
    }
    return this._token;
  }
  _tokenIsStale() {
    const left = this._msLeft();
    return left !== null && left < STALE_TOKEN_MS;
  }
  _msLeft() {
    if (this._tokenExpiresAt === null) return null;
    return this._tokenExpiresAt - (this._now() + this._clockOffset);
  }
  async _callProvider() {
    const token = await this._provider();
    if (typeof token !== "string" || token === "") {
      throw new TypeError("the token provider must return a non-empty string");
    }
    return token;
  }
  async _renewToken() {
    try {
      const token = await this._callProvider();
      if (token === this._token) return false;
      this._token = token;
      this._tokenExpiresAt = null;
      this._emit("token", { token, expiresAt: null });
      return true;
    } catch (error) {
      console.warn("bugstream: the token provider failed:", error);
      return false;
    }
  }
  _scheduleRefresh(ws) {
    if (!this._provider) return;
    const left = this._msLeft();
    if (left === null || left <= 0) return; // unknown, or too late: 4002, then a new token
    const ratio = left * this._refreshRatio;
    const delay = Math.max(Math.min(ratio, left - this._refreshMargin), left / 2);
    this._timers.refresh = this._setTimeout(() => {
      this._timers.refresh = null;
      this._refresh(ws);
    }, delay);
  }
  async _refresh(ws) {
    let token;
    try {
      token = await this._callProvider();
    } catch (error) {
      console.warn("bugstream: the token provider failed; will retry:", error);
      if (ws === this._ws) this._scheduleRefresh(ws);
      return;
    }
    if (ws !== this._ws) return;
    if (token === this._token) {
      console.warn("bugstream: the token provider returned the token in use; will retry");
      this._scheduleRefresh(ws);
      return;
    }
    try {
      const result = await this._request(ws, "auth", { token });
      this._token = token;
      const expires = Date.parse(result?.token_expires_at);
      this._tokenExpiresAt = Number.isNaN(expires) ? null : expires;
      this._emit("token", { token, expiresAt: this._tokenExpiresAt });
    } catch (error) {
      const gone = error instanceof ConnectionLost || error instanceof ClientClosed;
      if (gone || ws !== this._ws) return;
      console.warn("bugstream: the token refresh failed; will retry:", error);
    }
    if (ws === this._ws) this._scheduleRefresh(ws);
  }
  /** Send a request on this connection only (not queued for the next one). */
  _request(ws, type, payload) {
    return new Promise((resolve, reject) => {
      const requestId = `${type}-${++this._requestIds}`;
      const entry = {
        requestId,
        command: type,
        text: JSON.stringify({ type, request_id: requestId, payload }),
        resolve,
        reject,
        ws,
        timer: null,
      };
      entry.timer = this._setTimeout(() => {
        this._forget(entry);
        reject(new CommandTimeout(type, requestId, this._commandTimeout));
      }, this._commandTimeout);
      this._pending.set(requestId, entry);
      try {
        ws.send(entry.text);
      } catch {
        this._settle(requestId, null, new ConnectionLost(type, requestId));
      }
    });
  }
  // ---- helpers --------------------------------------------------------------------------
  _cancel(name) {
    if (this._timers[name] !== null) {
      this._clearTimeout(this._timers[name]);
      this._timers[name] = null;
    }
  }
  _setState(phase, fields) {
    this._state = freezeState({ phase, maxAttempts: this.backoff.maxAttempts, ...fields });
    this._emit("state", this._state);
  }
  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
  _whenConnected() {
    if (this._state.phase === Phase.CONNECTED) return Promise.resolve();
    if (this._stopped) return Promise.reject(new ClientClosed());
    return new Promise((resolve, reject) => this._connectWaiters.push({ resolve, reject }));
  }
  _settleConnect(error) {
    const waiters = this._connectWaiters;
    this._connectWaiters = [];
    for (const waiter of waiters) {
      if (error) waiter.reject(error);
      else waiter.resolve();
    }
  }
}
function freezeState(fields) {
  return Object.freeze({
    phase: Phase.IDLE,
    attempt: 0,
    maxAttempts: 0,
    nextDelay: null,
    retryAt: null,
    closeCode: null,
    reason: "",
    error: null,
    connectionId: null,
    ...fields,
  });
}
function detach(ws) {
  ws.onmessage = ws.onclose = ws.onerror = null;
}
function rejection(code, reason, error, hasProvider) {
  const said = error?.message ? `: ${error.message}` : "";
  if (code === CloseCode.TOKEN_EXPIRED) {
    const hint = hasProvider
      ? "the token provider gave no newer token"
      : "give a tokenProvider to have tokens refreshed";
    return new ConnectionRejected(`the token expired (close code 4002); ${hint}`, {
      closeCode: code,
      reason,
      error,
      code: "token_expired",
    });
  }
  return new ConnectionRejected(
    `the server closed the connection with code ${code} (${reason})${said}; not reconnecting`,
    { closeCode: code, reason, error, code: error?.code ?? "rejected" },
  );
}
function resolveUrl(url) {
  const base = globalThis.location?.href;
  const resolved = base ? new URL(url, base) : new URL(url);
  if (resolved.protocol === "http:") resolved.protocol = "ws:";
  else if (resolved.protocol === "https:") resolved.protocol = "wss:";
  if (resolved.protocol !== "ws:" && resolved.protocol !== "wss:") {
    throw new TypeError(`expected a ws:// or wss:// URL, got ${url}`);
  }
  resolved.searchParams.delete("token");
  return resolved.toString();
}

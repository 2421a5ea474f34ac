/** The board's state: constants, what it holds, the signed-in session. */

export const STATUSES = ["open", "in_progress", "resolved", "closed", "reopened"];
export const STATUS_LABELS = {
  open: "Open",
  in_progress: "In progress",
  resolved: "Resolved",
  closed: "Closed",
  reopened: "Reopened",
};
export const PRIORITIES = ["critical", "high", "medium", "low"];
export const MANAGES_BUGS = new Set(["admin", "manager", "developer"]);
export const WRITES = new Set(["admin", "manager", "developer", "reporter"]);
export const SESSION_KEY = "bugstream.session";
export const PROJECT_KEY = "bugstream.project";
export const PAGE = 200;

/** Everything the board holds; one object, so that every module sees the same values. */
export const state = {
  session: null, // {token, expiresAt, user}
  client: null,
  loadedOnce: false,
  restLoaded: false, // loaded over REST before any welcome (the stream was refused)
  projects: new Map(), // id -> project
  projectId: null,
  bugs: new Map(), // id -> bug (of the current project)
  members: new Map(), // id -> user
  selectedBugId: null,
  comments: new Map(), // id -> comment (of the selected bug)
  notifications: new Map(), // id -> notification (the newest ones)
  unread: 0,
  loading: 0, // snapshots being loaded; events wait meanwhile
  held: [],
  flashing: new Set(),
  countdown: null,
};

/** What the modules call across each other (set by board.js): `openDetail`,
 * `openNotification`, `signOut`. They keep the module graph free of cycles. */
export const actions = {};

export function loadSession() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(SESSION_KEY));
    return saved && typeof saved.token === "string" ? saved : null;
  } catch {
    return null;
  }
}

export function saveSession(data) {
  state.session = { token: data.access_token, expiresAt: data.expires_at, user: data.user };
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(state.session));
}

export function role() {
  return state.session?.user?.role ?? "viewer";
}

export function userName(id) {
  if (id === null || id === undefined) return null;
  if (state.members.has(id)) return state.members.get(id).username;
  if (id === state.session?.user?.id) return state.session.user.username;
  return `user #${id}`;
}

/** The client's options from the page's URL (for demos and tests: docs/integration.md). */
export function clientOptions() {
  const params = new URLSearchParams(location.search);
  const number = (name) => {
    const value = Number(params.get(name));
    return params.has(name) && Number.isFinite(value) && value >= 0 ? value : undefined;
  };
  // A board left open never gives up: it retries every 30 s at most, and at once when the
  // network comes back or the tab is shown again (?maxAttempts=n restores a limit).
  const backoff = { maxAttempts: Infinity, maxDelay: 30000 };
  if (number("reconnectDelay") !== undefined) backoff.initial = number("reconnectDelay");
  if (number("maxAttempts") !== undefined) backoff.maxAttempts = Math.floor(number("maxAttempts"));
  if (number("maxDelay") !== undefined) backoff.maxDelay = number("maxDelay");
  if (params.get("jitter") === "0") backoff.jitter = false;
  const options = { backoff };
  if (number("pingInterval") !== undefined) options.pingInterval = number("pingInterval");
  return options;
}

state.session = loadSession();

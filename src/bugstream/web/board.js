/**
 * The live board at `/`: sign in, pick a project, watch its bug reports change live.
 *
 * Reads go over REST (/api/v1); changes are WebSocket commands (bugstream.js), and every
 * change anyone makes arrives as an event. The first load waits for the first welcome, so no
 * event falls between the REST snapshot and the stream; events arriving while a snapshot
 * loads are held and applied after it (events carry whole entities, so applying one the
 * snapshot already reflects changes nothing). On `resync_required` everything is refetched.
 *
 * User text is only ever set with textContent (never as HTML).
 *
 * URL options (for demos and tests): `?reconnectDelay=ms` (initial backoff, default 2000),
 * `?maxAttempts=n` (default 5), `?jitter=0` (exact delays), `?pingInterval=ms`.
 */

import { BugstreamClient, describeState, Phase } from "./bugstream.js";

const STATUSES = ["open", "in_progress", "resolved", "closed", "reopened"];
const STATUS_LABELS = {
  open: "Open",
  in_progress: "In progress",
  resolved: "Resolved",
  closed: "Closed",
  reopened: "Reopened",
};
const PRIORITIES = ["critical", "high", "medium", "low"];
const MANAGES_BUGS = new Set(["admin", "manager", "developer"]);
const WRITES = new Set(["admin", "manager", "developer", "reporter"]);
const SESSION_KEY = "bugstream.session";
const PROJECT_KEY = "bugstream.project";
const PAGE = 200;

// ---- state ------------------------------------------------------------------------------

let session = loadSession(); // {token, expiresAt, user}
let client = null;
let loadedOnce = false;
let projects = new Map(); // id -> project
let projectId = null;
let bugs = new Map(); // id -> bug (of the current project)
let members = new Map(); // id -> user
let selectedBugId = null;
let comments = new Map(); // id -> comment (of the selected bug)
let notifications = new Map(); // id -> notification (the newest ones)
let unread = 0;
let loading = 0; // snapshots being loaded; events wait meanwhile
let held = [];
const flashing = new Set();
let countdown = null;
let toastTimer = null;

// ---- elements ---------------------------------------------------------------------------

const $ = (id) => document.getElementById(id);
const ui = {
  loginView: $("login-view"),
  loginForm: $("login-form"),
  loginError: $("login-error"),
  boardView: $("board-view"),
  projectPicker: document.querySelector(".project-picker"),
  projectSelect: $("project-select"),
  noProjects: $("no-projects"),
  columns: $("columns"),
  newBugForm: $("new-bug-form"),
  connection: $("connection"),
  retry: $("retry"),
  whoami: $("whoami"),
  signOut: $("sign-out"),
  toast: $("toast"),
  notificationsToggle: $("notifications-toggle"),
  unreadCount: $("unread-count"),
  notificationsPanel: $("notifications-panel"),
  notificationList: $("notification-list"),
  noNotifications: $("no-notifications"),
  markAllRead: $("mark-all-read"),
  detail: $("detail"),
  detailId: $("detail-id"),
  detailTitle: $("detail-title"),
  detailClose: $("detail-close"),
  editTitle: $("edit-title"),
  titleForm: $("title-form"),
  titleCancel: $("title-cancel"),
  detailStatus: $("detail-status"),
  detailAssignee: $("detail-assignee"),
  detailPriority: $("detail-priority"),
  detailReporter: $("detail-reporter"),
  detailUpdated: $("detail-updated"),
  detailDescription: $("detail-description"),
  commentCount: $("comment-count"),
  commentList: $("comment-list"),
  commentForm: $("comment-form"),
};

/** An element with attributes and children; strings become text nodes, never HTML. */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

// ---- REST -------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, payload) {
    super(payload.message ?? `HTTP ${status}`);
    this.status = status;
    this.code = payload.code ?? `http_${status}`;
    this.payload = payload;
  }
}

async function api(method, path, body) {
  const headers = { accept: "application/json" };
  if (session?.token) headers.authorization = `Bearer ${session.token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  let response;
  try {
    response = await fetch(`/api/v1${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, { code: "network", message: "the server cannot be reached" });
  }
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data?.payload ?? {});
  return data;
}

/** Every item of a paginated list. */
async function fetchAll(path) {
  const items = [];
  const joiner = path.includes("?") ? "&" : "?";
  for (let offset = 0; ; offset += PAGE) {
    const page = await api("GET", `${path}${joiner}limit=${PAGE}&offset=${offset}`);
    items.push(...page.items);
    if (offset + PAGE >= page.total || page.items.length === 0) return items;
  }
}

// ---- session ----------------------------------------------------------------------------

function loadSession() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(SESSION_KEY));
    return saved && typeof saved.token === "string" ? saved : null;
  } catch {
    return null;
  }
}

function saveSession(data) {
  session = { token: data.access_token, expiresAt: data.expires_at, user: data.user };
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
}

/** The client's token provider: a fresh token for the current one (POST /auth/refresh). */
async function refreshToken() {
  saveSession(await api("POST", "/auth/refresh"));
  return session.token;
}

async function signIn(event) {
  event.preventDefault();
  const form = new FormData(ui.loginForm);
  ui.loginError.textContent = "";
  try {
    session = null;
    saveSession(
      await api("POST", "/auth/token", {
        username: String(form.get("username")).trim(),
        password: String(form.get("password")),
      }),
    );
  } catch (error) {
    ui.loginError.textContent =
      error.code === "invalid_credentials" ? "Wrong username or password." : error.message;
    return;
  }
  ui.loginForm.reset();
  enterBoard();
}

function signOut(message = "") {
  if (client) client.close();
  client = null;
  session = null;
  sessionStorage.removeItem(SESSION_KEY);
  resetBoard();
  showLogin(message);
}

function showLogin(message = "") {
  ui.boardView.hidden = true;
  ui.notificationsPanel.hidden = true;
  ui.projectPicker.hidden = true;
  ui.notificationsToggle.hidden = true;
  ui.signOut.hidden = true;
  ui.retry.hidden = true;
  ui.whoami.textContent = "";
  ui.loginView.hidden = false;
  ui.loginError.textContent = message;
  ui.loginForm.elements.username.focus();
  setIndicator("idle", "not connected", "");
}

// ---- the stream -------------------------------------------------------------------------

function clientOptions() {
  const params = new URLSearchParams(location.search);
  const number = (name) => {
    const value = Number(params.get(name));
    return params.has(name) && Number.isFinite(value) && value >= 0 ? value : undefined;
  };
  const backoff = {};
  if (number("reconnectDelay") !== undefined) backoff.initial = number("reconnectDelay");
  if (number("maxAttempts") !== undefined) backoff.maxAttempts = Math.floor(number("maxAttempts"));
  if (params.get("jitter") === "0") backoff.jitter = false;
  const options = { backoff };
  if (number("pingInterval") !== undefined) options.pingInterval = number("pingInterval");
  return options;
}

function enterBoard() {
  ui.loginView.hidden = true;
  ui.boardView.hidden = false;
  ui.signOut.hidden = false;
  ui.notificationsToggle.hidden = false;
  renderWhoami();
  loadedOnce = false;
  client = new BugstreamClient("/ws", {
    token: session.token,
    tokenProvider: refreshToken,
    ...clientOptions(),
  });
  client.addEventListener("state", (e) => onState(e.detail));
  client.addEventListener("welcome", () => {
    if (!loadedOnce) {
      loadedOnce = true;
      reloadAll();
    }
  });
  client.addEventListener("event", (e) => {
    if (loading > 0) held.push(e.detail);
    else applyEvent(e.detail);
  });
  client.addEventListener("resync", () => {
    toast("Some changes were missed while offline; reloading the board.");
    reloadAll();
  });
  client.connect().catch(() => {}); // the indicator shows what happened
}

function onState(state) {
  clearInterval(countdown);
  countdown = null;
  ui.retry.hidden = !(state.phase === Phase.OFFLINE || state.retryAt !== null);
  if (state.phase === Phase.RECONNECTING && state.retryAt !== null) {
    const tick = () => {
      const seconds = Math.max(0, Math.ceil((state.retryAt - Date.now()) / 1000));
      setIndicator(state.phase, `${describeState(state)} · next try in ${seconds} s`, state.reason);
    };
    tick();
    countdown = setInterval(tick, 250);
  } else if (state.phase === Phase.OFFLINE) {
    const why = state.error ? state.error.message : "";
    setIndicator(state.phase, "offline", why);
    if (state.closeCode === 4001 || state.closeCode === 4002) {
      signOut("Your session has expired. Sign in again.");
    } else if (state.closeCode === 4003) {
      signOut("Your account is not active.");
    } else if (why) {
      toast(`Offline: ${why}`);
    }
  } else {
    setIndicator(state.phase, describeState(state), state.reason);
  }
}

function setIndicator(phase, text, title) {
  ui.connection.dataset.phase = phase;
  ui.connection.textContent = text;
  ui.connection.title = title || "";
}

// ---- loading ----------------------------------------------------------------------------

/** Run `load` with events held back; apply them afterwards, in order. */
async function holdingEvents(load) {
  loading += 1;
  try {
    await load();
  } catch (error) {
    handleApiError(error);
  } finally {
    loading -= 1;
    if (loading === 0) {
      const events = held;
      held = [];
      for (const message of events) applyEvent(message, { quiet: true });
      render();
    }
  }
}

function handleApiError(error) {
  if (error instanceof ApiError && error.status === 401) {
    signOut("Your session has expired. Sign in again.");
  } else {
    toast(error.message);
  }
}

function reloadAll() {
  return holdingEvents(async () => {
    await Promise.all([loadProjects(), loadNotifications()]);
    await loadProject();
  });
}

async function loadProjects() {
  const list = await fetchAll("/projects");
  projects = new Map(list.map((p) => [p.id, p]));
  const stored = Number(localStorage.getItem(PROJECT_KEY));
  if (!projects.has(projectId)) {
    projectId = projects.has(stored) ? stored : (list[0]?.id ?? null);
  }
  renderProjects();
}

async function loadProject() {
  bugs = new Map();
  members = new Map();
  if (projectId === null) {
    closeDetail();
    return;
  }
  const id = projectId;
  const [bugList, memberList] = await Promise.all([
    fetchAll(`/bugs?project_id=${id}`),
    api("GET", `/projects/${id}/members`),
  ]);
  if (id !== projectId) return;
  bugs = new Map(bugList.map((b) => [b.id, b]));
  members = new Map(memberList.map((u) => [u.id, u]));
  if (selectedBugId !== null) {
    if (bugs.has(selectedBugId)) await loadComments(selectedBugId);
    else closeDetail();
  }
}

async function loadComments(bugId) {
  const list = await fetchAll(`/bugs/${bugId}/comments`);
  if (bugId === selectedBugId) comments = new Map(list.map((c) => [c.id, c]));
}

async function loadNotifications() {
  const [latest, unreadPage] = await Promise.all([
    api("GET", "/notifications?limit=1"),
    api("GET", "/notifications?unread=true&limit=1"),
  ]);
  const offset = Math.max(0, latest.total - 50);
  const page = await api("GET", `/notifications?limit=50&offset=${offset}`);
  notifications = new Map(page.items.map((n) => [n.id, n]));
  unread = unreadPage.total;
}

async function selectProject(id) {
  projectId = id;
  localStorage.setItem(PROJECT_KEY, String(id));
  closeDetail();
  await holdingEvents(loadProject);
}

// ---- live events ------------------------------------------------------------------------

function applyEvent(message, { quiet = false } = {}) {
  const { type, event, payload } = message;
  if (!payload || typeof payload !== "object") return;
  switch (type) {
    case "bug_report":
      if (payload.project_id !== projectId) return;
      if (event === "deleted") {
        bugs.delete(payload.id);
        if (payload.id === selectedBugId) {
          closeDetail();
          if (!quiet) toast(`Bug #${payload.id} was deleted.`);
        }
      } else {
        bugs.set(payload.id, payload);
        if (!quiet) flash(payload.id);
      }
      break;
    case "comment":
      if (payload.bug_report_id !== selectedBugId) return;
      if (event === "deleted") comments.delete(payload.id);
      else comments.set(payload.id, payload);
      break;
    case "notification":
      if (!notifications.has(payload.id)) {
        notifications.set(payload.id, payload);
        if (!payload.read) unread += 1;
      }
      break;
    case "project":
      if (event === "deleted") {
        projects.delete(payload.id);
        if (payload.id === projectId) {
          if (!quiet) toast(`Project ${payload.name} was deleted.`);
          projectId = null;
          reloadAll();
        }
      } else {
        projects.set(payload.id, payload);
      }
      break;
    case "membership":
      if (payload.user_id === session?.user?.id) {
        if (event === "removed" && payload.project_id === projectId) {
          if (!quiet) toast("You were removed from this project.");
          projectId = null;
        }
        reloadAll();
      } else if (payload.project_id === projectId) {
        holdingEvents(async () => {
          const list = await api("GET", `/projects/${projectId}/members`);
          members = new Map(list.map((u) => [u.id, u]));
        });
      }
      break;
    case "user":
      if (payload.id === session?.user?.id && event !== "deleted") {
        session.user = payload;
        sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
        renderWhoami();
      }
      if (members.has(payload.id)) {
        if (event === "deleted") members.delete(payload.id);
        else members.set(payload.id, payload);
      }
      break;
    default:
      return;
  }
  if (!quiet) render();
}

function flash(bugId) {
  flashing.add(bugId);
  setTimeout(() => {
    flashing.delete(bugId);
    const card = ui.columns.querySelector(`[data-bug-id="${bugId}"]`);
    if (card) card.classList.remove("flash");
  }, 1600);
}

// ---- rendering --------------------------------------------------------------------------

function render() {
  renderProjects();
  renderBoard();
  renderDetail();
  renderNotifications();
}

function renderWhoami() {
  const user = session?.user;
  ui.whoami.textContent = user ? `${user.username} · ${user.role}` : "";
}

function renderProjects() {
  const list = [...projects.values()].sort((a, b) => a.name.localeCompare(b.name));
  ui.projectPicker.hidden = list.length === 0;
  ui.noProjects.hidden = list.length !== 0 || loading > 0;
  ui.columns.hidden = list.length === 0;
  ui.newBugForm.hidden = list.length === 0 || !WRITES.has(role());
  // Rebuilt only when the list changes, so that an open dropdown stays open.
  replaceOptions(
    ui.projectSelect,
    list.map((p) => [String(p.id), p.name]),
  );
  ui.projectSelect.value = projectId === null ? "" : String(projectId);
  renderTitle();
}

/** Replace a select's options with `[value, label]` pairs, unless they are the same. */
function replaceOptions(select, options) {
  const key = JSON.stringify(options);
  if (select.dataset.options === key) return;
  select.dataset.options = key;
  select.replaceChildren(...options.map(([value, label]) => h("option", { value }, label)));
}

function renderTitle() {
  const name = projects.get(projectId)?.name;
  document.title = `${unread ? `(${unread}) ` : ""}${name ? `${name} · ` : ""}bugstream`;
}

function role() {
  return session?.user?.role ?? "viewer";
}

function userName(id) {
  if (id === null || id === undefined) return null;
  if (members.has(id)) return members.get(id).username;
  if (id === session?.user?.id) return session.user.username;
  return `user #${id}`;
}

function initials(name) {
  return name
    .split(/[\s._-]+/)
    .filter(Boolean)
    .slice(0, 2)
    .map((part) => part[0].toUpperCase())
    .join("");
}

function renderBoard() {
  const rank = (bug) => PRIORITIES.indexOf(bug.priority);
  for (const column of ui.columns.querySelectorAll(".column")) {
    const status = column.dataset.status;
    const list = [...bugs.values()]
      .filter((bug) => bug.status === status)
      .sort((a, b) => rank(a) - rank(b) || a.id - b.id);
    column.querySelector(".count").textContent = String(list.length);
    column.querySelector(".cards").replaceChildren(...list.map(renderCard));
  }
}

function renderCard(bug) {
  const priority = PRIORITIES.includes(bug.priority) ? bug.priority : "medium";
  const assignee = userName(bug.assignee_id);
  const classes = ["card", `priority-${priority}`];
  if (flashing.has(bug.id)) classes.push("flash");
  if (bug.id === selectedBugId) classes.push("selected");
  return h(
    "li",
    { class: classes.join(" "), "data-bug-id": bug.id },
    h(
      "button",
      { type: "button", class: "card-button", onclick: () => openDetail(bug.id) },
      h(
        "span",
        { class: "card-top" },
        h("span", { class: "bug-id" }, `#${bug.id}`),
        h("span", { class: `pill pill-${priority}` }, priority),
      ),
      h("span", { class: "card-title" }, bug.title),
      h(
        "span",
        { class: "card-meta" },
        assignee
          ? [h("span", { class: "avatar", "aria-hidden": "true" }, initials(assignee)), assignee]
          : h("span", { class: "muted" }, "Unassigned"),
      ),
    ),
  );
}

async function openDetail(bugId) {
  selectedBugId = bugId;
  comments = new Map();
  ui.titleForm.hidden = true;
  ui.detail.hidden = false;
  render();
  await holdingEvents(() => loadComments(bugId));
}

function closeDetail() {
  selectedBugId = null;
  comments = new Map();
  ui.detail.hidden = true;
}

function renderDetail() {
  const bug = bugs.get(selectedBugId);
  if (!bug) {
    ui.detail.hidden = true;
    return;
  }
  ui.detail.hidden = false;
  ui.detailId.textContent = `Bug #${bug.id}`;
  ui.detailTitle.textContent = bug.title;
  const own = bug.reporter_id === session.user.id;
  const mayEdit = MANAGES_BUGS.has(role()) || (role() === "reporter" && own);
  ui.editTitle.hidden = !mayEdit || !ui.titleForm.hidden;
  replaceOptions(
    ui.detailStatus,
    STATUSES.map((s) => [s, STATUS_LABELS[s]]),
  );
  ui.detailStatus.value = bug.status;
  ui.detailStatus.disabled = !MANAGES_BUGS.has(role());
  const people = [...members.values()]
    .filter((u) => u.status === "active" || u.id === bug.assignee_id)
    .sort((a, b) => a.username.localeCompare(b.username));
  if (bug.assignee_id !== null && !members.has(bug.assignee_id)) {
    people.push({ id: bug.assignee_id, username: userName(bug.assignee_id) });
  }
  replaceOptions(ui.detailAssignee, [
    ["", "Unassigned"],
    ...people.map((u) => [String(u.id), u.username]),
  ]);
  ui.detailAssignee.value = bug.assignee_id === null ? "" : String(bug.assignee_id);
  ui.detailAssignee.disabled = !MANAGES_BUGS.has(role());
  ui.detailPriority.textContent = bug.priority;
  ui.detailReporter.textContent = userName(bug.reporter_id) ?? "(deleted user)";
  ui.detailUpdated.textContent = formatTime(bug.updated_at);
  ui.detailDescription.textContent = bug.description || "No description.";
  ui.detailDescription.classList.toggle("muted", !bug.description);
  const list = [...comments.values()].sort((a, b) => a.id - b.id);
  ui.commentCount.textContent = String(list.length);
  ui.commentList.replaceChildren(
    ...list.map((c) =>
      h(
        "li",
        { class: "comment", "data-comment-id": c.id },
        h(
          "div",
          { class: "comment-head" },
          h("strong", {}, userName(c.user_id) ?? "(deleted user)"),
          h("span", { class: "muted" }, formatTime(c.created_at)),
        ),
        h("p", { class: "comment-body" }, c.content),
      ),
    ),
  );
  ui.commentForm.hidden = !WRITES.has(role());
}

function renderNotifications() {
  ui.unreadCount.textContent = String(unread);
  ui.unreadCount.dataset.count = String(unread);
  const list = [...notifications.values()].sort((a, b) => b.id - a.id);
  ui.noNotifications.hidden = list.length > 0;
  ui.notificationList.replaceChildren(
    ...list.map((n) =>
      h(
        "li",
        { class: n.read ? "notification" : "notification unread", "data-notification-id": n.id },
        h(
          "button",
          { type: "button", class: "notification-button", onclick: () => openNotification(n) },
          h("span", { class: "notification-message" }, n.message),
          h("span", { class: "muted" }, formatTime(n.created_at)),
        ),
      ),
    ),
  );
  renderTitle();
}

function formatTime(iso) {
  const time = Date.parse(iso);
  if (Number.isNaN(time)) return "";
  const seconds = Math.round((Date.now() - time) / 1000);
  if (seconds < 45) return "just now";
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  return new Date(time).toLocaleString();
}

function toast(message) {
  ui.toast.textContent = message;
  ui.toast.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    ui.toast.hidden = true;
  }, 6000);
}

function resetBoard() {
  projects = new Map();
  projectId = null;
  bugs = new Map();
  members = new Map();
  notifications = new Map();
  unread = 0;
  closeDetail();
  render();
}

// ---- actions (WebSocket commands) -------------------------------------------------------

/** Run a command; show its error, if any. Returns the result, or undefined on failure. */
async function command(name, payload) {
  try {
    return await client.send(name, payload);
  } catch (error) {
    const fields = (error.fields ?? []).map((f) => `${f.field}: ${f.message}`).join("; ");
    toast(fields ? `${error.message} (${fields})` : error.message);
    return undefined;
  }
}

async function createBug(event) {
  event.preventDefault();
  const form = new FormData(ui.newBugForm);
  const button = ui.newBugForm.querySelector("button");
  button.disabled = true;
  const bug = await command("bug_report.create", {
    project_id: projectId,
    title: String(form.get("title")),
    description: String(form.get("description") ?? ""),
    priority: String(form.get("priority")),
  });
  button.disabled = false;
  if (bug) {
    ui.newBugForm.reset();
    if (bug.project_id === projectId && !bugs.has(bug.id)) {
      bugs.set(bug.id, bug);
      render();
    }
  }
}

async function changeStatus() {
  const id = selectedBugId;
  ui.detailStatus.disabled = true;
  await command("bug_report.change_status", { id, status: ui.detailStatus.value });
  renderDetail(); // the event has updated the bug; on failure this puts the old value back
}

async function changeAssignee() {
  const id = selectedBugId;
  const value = ui.detailAssignee.value;
  ui.detailAssignee.disabled = true;
  if (value === "") await command("bug_report.unassign", { id });
  else await command("bug_report.assign", { id, assignee_id: Number(value) });
  renderDetail();
}

async function saveTitle(event) {
  event.preventDefault();
  const title = String(new FormData(ui.titleForm).get("title"));
  if (await command("bug_report.update", { id: selectedBugId, title })) {
    ui.titleForm.hidden = true;
    renderDetail();
  }
}

async function addComment(event) {
  event.preventDefault();
  const bugId = selectedBugId;
  const content = String(new FormData(ui.commentForm).get("content"));
  const button = ui.commentForm.querySelector("button");
  button.disabled = true;
  const comment = await command("comment.create", { bug_report_id: bugId, content });
  button.disabled = false;
  if (comment) {
    ui.commentForm.reset();
    if (bugId === selectedBugId && !comments.has(comment.id)) {
      comments.set(comment.id, comment);
      renderDetail();
    }
  }
}

async function openNotification(notification) {
  if (!notification.read) {
    const result = await command("notification.mark_read", { id: notification.id });
    if (result && !notifications.get(notification.id)?.read) {
      notifications.set(notification.id, result);
      unread = Math.max(0, unread - 1);
      renderNotifications();
    }
  }
  if (bugs.has(notification.bug_report_id)) openDetail(notification.bug_report_id);
}

async function markAllRead() {
  const result = await command("notification.mark_all_read", {});
  if (!result) return;
  for (const id of result.ids) {
    const n = notifications.get(id);
    if (n) notifications.set(id, { ...n, read: true });
  }
  unread = Math.max(0, unread - result.ids.length);
  renderNotifications();
}

function toggleNotifications() {
  const open = ui.notificationsPanel.hidden;
  ui.notificationsPanel.hidden = !open;
  ui.notificationsToggle.setAttribute("aria-expanded", String(open));
}

// ---- wiring -----------------------------------------------------------------------------

ui.loginForm.addEventListener("submit", signIn);
ui.signOut.addEventListener("click", () => signOut());
ui.retry.addEventListener("click", () => client?.reconnect().catch(() => {}));
ui.projectSelect.addEventListener("change", () => selectProject(Number(ui.projectSelect.value)));
ui.newBugForm.addEventListener("submit", createBug);
ui.detailClose.addEventListener("click", () => {
  closeDetail();
  render();
});
ui.detailStatus.addEventListener("change", changeStatus);
ui.detailAssignee.addEventListener("change", changeAssignee);
ui.editTitle.addEventListener("click", () => {
  ui.titleForm.hidden = false;
  ui.editTitle.hidden = true;
  ui.titleForm.elements.title.value = bugs.get(selectedBugId)?.title ?? "";
  ui.titleForm.elements.title.focus();
});
ui.titleCancel.addEventListener("click", () => {
  ui.titleForm.hidden = true;
  renderDetail();
});
ui.titleForm.addEventListener("submit", saveTitle);
ui.commentForm.addEventListener("submit", addComment);
ui.notificationsToggle.addEventListener("click", toggleNotifications);
ui.markAllRead.addEventListener("click", markAllRead);
window.addEventListener("online", () => {
  if (client?.state.phase === Phase.OFFLINE) client.reconnect().catch(() => {});
});
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && !ui.notificationsPanel.hidden) toggleNotifications();
});

if (session) enterBoard();
else showLogin();

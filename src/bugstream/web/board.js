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
import { api } from "./board-api.js";
import { setIndicator, toast, ui } from "./board-dom.js";
import {
  applyEvent,
  closeDetail,
  openDetail,
  reloadAll,
  resetBoard,
  selectProject,
} from "./board-load.js";
import { followPresence } from "./board-presence.js";
import { render, renderDetail, renderNotifications, renderWhoami } from "./board-render.js";
import { actions, clientOptions, saveSession, SESSION_KEY, state } from "./board-state.js";

/** The client's token provider: a fresh token for the current one (POST /auth/refresh). */
async function refreshToken() {
  saveSession(await api("POST", "/auth/refresh"));
  return state.session.token;
}

async function signIn(event) {
  event.preventDefault();
  const form = new FormData(ui.loginForm);
  ui.loginError.textContent = "";
  try {
    state.session = null;
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
  if (state.client) state.client.close();
  state.client = null;
  state.session = null;
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

function enterBoard() {
  ui.loginView.hidden = true;
  ui.boardView.hidden = false;
  ui.signOut.hidden = false;
  ui.notificationsToggle.hidden = false;
  renderWhoami();
  state.loadedOnce = false;
  state.restLoaded = false;
  state.client = new BugstreamClient("/ws", {
    token: state.session.token,
    tokenProvider: refreshToken,
    // The token stays out of URLs (and of the console's failed-connection lines).
    ticketProvider: async () => (await api("POST", "/auth/ws-ticket")).ticket,
    presence: true, // the "Online" bar and "Also viewing"
    ...clientOptions(),
  });
  state.client.addEventListener("state", (e) => onState(e.detail));
  followPresence(state.client);
  state.client.addEventListener("welcome", () => {
    if (!state.loadedOnce) {
      state.loadedOnce = true;
      reloadAll();
    }
  });
  state.client.addEventListener("event", (e) => {
    if (state.loading > 0) state.held.push(e.detail);
    else applyEvent(e.detail);
  });
  state.client.addEventListener("resync", () => {
    toast("Some changes were missed while offline; reloading the board.");
    reloadAll();
  });
  state.client.connect().catch(() => {}); // the indicator shows what happened
}

function onState(connection) {
  const failing = connection.phase === Phase.RECONNECTING || connection.phase === Phase.OFFLINE;
  if (failing && !state.loadedOnce && !state.restLoaded) {
    // No stream yet (refused, or a proxy that blocks WebSockets): show the board from REST
    // anyway; the first welcome loads it again, so nothing falls between.
    state.restLoaded = true;
    reloadAll();
  }
  clearInterval(state.countdown);
  state.countdown = null;
  ui.retry.hidden = !(connection.phase === Phase.OFFLINE || connection.retryAt !== null);
  if (connection.phase === Phase.RECONNECTING && connection.retryAt !== null) {
    const tick = () => {
      const seconds = Math.max(0, Math.ceil((connection.retryAt - Date.now()) / 1000));
      const text = `${describeState(connection)} · next try in ${seconds} s`;
      setIndicator(connection.phase, text, connection.reason);
    };
    tick();
    state.countdown = setInterval(tick, 250);
  } else if (connection.phase === Phase.OFFLINE) {
    const why = connection.error ? connection.error.message : "";
    setIndicator(connection.phase, "offline", why);
    if (connection.closeCode === 4001 || connection.closeCode === 4002) {
      signOut("Your session has expired. Sign in again.");
    } else if (connection.closeCode === 4003) {
      signOut("Your account is not active.");
    } else if (why) {
      toast(`Offline: ${why}`);
    }
  } else {
    setIndicator(connection.phase, describeState(connection), connection.reason);
  }
}

/** Run a command; show its error, if any. Returns the result, or undefined on failure. */
async function command(name, payload) {
  try {
    return await state.client.send(name, payload);
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
    project_id: state.projectId,
    title: String(form.get("title")),
    description: String(form.get("description") ?? ""),
    priority: String(form.get("priority")),
  });
  button.disabled = false;
  if (bug) {
    ui.newBugForm.reset();
    if (bug.project_id === state.projectId && !state.bugs.has(bug.id)) {
      state.bugs.set(bug.id, bug);
      render();
    }
  }
}

async function changeStatus() {
  const id = state.selectedBugId;
  ui.detailStatus.disabled = true;
  await command("bug_report.change_status", { id, status: ui.detailStatus.value });
  renderDetail(); // the event has updated the bug; on failure this puts the old value back
}

async function changeAssignee() {
  const id = state.selectedBugId;
  const value = ui.detailAssignee.value;
  ui.detailAssignee.disabled = true;
  if (value === "") await command("bug_report.unassign", { id });
  else await command("bug_report.assign", { id, assignee_id: Number(value) });
  renderDetail();
}

async function saveTitle(event) {
  event.preventDefault();
  const title = String(new FormData(ui.titleForm).get("title"));
  if (await command("bug_report.update", { id: state.selectedBugId, title })) {
    ui.titleForm.hidden = true;
    renderDetail();
  }
}

async function addComment(event) {
  event.preventDefault();
  const bugId = state.selectedBugId;
  const content = String(new FormData(ui.commentForm).get("content"));
  const button = ui.commentForm.querySelector("button");
  button.disabled = true;
  const comment = await command("comment.create", { bug_report_id: bugId, content });
  button.disabled = false;
  if (comment) {
    ui.commentForm.reset();
    if (bugId === state.selectedBugId && !state.comments.has(comment.id)) {
      state.comments.set(comment.id, comment);
      renderDetail();
    }
  }
}

async function openNotification(notification) {
  if (!notification.read) {
    const result = await command("notification.mark_read", { id: notification.id });
    if (result && !state.notifications.get(notification.id)?.read) {
      state.notifications.set(notification.id, result);
      state.unread = Math.max(0, state.unread - 1);
      renderNotifications();
    }
  }
  if (state.bugs.has(notification.bug_report_id)) openDetail(notification.bug_report_id);
}

async function markAllRead() {
  const result = await command("notification.mark_all_read", {});
  if (!result) return;
  for (const id of result.ids) {
    const n = state.notifications.get(id);
    if (n) state.notifications.set(id, { ...n, read: true });
  }
  state.unread = Math.max(0, state.unread - result.ids.length);
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
ui.retry.addEventListener("click", () => state.client?.reconnect().catch(() => {}));
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
  ui.titleForm.elements.title.value = state.bugs.get(state.selectedBugId)?.title ?? "";
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
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && !ui.notificationsPanel.hidden) toggleNotifications();
});

Object.assign(actions, { openDetail, openNotification, signOut });

if (state.session) enterBoard();
else showLogin();

/** Loading snapshots over REST and applying live events to the state. Events that arrive
 * while a snapshot loads are held and applied after it, in order. */

import { api, ApiError, fetchAll } from "./board-api.js";
import { toast, ui } from "./board-dom.js";
import { flash, render, renderProjects, renderWhoami } from "./board-render.js";
import { actions, PROJECT_KEY, SESSION_KEY, state } from "./board-state.js";

/** Run `load` with events held back; apply them afterwards, in order. */
export async function holdingEvents(load) {
  state.loading += 1;
  try {
    await load();
  } catch (error) {
    handleApiError(error);
  } finally {
    state.loading -= 1;
    if (state.loading === 0) {
      const events = state.held;
      state.held = [];
      for (const message of events) applyEvent(message, { quiet: true });
      render();
    }
  }
}

export function handleApiError(error) {
  if (error instanceof ApiError && error.status === 401) {
    actions.signOut("Your session has expired. Sign in again.");
  } else {
    toast(error.message);
  }
}

export function reloadAll() {
  return holdingEvents(async () => {
    await Promise.all([loadProjects(), loadNotifications()]);
    await loadProject();
  });
}

export async function loadProjects() {
  const list = await fetchAll("/projects");
  state.projects = new Map(list.map((p) => [p.id, p]));
  const stored = Number(localStorage.getItem(PROJECT_KEY));
  if (!state.projects.has(state.projectId)) {
    state.projectId = state.projects.has(stored) ? stored : (list[0]?.id ?? null);
  }
  renderProjects();
}

export async function loadProject() {
  state.bugs = new Map();
  state.members = new Map();
  if (state.projectId === null) {
    closeDetail();
    return;
  }
  const id = state.projectId;
  const [bugList, memberList] = await Promise.all([
    fetchAll(`/bugs?project_id=${id}`),
    api("GET", `/projects/${id}/members`),
  ]);
  if (id !== state.projectId) return;
  state.bugs = new Map(bugList.map((b) => [b.id, b]));
  state.members = new Map(memberList.map((u) => [u.id, u]));
  if (state.selectedBugId !== null) {
    if (state.bugs.has(state.selectedBugId)) await loadComments(state.selectedBugId);
    else closeDetail();
  }
}

export async function loadComments(bugId) {
  const list = await fetchAll(`/bugs/${bugId}/comments`);
  if (bugId === state.selectedBugId) state.comments = new Map(list.map((c) => [c.id, c]));
}

export async function loadNotifications() {
  const [latest, unreadPage] = await Promise.all([
    api("GET", "/notifications?limit=1"),
    api("GET", "/notifications?unread=true&limit=1"),
  ]);
  const offset = Math.max(0, latest.total - 50);
  const page = await api("GET", `/notifications?limit=50&offset=${offset}`);
  state.notifications = new Map(page.items.map((n) => [n.id, n]));
  state.unread = unreadPage.total;
}

export async function selectProject(id) {
  state.projectId = id;
  localStorage.setItem(PROJECT_KEY, String(id));
  closeDetail();
  await holdingEvents(loadProject);
}

export async function openDetail(bugId) {
  state.selectedBugId = bugId;
  state.comments = new Map();
  ui.titleForm.hidden = true;
  ui.detail.hidden = false;
  render();
  await holdingEvents(() => loadComments(bugId));
}

export function closeDetail() {
  state.selectedBugId = null;
  state.comments = new Map();
  ui.detail.hidden = true;
}

export function resetBoard() {
  state.projects = new Map();
  state.projectId = null;
  state.bugs = new Map();
  state.members = new Map();
  state.notifications = new Map();
  state.unread = 0;
  closeDetail();
  render();
}

export function applyEvent(message, { quiet = false } = {}) {
  const { type, event, payload } = message;
  if (!payload || typeof payload !== "object") return;
  switch (type) {
    case "bug_report":
      if (payload.project_id !== state.projectId) return;
      if (event === "deleted") {
        state.bugs.delete(payload.id);
        if (payload.id === state.selectedBugId) {
          closeDetail();
          if (!quiet) toast(`Bug #${payload.id} was deleted.`);
        }
      } else {
        state.bugs.set(payload.id, payload);
        if (!quiet) flash(payload.id);
      }
      break;
    case "comment":
      if (payload.bug_report_id !== state.selectedBugId) return;
      if (event === "deleted") state.comments.delete(payload.id);
      else state.comments.set(payload.id, payload);
      break;
    case "notification":
      if (!state.notifications.has(payload.id)) {
        state.notifications.set(payload.id, payload);
        if (!payload.read) state.unread += 1;
      }
      break;
    case "project":
      if (event === "deleted") {
        state.projects.delete(payload.id);
        if (payload.id === state.projectId) {
          if (!quiet) toast(`Project ${payload.name} was deleted.`);
          state.projectId = null;
          reloadAll();
        }
      } else {
        state.projects.set(payload.id, payload);
      }
      break;
    case "membership":
      if (payload.user_id === state.session?.user?.id) {
        if (event === "removed" && payload.project_id === state.projectId) {
          if (!quiet) toast("You were removed from this project.");
          state.projectId = null;
        }
        reloadAll();
      } else if (payload.project_id === state.projectId) {
        holdingEvents(async () => {
          const list = await api("GET", `/projects/${state.projectId}/members`);
          state.members = new Map(list.map((u) => [u.id, u]));
        });
      }
      break;
    case "user":
      if (payload.id === state.session?.user?.id && event !== "deleted") {
        state.session.user = payload;
        sessionStorage.setItem(SESSION_KEY, JSON.stringify(state.session));
        renderWhoami();
      }
      if (state.members.has(payload.id)) {
        if (event === "deleted") state.members.delete(payload.id);
        else state.members.set(payload.id, payload);
      }
      break;
    default:
      return;
  }
  if (!quiet) render();
}

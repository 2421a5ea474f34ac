/**
 * Presence on the board: who is online in the selected project, and who else is viewing the
 * open bug report.
 *
 * The state comes from `GET /projects/{id}/presence` (after every welcome, when the project
 * changes, and when the server says `resync`), then from the client's `presence` messages, which carry no event id and
 * are not replayed. The open bug report is declared with `client.viewBug` (the client sends it
 * again after a reconnect); closing the panel declares none.
 */

import { api } from "./board-api.js";
import { h, ui } from "./board-dom.js";
import { state } from "./board-state.js";

const presence = {
  projectId: null, // the project the lists below are for
  online: new Map(), // user id -> username
  viewers: new Map(), // bug report id -> Map(user id -> username)
  viewing: null, // the bug report declared to the server
};

/** Follow the client's presence messages and reload the snapshot after every welcome. */
export function followPresence(client) {
  presence.viewing = null;
  client.addEventListener("presence", (e) => apply(e.detail));
  client.addEventListener("welcome", () => reload());
  // A member added or removed: presence messages do not follow membership; the snapshot does.
  client.addEventListener("event", (e) => {
    const { type, payload } = e.detail;
    if (type === "membership" && payload.project_id === presence.projectId) reload();
  });
}

/** Called with every render: declare the open bug report, reload on a project change, draw. */
export function syncPresence() {
  const client = state.client;
  if (client && state.selectedBugId !== presence.viewing) {
    presence.viewing = state.selectedBugId;
    client.viewBug(presence.viewing).catch(() => {}); // e.g. deleted meanwhile: nothing to show
  }
  if (state.projectId !== presence.projectId) reload();
  else draw();
}

async function reload() {
  const id = state.projectId;
  presence.projectId = id;
  presence.online = new Map();
  presence.viewers = new Map();
  draw();
  if (id === null || !state.session) return;
  let body;
  try {
    body = await api("GET", `/projects/${id}/presence`);
  } catch {
    return; // the board reports REST failures itself; presence stays empty
  }
  if (id !== presence.projectId) return;
  for (const user of body.online) presence.online.set(user.user_id, user.username);
  for (const bug of body.viewing) {
    presence.viewers.set(bug.bug_report_id, new Map(bug.users.map((u) => [u.user_id, u.username])));
  }
  draw();
}

function apply(message) {
  // Changes may have been missed (the server lost its presence channel and is back).
  if (message.event === "resync") return void reload();
  const { project_id: projectId, user, bug_report_id: bugId } = message.payload;
  if (projectId !== presence.projectId) return;
  if (message.event === "joined") presence.online.set(user.id, user.username);
  else if (message.event === "left") presence.online.delete(user.id);
  else if (message.event === "viewing") {
    if (!presence.viewers.has(bugId)) presence.viewers.set(bugId, new Map());
    presence.viewers.get(bugId).set(user.id, user.username);
  } else if (message.event === "stopped_viewing") {
    presence.viewers.get(bugId)?.delete(user.id);
  }
  draw();
}

function draw() {
  const me = state.session?.user?.id;
  const list = ui.onlineList;
  const names = [...presence.online.entries()].sort((a, b) => a[1].localeCompare(b[1]));
  list.replaceChildren(
    ...names.map(([id, name]) =>
      h("li", { class: id === me ? "online-user me" : "online-user", "data-user-id": id }, name),
    ),
  );
  ui.presenceBar.hidden = names.length === 0;
  const others = [...(presence.viewers.get(state.selectedBugId)?.entries() ?? [])]
    .filter(([id]) => id !== me)
    .map(([, name]) => name)
    .sort();
  const viewers = ui.detailViewers;
  viewers.hidden = others.length === 0;
  viewers.textContent = others.length ? `Also viewing: ${others.join(", ")}` : "";
}

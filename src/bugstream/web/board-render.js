/** Drawing the board from the state: projects, columns of cards, the detail panel,
 * notifications. Nothing here fetches or sends. */

import { h, formatTime, initials, replaceOptions, ui } from "./board-dom.js";
import { syncPresence } from "./board-presence.js";
import {
  actions,
  MANAGES_BUGS,
  PRIORITIES,
  role,
  state,
  STATUS_LABELS,
  STATUSES,
  userName,
  WRITES,
} from "./board-state.js";

export function render() {
  renderProjects();
  renderBoard();
  renderDetail();
  renderNotifications();
  syncPresence();
}

export function renderWhoami() {
  const user = state.session?.user;
  ui.whoami.textContent = user ? `${user.username} · ${user.role}` : "";
}

export function renderProjects() {
  const list = [...state.projects.values()].sort((a, b) => a.name.localeCompare(b.name));
  ui.projectPicker.hidden = list.length === 0;
  ui.noProjects.hidden = list.length !== 0 || state.loading > 0;
  ui.columns.hidden = list.length === 0;
  ui.newBugForm.hidden = list.length === 0 || !WRITES.has(role());
  // Rebuilt only when the list changes, so that an open dropdown stays open.
  replaceOptions(
    ui.projectSelect,
    list.map((p) => [String(p.id), p.name]),
  );
  ui.projectSelect.value = state.projectId === null ? "" : String(state.projectId);
  renderTitle();
}

export function renderTitle() {
  const name = state.projects.get(state.projectId)?.name;
  document.title = `${state.unread ? `(${state.unread}) ` : ""}${name ? `${name} · ` : ""}bugstream`;
}

export function renderBoard() {
  const rank = (bug) => PRIORITIES.indexOf(bug.priority);
  for (const column of ui.columns.querySelectorAll(".column")) {
    const status = column.dataset.status;
    const list = [...state.bugs.values()]
      .filter((bug) => bug.status === status)
      .sort((a, b) => rank(a) - rank(b) || a.id - b.id);
    column.querySelector(".count").textContent = String(list.length);
    column.querySelector(".cards").replaceChildren(...list.map(renderCard));
  }
}

export function renderCard(bug) {
  const priority = PRIORITIES.includes(bug.priority) ? bug.priority : "medium";
  const assignee = userName(bug.assignee_id);
  const classes = ["card", `priority-${priority}`];
  if (state.flashing.has(bug.id)) classes.push("flash");
  if (bug.id === state.selectedBugId) classes.push("selected");
  return h(
    "li",
    { class: classes.join(" "), "data-bug-id": bug.id },
    h(
      "button",
      { type: "button", class: "card-button", onclick: () => actions.openDetail(bug.id) },
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

export function renderDetail() {
  const bug = state.bugs.get(state.selectedBugId);
  if (!bug) {
    ui.detail.hidden = true;
    return;
  }
  ui.detail.hidden = false;
  ui.detailId.textContent = `Bug #${bug.id}`;
  ui.detailTitle.textContent = bug.title;
  const own = bug.reporter_id === state.session.user.id;
  const mayEdit = MANAGES_BUGS.has(role()) || (role() === "reporter" && own);
  ui.editTitle.hidden = !mayEdit || !ui.titleForm.hidden;
  replaceOptions(
    ui.detailStatus,
    STATUSES.map((s) => [s, STATUS_LABELS[s]]),
  );
  ui.detailStatus.value = bug.status;
  ui.detailStatus.disabled = !MANAGES_BUGS.has(role());
  const people = [...state.members.values()]
    .filter((u) => u.status === "active" || u.id === bug.assignee_id)
    .sort((a, b) => a.username.localeCompare(b.username));
  if (bug.assignee_id !== null && !state.members.has(bug.assignee_id)) {
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
  const list = [...state.comments.values()].sort((a, b) => a.id - b.id);
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

export function renderNotifications() {
  ui.unreadCount.textContent = String(state.unread);
  ui.unreadCount.dataset.count = String(state.unread);
  const list = [...state.notifications.values()].sort((a, b) => b.id - a.id);
  ui.noNotifications.hidden = list.length > 0;
  ui.notificationList.replaceChildren(
    ...list.map((n) =>
      h(
        "li",
        { class: n.read ? "notification" : "notification unread", "data-notification-id": n.id },
        h(
          "button",
          { type: "button", class: "notification-button", onclick: () => actions.openNotification(n) },
          h("span", { class: "notification-message" }, n.message),
          h("span", { class: "muted" }, formatTime(n.created_at)),
        ),
      ),
    ),
  );
  renderTitle();
}

export function flash(bugId) {
  state.flashing.add(bugId);
  setTimeout(() => {
    state.flashing.delete(bugId);
    const card = ui.columns.querySelector(`[data-bug-id="${bugId}"]`);
    if (card) card.classList.remove("flash");
  }, 1600);
}

/** The page's elements and small DOM helpers. User text only ever goes in as text. */

export const $ = (id) => document.getElementById(id);
export const ui = {
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
  presenceBar: $("presence-bar"),
  onlineList: $("online-list"),
  detailViewers: $("detail-viewers"),
};

let toastTimer = null;

/** An element with attributes and children; strings become text nodes, never HTML. */
export function h(tag, attrs = {}, ...children) {
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

/** Replace a select's options with `[value, label]` pairs, unless they are the same. */
export function replaceOptions(select, options) {
  const key = JSON.stringify(options);
  if (select.dataset.options === key) return;
  select.dataset.options = key;
  select.replaceChildren(...options.map(([value, label]) => h("option", { value }, label)));
}

export function formatTime(iso) {
  const time = Date.parse(iso);
  if (Number.isNaN(time)) return "";
  const seconds = Math.round((Date.now() - time) / 1000);
  if (seconds < 45) return "just now";
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  return new Date(time).toLocaleString();
}

export function initials(name) {
  return name
    .split(/[\s._-]+/)
    .filter(Boolean)
    .slice(0, 2)
    .map((part) => part[0].toUpperCase())
    .join("");
}

export function toast(message) {
  ui.toast.textContent = message;
  ui.toast.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    ui.toast.hidden = true;
  }, 6000);
}

export function setIndicator(phase, text, title) {
  ui.connection.dataset.phase = phase;
  ui.connection.textContent = text;
  ui.connection.title = title || "";
}

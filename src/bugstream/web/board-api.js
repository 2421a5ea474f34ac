/** REST calls (/api/v1) with the session's token; errors as `ApiError`. */

import { PAGE, state } from "./board-state.js";

export class ApiError extends Error {
  constructor(status, payload) {
    super(payload.message ?? `HTTP ${status}`);
    this.status = status;
    this.code = payload.code ?? `http_${status}`;
    this.payload = payload;
  }
}

export async function api(method, path, body) {
  const headers = { accept: "application/json" };
  if (state.session?.token) headers.authorization = `Bearer ${state.session.token}`;
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
export async function fetchAll(path) {
  const items = [];
  const joiner = path.includes("?") ? "&" : "?";
  for (let offset = 0; ; offset += PAGE) {
    const page = await api("GET", `${path}${joiner}limit=${PAGE}&offset=${offset}`);
    items.push(...page.items);
    if (offset + PAGE >= page.total || page.items.length === 0) return items;
  }
}

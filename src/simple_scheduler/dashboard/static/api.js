// Every request the pages make goes through here: same-origin credentials (the HttpOnly
// session cookie), the CSRF token header, and ProActive's JSON errors turned into
// ApiError with the server's message.

export const REST = "/rest/scheduler";
export const DATA = "/dashboard/api";

let session = null;

export class ApiError extends Error {
  constructor(status, message, headers) {
    super(message);
    this.status = status;
    this.headers = headers;
  }
}

export function currentSession() {
  return session;
}

function withQuery(path, query) {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value === null || value === undefined || value === "") continue;
    params.set(key, String(value));
  }
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}

async function errorFrom(response) {
  let message = `${response.status} ${response.statusText}`;
  try {
    const text = await response.text();
    try {
      const body = JSON.parse(text);
      if (body && typeof body.errorMessage === "string") message = body.errorMessage;
    } catch {
      if (text) message = text.slice(0, 500);
    }
  } catch {
    // keep the status line
  }
  return new ApiError(response.status, message, response.headers);
}

/**
 * fetch() with the session's CSRF header. `as`: "json" (default), "text" or "response".
 * A 401 also fires a "session-lost" event so the app can show the login page.
 */
export async function request(method, path, { query, body, headers, as = "json", signal } = {}) {
  const allHeaders = new Headers(headers || {});
  if (session) allHeaders.set(session.csrfHeader, session.csrfToken);
  const response = await fetch(withQuery(path, query), {
    method,
    body,
    headers: allHeaders,
    credentials: "same-origin",
    cache: "no-store",
    signal,
  });
  if (!response.ok) {
    const error = await errorFrom(response);
    if (response.status === 401 && !path.endsWith("/login")) {
      session = null;
      window.dispatchEvent(new CustomEvent("session-lost", { detail: error.message }));
    }
    throw error;
  }
  if (as === "response") return response;
  if (as === "text") return response.text();
  if (response.status === 204) return null;
  return response.json();
}

export const get = (path, options) => request("GET", path, options);
export const put = (path, options) => request("PUT", path, options);
export const post = (path, options) => request("POST", path, options);
export const del = (path, options) => request("DELETE", path, options);

const prefetched = new Map();

/**
 * Start a GET before the page that needs it is drawn (the job page's graph, while the
 * session is being checked); `take` hands the promise over once. Failures stay with the
 * promise: the page reports them as for its own request.
 */
export function prefetch(path) {
  const promise = fetch(path, { credentials: "same-origin", cache: "no-store" });
  promise.catch(() => {});
  prefetched.set(path, promise);
}

/** A prefetched GET's JSON (or a fresh request when there was none). */
export async function take(path) {
  const promise = prefetched.get(path);
  if (!promise) return get(path);
  prefetched.delete(path);
  const response = await promise;
  if (!response.ok) return get(path); // let the normal path report the error
  return response.json();
}

/** The logged-in session, or null when there is none. */
export async function loadSession() {
  const body = await get(`${DATA}/session`);
  session = body && body.user ? body : null;
  return session;
}

export async function login(username, password) {
  const body = new URLSearchParams({ username, password });
  await request("POST", `${REST}/login`, { body, as: "text" });
  return loadSession();
}

export async function logout() {
  try {
    await put("/rest/common/logout");
  } finally {
    session = null;
  }
}

/** URL-safe path pieces for job and task routes. */
export function jobPath(jobId) {
  return `/jobs/${encodeURIComponent(jobId)}`;
}

export function taskPath(jobId, taskName) {
  return `${jobPath(jobId)}/tasks/${encodeURIComponent(taskName)}`;
}

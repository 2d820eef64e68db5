// The dashboard's entry point: session, header, and a small router over the paths the
// server answers with this same shell (/jobs, /jobs/42, /jobs/42/tasks/B, /submit,
// /login), so deep links survive a reload. Each page is a function that draws into
// <main> and returns a cleanup function (stopping its live updates).

import { currentSession, loadSession, logout, prefetch } from "./api.js";
import { announce, h } from "./dom.js";
import { navigate, setRouter } from "./nav.js";
import { errorBox, setTitle } from "./ui.js";
import { jobsView } from "./views/jobs.js";
import { graphPath, jobView } from "./views/job.js";
import { loginView } from "./views/login.js";
import { submitView } from "./views/submit.js";
import { taskView } from "./views/task.js";

const main = document.getElementById("main");
let cleanup = null;

const ROUTES = [
  [/^\/$/, () => { navigate("/jobs", { replace: true }); return null; }],
  [/^\/jobs$/, (params, url) => jobsView(main, url)],
  [/^\/jobs\/([^/]+)$/, (params) => jobView(main, params[0])],
  [/^\/jobs\/([^/]+)\/tasks\/(.+)$/, (params) => taskView(main, params[0], params[1])],
  [/^\/submit$/, () => submitView(main)],
];

function decode(part) {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

function showHeader(session) {
  const nav = document.getElementById("nav");
  const who = document.getElementById("who");
  nav.hidden = !session;
  who.hidden = !session;
  if (session) {
    document.getElementById("user").textContent =
      session.admin ? `${session.user} (admin)` : session.user;
  }
  const path = location.pathname;
  for (const link of nav.querySelectorAll("a")) {
    const current = link.dataset.nav === "submit" ? path === "/submit" : path.startsWith("/jobs");
    if (current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

function route({ focus = false, message = null } = {}) {
  if (cleanup) {
    cleanup();
    cleanup = null;
  }
  const url = new URL(location.href);
  const path = url.pathname;
  const session = currentSession();
  showHeader(session);
  if (!session || path === "/login") {
    if (session && path === "/login") {
      navigate(url.searchParams.get("next") || "/jobs", { replace: true });
      return;
    }
    const next = path === "/login" ? url.searchParams.get("next") || "/jobs" : path + url.search;
    cleanup = loginView(main, { next, message, onLoggedIn: afterLogin });
    return;
  }
  for (const [pattern, view] of ROUTES) {
    const match = pattern.exec(path);
    if (match) {
      cleanup = view(match.slice(1).map(decode), url) || null;
      if (focus) focusHeading();
      return;
    }
  }
  setTitle("Not found");
  main.replaceChildren(h("h1", null, "Page not found"),
    h("p", null, h("a", { href: "/jobs" }, "Go to the job list")));
}

function focusHeading() {
  const heading = main.querySelector("h1");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: true });
  }
  window.scrollTo(0, 0);
}

function afterLogin(next) {
  const target = next && next.startsWith("/") && !next.startsWith("//") ? next : "/jobs";
  history.replaceState(null, "", target === "/login" ? "/jobs" : target);
  route({ focus: true });
  announce("Logged in");
}

// Same-origin links are handled here instead of reloading the page.
document.addEventListener("click", (event) => {
  if (event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const link = event.target.closest("a");
  if (!link || link.hasAttribute("download") || link.target) return;
  const href = link.getAttribute("href");
  if (!href || !href.startsWith("/") || href.startsWith("//")) return;
  if (href.startsWith("/rest/") || href.startsWith("/dashboard/")) return;
  event.preventDefault();
  if (href !== location.pathname + location.search) navigate(href);
});

window.addEventListener("popstate", () => route({ focus: true }));

window.addEventListener("session-lost", () => {
  if (location.pathname === "/login") return;
  route({ message: "Your session has ended. Log in again to continue." });
});

document.getElementById("logout").addEventListener("click", async () => {
  try {
    await logout();
  } catch {
    // the session is gone either way
  }
  history.pushState(null, "", "/login");
  route({ focus: true, message: "You are logged out." });
});

setRouter(route);

async function start() {
  // A deep link to a job: fetch its graph while the session is checked.
  const job = /^\/jobs\/([^/]+)$/.exec(location.pathname);
  if (job) prefetch(graphPath(decode(job[1])));
  try {
    await loadSession();
  } catch (error) {
    main.replaceChildren(h("h1", null, "The server did not answer"), errorBox(error));
    return;
  }
  route();
}

start();

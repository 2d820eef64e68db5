// The job list: newest first, paged, filtered by status and name (kept in the URL so the
// view can be bookmarked), updated live. Rows are updated in place so a keyboard user's
// focus stays where it was.

import { jobPath } from "../api.js";
import { h } from "../dom.js";
import { JOB_ALIVE, JOB_STATUSES, badge, elapsed, jobStatusText, number, time } from "../format.js";
import { watchJobs } from "../live.js";
import { debounce, errorBox, keepFocus, setTitle } from "../ui.js";

const PAGE_SIZES = [10, 25, 50, 100];
const ENDED = JOB_STATUSES.filter((s) => !JOB_ALIVE.includes(s));

function statusQuery(choice) {
  if (choice === "alive") return JOB_ALIVE.join(",");
  if (choice === "ended") return ENDED.join(",");
  return choice;
}

function counters(info) {
  const total = info.totalNumberOfTasks;
  const items = [
    [info.numberOfFinishedTasks, `of ${number(total)} finished`, "finished"],
    [info.numberOfPendingTasks, "pending", "pending"],
    [info.numberOfRunningTasks, "running", "running"],
    [info.numberOfFailedTasks, "failed", "failed"],
    [info.numberOfFaultyTasks, "faulty", "faulty"],
  ];
  return h("ul", { class: "counters" },
    items.map(([value, label, kind], i) => (i === 0 || value > 0
      ? h("li", { class: `c-${kind}` }, h("strong", null, number(value)), ` ${label}`)
      : null)));
}

function cells(item) {
  const info = item.jobInfo;
  return [
    h("td", { class: "status" }, badge(info.status, "job")),
    h("td", { class: "tasks" }, counters(info)),
    h("td", null, item.jobOwner),
    h("td", null, time(info.submittedTime)),
    h("td", { class: "num" }, elapsed(info.startTime, info.finishedTime)),
  ];
}

function row(item) {
  const info = item.jobInfo;
  const href = jobPath(item.jobid);
  return h("tr", { "data-id": item.jobid },
    h("td", { class: "num" }, h("a", { href }, item.jobid)),
    h("th", { scope: "row", class: "name" }, h("a", { href }, info.jobId.readableName)),
    cells(item));
}

export function jobsView(main, url) {
  setTitle("Jobs");
  const params = url.searchParams;
  const state = {
    status: params.get("status") || "",
    name: params.get("name") || "",
    page: Math.max(0, Number.parseInt(params.get("page") || "1", 10) - 1) || 0,
    size: PAGE_SIZES.includes(Number(params.get("size"))) ? Number(params.get("size")) : 25,
  };

  const statusSelect = h("select", { id: "filter-status", name: "status" },
    h("option", { value: "" }, "All statuses"),
    h("option", { value: "alive" }, "Not ended (pending, running, paused…)"),
    h("option", { value: "ended" }, "Ended"),
    JOB_STATUSES.map((s) => h("option", { value: s }, jobStatusText(s))));
  statusSelect.value = state.status;
  const nameInput = h("input", {
    id: "filter-name", name: "name", type: "search", value: state.name,
    placeholder: "part of the name", autocomplete: "off",
  });
  const sizeSelect = h("select", { id: "page-size" },
    PAGE_SIZES.map((n) => h("option", { value: n }, String(n))));
  sizeSelect.value = String(state.size);

  const tbody = h("tbody");
  const summary = h("p", { class: "summary", "aria-live": "polite" });
  const previous = h("button", { type: "button", class: "secondary" }, "← Newer");
  const next = h("button", { type: "button", class: "secondary" }, "Older →");
  const problem = h("div");

  main.replaceChildren(
    h("div", { class: "page-head" },
      h("h1", null, "Jobs"),
      h("a", { href: "/submit", class: "button primary" }, "Submit a job")),
    h("form", { class: "filters", role: "search", "aria-label": "Filter jobs" },
      h("div", null, h("label", { for: "filter-status" }, "Status"), statusSelect),
      h("div", null, h("label", { for: "filter-name" }, "Name contains"), nameInput),
      h("div", null, h("label", { for: "page-size" }, "Per page"), sizeSelect)),
    problem,
    h("div", { class: "table-wrap" },
      h("table", { class: "jobs" },
        h("caption", { class: "visually-hidden" }, "Jobs, newest first"),
        h("thead", null, h("tr", null,
          h("th", { scope: "col", class: "num" }, "Id"),
          h("th", { scope: "col" }, "Name"),
          h("th", { scope: "col" }, "Status"),
          h("th", { scope: "col" }, "Tasks"),
          h("th", { scope: "col" }, "Owner"),
          h("th", { scope: "col" }, "Submitted"),
          h("th", { scope: "col", class: "num" }, "Duration"))),
        tbody)),
    h("nav", { class: "pager", "aria-label": "Pages" }, previous, summary, next));

  let watcher = null;
  let shown = [];

  function render(page) {
    problem.replaceChildren();
    const ids = page.list.map((item) => item.jobid);
    keepFocus(tbody, () => {
      if (ids.length === shown.length && ids.every((id, i) => id === shown[i])) {
        // Same rows: refresh the cells that change, keep the links (and focus) alive.
        page.list.forEach((item, i) => {
          const tr = tbody.children[i];
          const keep = [...tr.children].slice(0, 2);
          tr.replaceChildren(...keep, ...cells(item));
        });
      } else {
        tbody.replaceChildren(...page.list.map(row));
        if (!page.list.length) {
          const filtered = state.status || state.name;
          tbody.appendChild(h("tr", null, h("td", { colspan: 7, class: "empty" },
            filtered ? "No job matches these filters." : "No jobs yet. ",
            filtered ? null : h("a", { href: "/submit" }, "Submit one."))));
        }
      }
    });
    shown = ids;
    const first = page.size ? state.page * state.size + 1 : 0;
    const last = state.page * state.size + page.list.length;
    summary.textContent = page.size
      ? `${number(first)}–${number(last)} of ${number(page.size)}`
      : "0 jobs";
    previous.disabled = state.page === 0;
    next.disabled = last >= page.size;
  }

  function start() {
    if (watcher) watcher.stop();
    const query = new URLSearchParams();
    if (state.status) query.set("status", state.status);
    if (state.name) query.set("name", state.name);
    if (state.page) query.set("page", String(state.page + 1));
    if (state.size !== 25) query.set("size", String(state.size));
    const search = query.toString();
    history.replaceState(null, "", search ? `/jobs?${search}` : "/jobs");
    shown = [];
    watcher = watchJobs(
      {
        index: state.page * state.size,
        limit: state.size,
        status: statusQuery(state.status),
        name: state.name,
      },
      (page) => {
        if (page.list.length === 0 && state.page > 0 && page.size > 0) {
          state.page = Math.floor((page.size - 1) / state.size);
          start();
          return;
        }
        render(page);
      },
      (error) => problem.replaceChildren(errorBox(error)),
    );
  }

  statusSelect.addEventListener("change", () => {
    state.status = statusSelect.value;
    state.page = 0;
    start();
  });
  nameInput.addEventListener("input", debounce(() => {
    state.name = nameInput.value.trim();
    state.page = 0;
    start();
  }, 300));
  sizeSelect.addEventListener("change", () => {
    state.size = Number(sizeSelect.value);
    state.page = 0;
    start();
  });
  previous.addEventListener("click", () => {
    state.page = Math.max(0, state.page - 1);
    start();
  });
  next.addEventListener("click", () => {
    state.page += 1;
    start();
  });
  main.querySelector("form.filters").addEventListener("submit", (e) => e.preventDefault());

  start();
  return () => watcher && watcher.stop();
}

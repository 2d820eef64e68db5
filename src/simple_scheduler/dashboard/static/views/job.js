// One job: status, counters, timings, actions, the task graph (live), the tasks as a
// filterable table (the usable view of a 10,000-task job), in-error tasks with their
// actions, variables and generic information.

import { DATA, REST, ApiError, del, get, jobPath, put, take, taskPath } from "../api.js";
import { announce, fill, h } from "../dom.js";
import {
  JOB_ALIVE, TASK_STATUSES, badge, elapsed, isJobAlive, number, taskStatusText, time,
} from "../format.js";
import { renderGraph } from "../graphview.js";
import { watchJob } from "../live.js";
import { navigate } from "../nav.js";
import { confirmDialog, errorBox, facts, keepFocus, setTitle, debounce } from "../ui.js";

const TABLE_PAGE = 50;
const LEGEND = [
  "SUBMITTED", "PENDING", "RUNNING", "FINISHED", "FAULTY", "IN_ERROR",
  "WAITING_ON_ERROR", "PAUSED", "ABORTED", "NOT_STARTED",
];

function keyValues(title, values, emptyText) {
  const entries = Object.entries(values || {});
  return h("section", { class: "card" },
    h("h2", null, title),
    entries.length
      ? h("div", { class: "table-wrap" }, h("table", { class: "kv" },
        h("thead", null, h("tr", null, h("th", { scope: "col" }, "Name"), h("th", { scope: "col" }, "Value"))),
        h("tbody", null, entries.map(([k, v]) => h("tr", null,
          h("th", { scope: "row" }, k), h("td", null, v === null ? "" : String(v)))))))
      : h("p", { class: "muted" }, emptyText));
}

export function graphPath(jobId) {
  return `${DATA}/jobs/${encodeURIComponent(jobId)}/graph`;
}

export function jobView(main, jobId) {
  setTitle(`Job ${jobId}`);
  const heading = h("h1", null, `Job ${jobId}`);
  const body = h("div", { class: "job" }, h("p", { class: "muted" }, "Loading…"));
  main.replaceChildren(
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" },
      h("a", { href: "/jobs" }, "Jobs"), " › ", h("span", { "aria-current": "page" }, `Job ${jobId}`)),
    heading,
    body);

  let watcher = null;
  let stopped = false;

  performance.mark("graph-requested");
  take(graphPath(jobId)).then((data) => {
    performance.mark("graph-received");
    if (!stopped) draw(data);
  }, (error) => {
    if (stopped) return;
    if (error instanceof ApiError && error.status === 404) {
      setTitle("Job not found");
      heading.textContent = "Job not found";
      body.replaceChildren(h("p", { class: "error", role: "alert" }, error.message),
        h("p", null, h("a", { href: "/jobs" }, "Back to the job list")));
    } else {
      body.replaceChildren(errorBox(error));
    }
  });

  function draw(data) {
    let job = data.job;
    const names = data.names;
    const problems = h("div", { "aria-live": "assertive" });

    // -- header: status, owner, actions ----------------------------------------------------
    const statusSlot = h("span");
    const metaSlot = h("p", { class: "meta" });
    const actions = h("div", { class: "actions", role: "toolbar", "aria-label": "Job actions" });
    const buttons = {};
    function button(key, label, handler, cls = "secondary") {
      const b = h("button", { type: "button", class: cls, "data-key": `job-${key}` }, label);
      b.addEventListener("click", handler);
      buttons[key] = b;
      return b;
    }

    async function act(label, run, { confirm, danger = false, body: text } = {}) {
      if (confirm && !(await confirmDialog({ title: confirm, body: text, confirm: label, danger }))) return;
      problems.replaceChildren();
      try {
        const result = await run();
        announce(`${label}: done`);
        if (watcher) watcher.refresh();
        return result;
      } catch (error) {
        problems.replaceChildren(errorBox(error));
        return undefined;
      }
    }

    const base = `${REST}/jobs/${encodeURIComponent(jobId)}`;
    actions.append(
      button("pause", "Pause", () => act("Pause", () => put(`${base}/pause`))),
      button("resume", "Resume", () => act("Resume", () => put(`${base}/resume`))),
      button("kill", "Kill", () => act("Kill", () => put(`${base}/kill`), {
        confirm: `Kill job ${jobId}?`, danger: true,
        body: "Running tasks are stopped (ABORTED) and the others will not start (NOT_STARTED).",
      }), "danger"),
      button("resubmit", "Resubmit", async () => {
        const created = await act("Resubmit", () => get(`${base}/resubmit`), {
          confirm: `Submit job ${jobId} again?`,
          body: "The same workflow runs again as a new job, with the same variables.",
        });
        if (created && created.id !== undefined) navigate(jobPath(created.id));
      }),
      button("remove", "Remove", async () => {
        const alive = isJobAlive(job.status);
        const done = await act("Remove", () => del(base), {
          confirm: `Remove job ${jobId}?`, danger: true,
          body: alive
            ? "The job is still running: it is killed first. Its record and all its output are deleted."
            : "Its record and all its output are deleted. This cannot be undone.",
        });
        if (done !== undefined) navigate("/jobs");
      }, "danger"),
    );

    // -- counters and timings -----------------------------------------------------------
    const counts = h("div");
    const timings = h("div");

    function drawHeader() {
      setTitle(`${job.jobId.readableName} (job ${jobId})`);
      heading.replaceChildren(job.jobId.readableName, " ", h("span", { class: "muted" }, `#${jobId}`));
      statusSlot.replaceChildren(badge(job.status, "job"));
      fill(metaSlot, 
        "Owner ", h("strong", null, job.jobOwner),
        " · priority ", h("strong", null, job.priority.toLowerCase()),
        job.projectName ? [" · project ", h("strong", null, job.projectName)] : null);
      const alive = JOB_ALIVE.includes(job.status);
      buttons.pause.disabled = !alive || job.status === "PAUSED";
      buttons.resume.disabled = job.status !== "PAUSED";
      buttons.kill.disabled = !alive;
      counts.replaceChildren(facts([
        ["Tasks", number(job.totalNumberOfTasks)],
        ["Pending", number(job.numberOfPendingTasks)],
        ["Running", number(job.numberOfRunningTasks)],
        ["Finished", number(job.numberOfFinishedTasks)],
        ["Failed", number(job.numberOfFailedTasks)],
        ["Faulty", number(job.numberOfFaultyTasks)],
        ["In error", number(job.numberOfInErrorTasks)],
      ], "facts counts"));
      timings.replaceChildren(facts([
        ["Submitted", time(job.submittedTime)],
        ["Started", time(job.startTime)],
        ["Finished", time(job.finishedTime)],
        ["Duration", elapsed(job.startTime, job.finishedTime)],
      ], "facts"));
    }

    // -- graph ------------------------------------------------------------------------------
    const graphBox = h("div", { class: "graph-box", tabindex: "-1" });
    const note = h("p", { class: "notice" });
    const zoomText = h("span", { class: "zoom", "aria-live": "polite" }, "100%");
    let view = null;
    function zoom(scale) {
      const value = view.setScale(scale);
      zoomText.textContent = `${Math.round(value * 100)}%`;
    }
    const graphTools = h("div", { class: "graph-tools", role: "toolbar", "aria-label": "Graph zoom" },
      h("button", { type: "button", class: "secondary", "aria-label": "Zoom out", on: { click: () => zoom(view.scale() / 1.25) } }, "−"),
      zoomText,
      h("button", { type: "button", class: "secondary", "aria-label": "Zoom in", on: { click: () => zoom(view.scale() * 1.25) } }, "+"),
      h("button", { type: "button", class: "secondary", on: { click: () => { view.fit(); zoom(view.scale()); } } }, "Fit"),
      h("button", { type: "button", class: "secondary", on: { click: () => zoom(1) } }, "Actual size"));
    const legend = h("ul", { class: "legend", "aria-label": "Status colours" },
      LEGEND.map((st) => h("li", null, badge(st))));

    // -- task table ------------------------------------------------------------------------
    const table = { status: "", name: "", cluster: null, page: 0 };
    const tbody = h("tbody");
    const tableSummary = h("p", { class: "summary" });
    const clusterChip = h("p", { class: "chip-row" });
    const tableStatus = h("select", { id: "task-status" },
      h("option", { value: "" }, "All statuses"),
      TASK_STATUSES.map((st) => h("option", { value: st }, taskStatusText(st))));
    const tableName = h("input", { id: "task-name", type: "search", autocomplete: "off", placeholder: "part of the name" });
    const tablePrev = h("button", { type: "button", class: "secondary" }, "← Previous");
    const tableNext = h("button", { type: "button", class: "secondary" }, "Next →");
    const tasksSection = h("section", { class: "card", id: "tasks" },
      h("h2", null, "Tasks"),
      h("form", { class: "filters", role: "search", "aria-label": "Filter tasks", on: { submit: (e) => e.preventDefault() } },
        h("div", null, h("label", { for: "task-status" }, "Status"), tableStatus),
        h("div", null, h("label", { for: "task-name" }, "Name contains"), tableName)),
      clusterChip,
      h("div", { class: "table-wrap" }, h("table", { class: "tasks" },
        h("caption", { class: "visually-hidden" }, "Tasks of this job"),
        h("thead", null, h("tr", null,
          h("th", { scope: "col", class: "num" }, "#"),
          h("th", { scope: "col" }, "Task"),
          h("th", { scope: "col" }, "Status"))),
        tbody)),
      h("nav", { class: "pager", "aria-label": "Task pages" }, tablePrev, tableSummary, tableNext));

    let tableRows = [];
    function matching() {
      const source = table.cluster === null ? null : view.model.nodes[table.cluster].tasks;
      const needle = table.name.toLowerCase();
      const out = [];
      const consider = (t) => {
        if (table.status && view.status[t] !== table.status) return;
        if (needle && !names[t].toLowerCase().includes(needle)) return;
        out.push(t);
      };
      if (source) {
        const sorted = [...source].sort((a, b) => a - b);
        for (const t of sorted) consider(t);
      } else {
        for (let t = 0; t < names.length; t += 1) consider(t);
      }
      return out;
    }
    function drawTable() {
      const rows = matching();
      const pages = Math.max(1, Math.ceil(rows.length / TABLE_PAGE));
      table.page = Math.min(table.page, pages - 1);
      const slice = rows.slice(table.page * TABLE_PAGE, (table.page + 1) * TABLE_PAGE);
      const signature = slice.map((t) => `${t}:${view.status[t]}`);
      if (signature.length === tableRows.length && signature.every((x, i) => x === tableRows[i])) return;
      tableRows = signature;
      keepFocus(tbody, () => {
        tbody.replaceChildren(...slice.map((t) => h("tr", null,
          h("td", { class: "num" }, String(t)),
          h("th", { scope: "row" }, h("a", { href: taskPath(jobId, names[t]) }, names[t])),
          h("td", null, badge(view.status[t])))));
        if (!slice.length) {
          tbody.appendChild(h("tr", null, h("td", { colspan: 3, class: "empty" }, "No task matches these filters.")));
        }
      });
      const first = rows.length ? table.page * TABLE_PAGE + 1 : 0;
      tableSummary.textContent = `${number(first)}–${number(table.page * TABLE_PAGE + slice.length)} of ${number(rows.length)}`;
      tablePrev.disabled = table.page === 0;
      tableNext.disabled = table.page >= pages - 1;
    }
    function refilter() {
      table.page = 0;
      tableRows = [];
      drawTable();
    }
    tableStatus.addEventListener("change", () => { table.status = tableStatus.value; refilter(); });
    tableName.addEventListener("input", debounce(() => { table.name = tableName.value.trim(); refilter(); }, 200));
    tablePrev.addEventListener("click", () => { table.page -= 1; tableRows = []; drawTable(); });
    tableNext.addEventListener("click", () => { table.page += 1; tableRows = []; drawTable(); });
    function showCluster(id) {
      table.cluster = id;
      const node = view.model.nodes[id];
      clusterChip.replaceChildren(
        `Showing the ${number(node.tasks.length)} tasks of the selected cluster (${node.span[0] === node.span[1] ? `layer ${node.span[0] + 1}` : `layers ${node.span[0] + 1}–${node.span[1] + 1}`}). `,
        h("button", {
          type: "button", class: "secondary",
          on: { click: () => { table.cluster = null; clusterChip.replaceChildren(); refilter(); } },
        }, "Show all tasks"));
      refilter();
      tasksSection.scrollIntoView({ block: "start" });
      tableStatus.focus({ preventScroll: true });
    }

    // -- in-error tasks ------------------------------------------------------------------------
    const inErrorSection = h("section", { class: "card attention", hidden: true });
    let inErrorKey = "";
    function drawInError() {
      const tasks = [];
      for (let t = 0; t < names.length && tasks.length < 100; t += 1) {
        if (view.status[t] === "IN_ERROR") tasks.push(t);
      }
      const key = tasks.join(",");
      if (key === inErrorKey) return;
      inErrorKey = key;
      inErrorSection.hidden = !tasks.length;
      keepFocus(inErrorSection, () => {
        inErrorSection.replaceChildren(
          h("h2", null, "Tasks in error"),
          h("p", null, "These tasks failed and wait for you: restart them, or mark them finished so their dependents run."),
          h("ul", { class: "in-error" }, tasks.map((t) => {
            const name = names[t];
            const path = `${base}/tasks/${encodeURIComponent(name)}`;
            return h("li", null,
              h("a", { href: taskPath(jobId, name) }, name), " ",
              h("button", {
                type: "button", class: "secondary", "data-key": `restart-${t}`,
                on: { click: () => act("Restart", () => put(`${path}/restartInErrorTask`), { confirm: `Restart task ${name}?`, body: "It runs again with a fresh budget of attempts." }) },
              }, "Restart"), " ",
              h("button", {
                type: "button", class: "secondary", "data-key": `finish-${t}`,
                on: { click: () => act("Mark finished", () => put(`${path}/finishInErrorTask`), { confirm: `Mark task ${name} finished?`, body: "It will not run again; its dependents start." }) },
              }, "Mark finished"));
          })));
      });
    }

    // -- layout of the page -------------------------------------------------------------------
    drawHeader();
    body.replaceChildren(
      h("div", { class: "job-head" }, statusSlot, metaSlot),
      actions,
      problems,
      h("div", { class: "grid-2" },
        h("section", { class: "card" }, h("h2", null, "Task counts"), counts),
        h("section", { class: "card" }, h("h2", null, "Timings"), timings)),
      inErrorSection,
      h("section", { class: "card", id: "graph" },
        h("div", { class: "section-head" }, h("h2", null, "Graph"), graphTools),
        note,
        legend,
        graphBox),
      tasksSection,
      h("div", { class: "grid-2" },
        keyValues("Variables", job.variables, "This job has no variables."),
        keyValues("Generic information", job.genericInformation, "None.")),
      h("p", { class: "links" },
        h("a", { href: `${base}/xml`, download: `job-${jobId}.xml` }, "Download the workflow (XML)"), " · ",
        h("a", { href: `${base}/result/log/all`, download: `job-${jobId}-output.txt` }, "Download all output")));

    view = renderGraph(graphBox, jobId, data, { onCluster: showCluster });
    if (view.model.note) {
      note.replaceChildren(
        h("strong", null, `This job has ${number(names.length)} tasks in ${number(view.model.layers)} layers.`),
        ` To stay legible, ${view.model.note}: ${number(view.model.nodes.length)} nodes are drawn. `,
        "Select a cluster (click, or Enter) to list its tasks in the table below.");
    } else {
      note.remove();
    }
    zoomText.textContent = `${Math.round(view.scale() * 100)}%`;
    drawTable();
    drawInError();

    watcher = watchJob(jobId, data.statuses, (update) => {
      const start = performance.now();
      job = update.job;
      drawHeader();
      if (update.changes.length) {
        view.update(update.changes);
        drawTable();
        drawInError();
      }
      performance.measure("live-update", { start }); // read by the benchmark
    }, (error) => problems.replaceChildren(errorBox(error)), data);
  }

  return () => {
    stopped = true;
    if (watcher) watcher.stop();
  };
}

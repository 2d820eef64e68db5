// One task: status and why, exit code or signal, times, attempts, actions, and its
// stdout and stderr per attempt, followed live by byte offset (never the whole file at
// once: a page shows at most the last TAIL bytes and offers the download for the rest).

import { DATA, REST, ApiError, jobPath, put, request } from "../api.js";
import { announce, fill, h } from "../dom.js";
import { badge, bytes, elapsed, number, time } from "../format.js";
import { watchTask } from "../live.js";
import { confirmDialog, errorBox, facts, setTitle } from "../ui.js";

/** Bytes of a log shown at first, and kept in the page at most (older text is dropped). */
const TAIL = 1024 * 1024;
const KEEP_CHARS = 2 * 1024 * 1024;
const CHUNK = 256 * 1024;

/** One <pre> following one attempt's stdout or stderr. */
class LogPane {
  constructor(base, stream) {
    this.base = base;
    this.stream = stream;
    this.pre = h("pre", { class: "log", tabindex: "0", "aria-label": `${stream} of the selected attempt` });
    this.note = h("p", { class: "muted log-note" });
    this.download = h("a", { class: "download" }, `Download ${stream}`);
    this.follow = h("input", { type: "checkbox", id: `follow-${stream}`, checked: true });
    this.element = h("section", { class: "log-pane" },
      h("div", { class: "section-head" },
        h("h3", null, stream),
        h("span", { class: "log-tools" },
          h("span", { class: "check" }, this.follow, h("label", { for: `follow-${stream}` }, "Follow")),
          this.download)),
      this.note,
      this.pre);
    this.attempt = 0;
    this.busy = false;
    this.reset(0);
  }

  reset(attempt) {
    this.attempt = attempt;
    this.offset = 0;
    this.chars = 0;
    this.started = false;
    this.target = 0;
    this.decoder = new TextDecoder("utf-8");
    this.pre.replaceChildren();
    this.note.textContent = "";
    this.download.setAttribute("href", `${this.base}/attempts/${attempt}/${this.stream}?download=1`);
    this.download.setAttribute("download", "");
  }

  append(text) {
    if (!text) return;
    const atBottom = this.pre.scrollTop + this.pre.clientHeight >= this.pre.scrollHeight - 4;
    this.pre.appendChild(document.createTextNode(text));
    this.chars += text.length;
    while (this.chars > KEEP_CHARS && this.pre.firstChild) {
      this.chars -= this.pre.firstChild.textContent.length;
      this.pre.firstChild.remove();
      this.note.textContent = "Earlier output is no longer shown here: download the log for all of it.";
    }
    if (this.follow.checked || atBottom) this.pre.scrollTop = this.pre.scrollHeight;
  }

  /** Read what is new up to `size` (from the task poll), at most TAIL bytes per step. */
  async catchUp(size) {
    this.target = Math.max(this.target || 0, size);
    if (this.busy || !this.attempt) return;
    this.busy = true;
    try {
      while (this.offset < this.target) {
        const target = this.target;
        if (!this.started) {
          this.started = true;
          if (target > TAIL) {
            this.offset = target - TAIL;
            this.note.textContent = `Showing the last ${bytes(TAIL)} of ${bytes(target)}: download the log for all of it.`;
          }
        } else if (target - this.offset > TAIL) {
          this.append(`\n[… ${bytes(target - TAIL - this.offset)} skipped: download the log for all of it …]\n`);
          this.decoder = new TextDecoder("utf-8");
          this.offset = target - TAIL;
        }
        const attempt = this.attempt;
        const response = await request("GET", `${this.base}/attempts/${attempt}/${this.stream}`, {
          query: { offset: this.offset, limit: CHUNK }, as: "response",
        });
        const data = new Uint8Array(await response.arrayBuffer());
        if (attempt !== this.attempt) continue; // another attempt was chosen: start over
        const next = Number(response.headers.get("X-Next-Offset"));
        this.append(this.decoder.decode(data, { stream: true }));
        if (!data.length || !(next > this.offset)) break;
        this.offset = next;
      }
    } finally {
      this.busy = false;
    }
  }
}

export function taskView(main, jobId, taskName) {
  setTitle(`Task ${taskName}`);
  const jobCrumb = h("a", { href: jobPath(jobId) }, `Job ${jobId}`);
  const heading = h("h1", null, taskName);
  const body = h("div", { class: "task" }, h("p", { class: "muted" }, "Loading…"));
  main.replaceChildren(
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" },
      h("a", { href: "/jobs" }, "Jobs"), " › ", jobCrumb, " › ",
      h("span", { "aria-current": "page" }, taskName)),
    heading,
    body);

  const dataBase = `${DATA}/jobs/${encodeURIComponent(jobId)}/tasks/${encodeURIComponent(taskName)}`;
  const restBase = `${REST}/jobs/${encodeURIComponent(jobId)}/tasks/${encodeURIComponent(taskName)}`;
  const problems = h("div", { "aria-live": "assertive" });
  const statusSlot = h("div", { class: "job-head" });
  const details = h("div");
  const actions = h("div", { class: "actions", role: "toolbar", "aria-label": "Task actions" });
  const attemptSelect = h("select", { id: "attempt" });
  const attemptNote = h("span", { class: "muted" });
  const panes = { stdout: new LogPane(dataBase, "stdout"), stderr: new LogPane(dataBase, "stderr") };
  let chosen = 0; // 0: follow the latest attempt
  let last = null;
  let drawn = false;
  let watcher = null;

  async function act(label, path, question, text) {
    if (!(await confirmDialog({ title: question, body: text, confirm: label, danger: label === "Kill" }))) return;
    problems.replaceChildren();
    try {
      await put(`${restBase}/${path}`);
      announce(`${label}: done`);
      if (watcher) watcher.refresh();
    } catch (error) {
      problems.replaceChildren(errorBox(error));
    }
  }
  const buttons = {
    kill: h("button", { type: "button", class: "danger", "data-key": "kill" }, "Kill"),
    restart: h("button", { type: "button", class: "secondary", "data-key": "restart" }, "Restart"),
    restartInError: h("button", { type: "button", class: "secondary", "data-key": "restart-in-error" }, "Restart (in error)"),
    finishInError: h("button", { type: "button", class: "secondary", "data-key": "finish-in-error" }, "Mark finished (in error)"),
  };
  buttons.kill.addEventListener("click", () => act("Kill", "kill", `Kill task ${taskName}?`,
    "Its process group is stopped; the task counts as failed and is not retried."));
  buttons.restart.addEventListener("click", () => act("Restart", "restart", `Restart task ${taskName}?`,
    "Its process is killed and the task runs again a few seconds later."));
  buttons.restartInError.addEventListener("click", () => act("Restart", "restartInErrorTask",
    `Restart task ${taskName}?`, "It runs again with a fresh budget of attempts."));
  buttons.finishInError.addEventListener("click", () => act("Mark finished", "finishInErrorTask",
    `Mark task ${taskName} finished?`, "It will not run again; its dependents start."));
  actions.append(buttons.kill, buttons.restart, buttons.restartInError, buttons.finishInError);

  attemptSelect.addEventListener("change", () => {
    const value = Number(attemptSelect.value);
    const latest = last ? last.attempts.length : 0;
    chosen = value === latest ? 0 : value;
    for (const pane of Object.values(panes)) pane.reset(value);
    if (last) follow(last);
  });

  function selectedAttempt(state) {
    const latest = state.attempts.length;
    return chosen && chosen <= latest ? chosen : latest;
  }

  function drawAttempts(state) {
    const latest = state.attempts.length;
    const wanted = selectedAttempt(state);
    if (attemptSelect.options.length !== latest) {
      attemptSelect.replaceChildren(...state.attempts.map((a) =>
        h("option", { value: a.attempt }, a.attempt === latest ? `Attempt ${a.attempt} (latest)` : `Attempt ${a.attempt}`)));
    }
    attemptSelect.disabled = latest === 0;
    if (latest) attemptSelect.value = String(wanted);
    attemptNote.textContent = latest ? "" : "The task has not run yet: no output.";
    for (const pane of Object.values(panes)) {
      if (pane.attempt !== wanted) pane.reset(wanted);
      pane.download.hidden = latest === 0;
    }
  }

  function follow(state) {
    const wanted = selectedAttempt(state);
    const sizes = state.attempts[wanted - 1];
    if (!sizes) return;
    for (const [stream, pane] of Object.entries(panes)) {
      pane.catchUp(sizes[stream]).catch((error) => problems.replaceChildren(errorBox(error)));
    }
  }

  function draw(state) {
    const { task } = state;
    const info = task.taskInfo;
    const st = info.taskStatus;
    jobCrumb.textContent = `${info.jobId.readableName} (job ${jobId})`;
    setTitle(`${taskName} · ${info.jobId.readableName}`);
    fill(statusSlot, badge(st),
      info.statusReason ? h("p", { class: "reason" }, h("strong", null, "Reason: "), info.statusReason) : null);
    const attempts = state.attempts.length;
    let exit = "—";
    if (info.exitSignal !== null && info.exitSignal !== undefined) exit = `killed by signal ${info.exitSignal}`;
    else if (info.exitCode !== null && info.exitCode !== undefined) exit = `exit code ${info.exitCode}`;
    details.replaceChildren(facts([
      ["Status", badge(st)],
      ["Exit", exit],
      ["Scheduled", time(info.scheduledTime)],
      ["Started", time(info.startTime)],
      ["Finished", time(info.finishedTime)],
      ["Duration", elapsed(info.startTime, info.finishedTime)],
      ["Attempts", `${number(attempts)} of ${number(task.maxNumberOfExecution)}`],
      ["Attempts left", number(info.numberOfExecutionLeft)],
      ["On error", task.onTaskErrorPolicy || "—"],
      ["Host", info.executionHostName || "—"],
    ]));
    buttons.kill.hidden = st !== "RUNNING";
    buttons.restart.hidden = st !== "RUNNING";
    buttons.restartInError.hidden = st !== "IN_ERROR";
    buttons.finishInError.hidden = st !== "IN_ERROR";
    actions.hidden = Object.values(buttons).every((b) => b.hidden);
    drawAttempts(state);
    if (!drawn) {
      drawn = true;
      body.replaceChildren(
        statusSlot,
        actions,
        problems,
        h("section", { class: "card" }, h("h2", null, "Details"), details),
        h("section", { class: "card logs" },
          h("div", { class: "section-head" },
            h("h2", null, "Output"),
            h("span", null,
              h("label", { for: "attempt" }, "Attempt "), attemptSelect, " ", attemptNote)),
          h("div", { class: "log-grid" }, panes.stdout.element, panes.stderr.element),
          h("p", { class: "links" },
            h("a", { href: `${restBase}/result/log/full?destination=file`, download: "" },
              "Download stdout and stderr of all attempts"))));
    }
    follow(state);
  }

  watcher = watchTask(jobId, taskName, (state) => {
    last = state;
    draw(state);
  }, (error) => {
    if (error instanceof ApiError && error.status === 404 && !drawn) {
      setTitle("Task not found");
      heading.textContent = "Task not found";
      body.replaceChildren(h("p", { class: "error", role: "alert" }, error.message),
        h("p", null, h("a", { href: jobPath(jobId) }, `Back to job ${jobId}`)));
    } else {
      problems.replaceChildren(errorBox(error));
    }
  });

  return () => watcher.stop();
}

// Where live updates come from. This is the only module that knows: a job's page
// follows the events WebSocket (/rest/scheduler/events, PROACTIVE.md 6.2; the session
// cookie authenticates it), the job list and a task's page poll the REST API (and the
// dashboard's compact status endpoint), and a job's page polls too when the socket cannot
// open or closes. The pages only see the callbacks.
//
// Callbacks receive:
// - watchJobs: a RestPage of UserJobData (the current page of the list);
// - watchJob:  {job: JobInfoData, changes: [[taskIndex, statusCode], ...]} where changes
//              are relative to the statuses the caller started from;
// - watchTask: {task: TaskStateData, attempts: [{attempt, stdout, stderr}]}.

import { DATA, get } from "./api.js";
import { TASK_ENDED, isJobAlive } from "./format.js";

const JOB_INTERVAL_MS = 1000;
/** Changes heard on the socket are drawn together, at most this often. */
const DRAW_EVERY_MS = 100;
const EVENTS = "/rest/scheduler/events";
const LIST_INTERVAL_MS = 2000;
const TASK_INTERVAL_MS = 1000;

/**
 * Run `step` now and again `interval` ms after each run ends (never overlapping), paused
 * while the tab is hidden. `step` returns false to stop. Returns {stop, refresh}.
 */
function poller(step, interval, onError) {
  let timer = null;
  let stopped = false;
  let running = false;
  let again = false;

  async function run() {
    timer = null;
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    if (document.hidden) return; // visibilitychange resumes
    running = true;
    let keepGoing = true;
    try {
      keepGoing = (await step()) !== false;
    } catch (error) {
      if (onError) onError(error);
      else console.warn("live update failed", error);
      if (error && error.status === 401) keepGoing = false;
      if (error && error.status === 404) keepGoing = false;
    }
    running = false;
    if (stopped || !keepGoing) return;
    if (again) {
      again = false;
      run();
    } else {
      timer = setTimeout(run, interval);
    }
  }

  function onVisibility() {
    if (!document.hidden && timer === null && !running && !stopped) run();
  }

  document.addEventListener("visibilitychange", onVisibility);
  run();
  return {
    stop() {
      stopped = true;
      if (timer !== null) clearTimeout(timer);
      document.removeEventListener("visibilitychange", onVisibility);
    },
    /** Poll now (after an action), instead of at the next tick. */
    refresh() {
      if (stopped) return;
      if (timer !== null) clearTimeout(timer);
      run();
    },
  };
}

export function watchJobs(query, onPage, onError) {
  return poller(async () => {
    onPage(await get(`${DATA}/jobs`, { query }));
  }, LIST_INTERVAL_MS, onError);
}

/** Changed positions of `next` against `known` (two status strings), as [index, code]. */
function diff(known, next) {
  const changes = [];
  const n = Math.min(next.length, known.length);
  for (let i = 0; i < n; i += 1) {
    if (next.charCodeAt(i) !== known.charCodeAt(i)) changes.push([i, next[i]]);
  }
  return changes;
}

/**
 * Follow one job from the statuses string the page drew (`statuses`, one code per task),
 * by polling its compact status. Stops by itself once the job has ended, no task runs,
 * and the final statuses were delivered.
 */
function pollJob(jobId, statuses, onUpdate, onError) {
  let known = statuses;
  let first = true;
  return poller(async () => {
    const body = await get(`${DATA}/jobs/${encodeURIComponent(jobId)}/live`);
    const next = body.statuses;
    let changes = [];
    if (typeof next === "string") {
      changes = diff(known, next);
      known = next;
    }
    onUpdate({ job: body.job, changes, first });
    first = false;
    // A killed job ends before its running tasks do (TERM, grace, KILL): keep following
    // until none is left running.
    return isJobAlive(body.job.status) || body.job.numberOfRunningTasks > 0;
  }, JOB_INTERVAL_MS, onError);
}

/**
 * Open the events WebSocket and subscribe to every event the session may see. Calls
 * `onReady()` once the server has answered the subscription, `onEvent(notification)`
 * for each event after it, and `onLost(wasReady)` once if it cannot open or closes.
 * Returns a function that closes it (without calling onLost).
 */
function subscribe(onReady, onEvent, onLost) {
  let ready = false;
  let over = false;
  const lost = () => {
    if (over) return;
    over = true;
    onLost(ready);
  };
  let socket;
  try {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(`${scheme}//${window.location.host}${EVENTS}`);
  } catch {
    queueMicrotask(lost);
    return () => {};
  }
  socket.addEventListener("open", () => {
    // The server keeps a user to their own jobs whatever this says; an admin sees all.
    socket.send(JSON.stringify({ myEventsOnly: false, events: [] }));
  });
  socket.addEventListener("message", (message) => {
    if (message.data === "X") return; // heartbeat
    let event;
    try {
      event = JSON.parse(message.data);
    } catch {
      return;
    }
    if (!ready) {
      ready = true; // the NONE reply: subscribed from here on
      onReady();
    } else if (event && event.data) {
      onEvent(event);
    }
  });
  socket.addEventListener("close", lost);
  return () => {
    over = true;
    socket.close();
  };
}

/**
 * Follow one job: its JOB_STATE_UPDATED events bring its info, its TASK_STATE_UPDATED
 * events the tasks' statuses (and the counters, moved by `graph.counters`), drawn every
 * DRAW_EVERY_MS at most. Once subscribed, the job's state is read once: every change
 * after that read is in the stream, in order, and events heard meanwhile are applied on
 * top of it. Without the socket, polls (`pollJob`). Stops once the job has ended and no
 * task runs. `graph`: the graph answer ({codes, counters}).
 */
export function watchJob(jobId, statuses, onUpdate, onError, graph) {
  const id = Number(jobId);
  const codeOf = {};
  for (const [code, status] of Object.entries(graph.codes)) codeOf[status] = code;
  let known = statuses;
  let job = null;
  let first = true;
  let held = []; // events heard before the first read returned
  let changes = [];
  let drawTimer = null;
  let stopped = false;
  let polling = null;
  let close = () => {};

  function draw() {
    drawTimer = null;
    if (stopped || job === null) return;
    const batch = changes;
    changes = [];
    onUpdate({ job, changes: batch, first });
    first = false;
    if (!isJobAlive(job.status) && job.numberOfRunningTasks === 0) finish();
  }

  function schedule() {
    if (drawTimer === null) drawTimer = setTimeout(draw, first ? 0 : DRAW_EVERY_MS);
  }

  function count(code, delta) {
    for (const field of graph.counters[code] || []) job[field] += delta;
  }

  function apply(event) {
    const data = event.data;
    if (!data.jobId || data.jobId.id !== id) return;
    if (event.action === "JOB_STATE_UPDATED") {
      job = { ...data }; // JobInfoData: the status and every counter
    } else if (event.action === "TASK_STATE_UPDATED" && data.taskId) {
      const index = data.taskId.id;
      const code = codeOf[data.taskStatus];
      if (code === undefined || index < 0 || index >= known.length) return;
      const old = known[index];
      if (old === code) return;
      known = known.slice(0, index) + code + known.slice(index + 1);
      count(old, -1);
      count(code, 1);
      changes.push([index, code]);
    } else {
      return;
    }
    schedule();
  }

  async function read() {
    const body = await get(`${DATA}/jobs/${encodeURIComponent(jobId)}/live`);
    if (stopped) return;
    job = { ...body.job };
    if (typeof body.statuses === "string") {
      changes.push(...diff(known, body.statuses));
      known = body.statuses;
    }
    const heard = held || [];
    if (held !== null && first) performance.mark("live-events"); // following the socket (tests)
    held = null;
    for (const event of heard) apply(event);
    schedule();
  }

  function fallBack() {
    if (stopped || polling) return;
    close();
    performance.mark("live-polling");
    polling = pollJob(jobId, known, onUpdate, onError);
  }

  function finish() {
    stopped = true;
    close();
    if (drawTimer !== null) clearTimeout(drawTimer);
  }

  close = subscribe(
    () => read().catch((error) => {
      onError(error);
      fallBack();
    }),
    (event) => (held ? held.push(event) : apply(event)),
    () => fallBack(),
  );
  return {
    stop() {
      if (polling) polling.stop();
      finish();
    },
    /** Read the state now (after an action). Events heard while the read is out are
     * held and applied on top of its answer, as for the first read: applied at once, they
     * would be undone by an answer made before them (a task shown RUNNING for good). */
    refresh() {
      if (polling) polling.refresh();
      else if (!stopped && held === null) {
        held = [];
        read().catch((error) => {
          const heard = held || [];
          held = null;
          for (const event of heard) apply(event);
          onError(error);
        });
      }
    },
  };
}

export function watchTask(jobId, taskName, onUpdate, onError) {
  const path = `${DATA}/jobs/${encodeURIComponent(jobId)}/tasks/${encodeURIComponent(taskName)}`;
  return poller(async () => {
    const body = await get(path);
    onUpdate(body);
    // An ended task changes no more unless someone restarts it; an IN_ERROR one waits.
    return !TASK_ENDED.includes(body.task.taskInfo.taskStatus);
  }, TASK_INTERVAL_MS, onError);
}

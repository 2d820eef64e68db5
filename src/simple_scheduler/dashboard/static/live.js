// Where live updates come from. This is the only module that knows: today it polls the
// REST API (and the dashboard's compact status endpoint); when the events WebSocket
// (/rest/scheduler/events, PROACTIVE.md 6.2) lands, its JOB_STATE_UPDATED and
// TASK_STATE_UPDATED notifications replace the loops below, and the pages, which only
// see the callbacks, do not change.
//
// Callbacks receive:
// - watchJobs: a RestPage of UserJobData (the current page of the list);
// - watchJob:  {job: JobInfoData, changes: [[taskIndex, statusCode], ...]} where changes
//              are relative to the statuses the caller started from;
// - watchTask: {task: TaskStateData, attempts: [{attempt, stdout, stderr}]}.

import { DATA, get } from "./api.js";
import { TASK_ENDED, isJobAlive } from "./format.js";

const JOB_INTERVAL_MS = 1000;
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

/**
 * Follow one job from the statuses string the page drew (`statuses`, one code per task).
 * Stops by itself once the job has ended, no task runs, and the final statuses were
 * delivered.
 */
export function watchJob(jobId, statuses, onUpdate, onError) {
  let known = statuses;
  let first = true;
  return poller(async () => {
    const body = await get(`${DATA}/jobs/${encodeURIComponent(jobId)}/live`);
    const next = body.statuses;
    const changes = [];
    if (typeof next === "string") {
      const n = Math.min(next.length, known.length);
      for (let i = 0; i < n; i += 1) {
        if (next.charCodeAt(i) !== known.charCodeAt(i)) changes.push([i, next[i]]);
      }
      known = next;
    }
    onUpdate({ job: body.job, changes, first });
    first = false;
    // A killed job ends before its running tasks do (TERM, grace, KILL): keep following
    // until none is left running.
    return isJobAlive(body.job.status) || body.job.numberOfRunningTasks > 0;
  }, JOB_INTERVAL_MS, onError);
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

// Status names shown as words and a symbol (never colour alone), and times in the
// browser's own locale and time zone.

import { h } from "./dom.js";

/** ProActive's display texts (PROACTIVE.md section 2), with a symbol each. */
const TASK_STATUS = {
  SUBMITTED: ["Submitted", "○"],
  PENDING: ["Pending", "…"],
  PAUSED: ["Paused", "‖"],
  RUNNING: ["Running", "▶"],
  WAITING_ON_ERROR: ["Faulty, will retry", "↻"],
  WAITING_ON_FAILURE: ["Lost, will retry", "↻"],
  IN_ERROR: ["In error", "⚠"],
  FINISHED: ["Finished", "✓"],
  FAULTY: ["Faulty", "✗"],
  FAILED: ["Failed", "✗"],
  ABORTED: ["Aborted", "■"],
  NOT_STARTED: ["Not started", "–"],
  NOT_RESTARTED: ["Not restarted", "–"],
  SKIPPED: ["Skipped", "»"],
};

const JOB_STATUS = {
  PENDING: ["Pending", "…"],
  RUNNING: ["Running", "▶"],
  STALLED: ["Stalled", "◌"],
  PAUSED: ["Paused", "‖"],
  IN_ERROR: ["In error", "⚠"],
  FINISHED: ["Finished", "✓"],
  CANCELED: ["Canceled", "✗"],
  FAILED: ["Failed", "✗"],
  KILLED: ["Killed", "■"],
};

export const JOB_STATUSES = Object.keys(JOB_STATUS);
export const TASK_STATUSES = Object.keys(TASK_STATUS);
export const JOB_ALIVE = ["PENDING", "RUNNING", "STALLED", "PAUSED", "IN_ERROR"];
export const TASK_ENDED = [
  "FINISHED", "FAULTY", "FAILED", "ABORTED", "NOT_STARTED", "NOT_RESTARTED", "SKIPPED",
];

export function isJobAlive(status) {
  return JOB_ALIVE.includes(status);
}

export function taskStatusText(status) {
  return (TASK_STATUS[status] || [status, "?"])[0];
}

export function taskStatusSymbol(status) {
  return (TASK_STATUS[status] || [status, "?"])[1];
}

export function jobStatusText(status) {
  return (JOB_STATUS[status] || [status, "?"])[0];
}

/** A coloured badge that also says the status in words. */
export function badge(status, kind = "task") {
  const [text, symbol] = (kind === "job" ? JOB_STATUS : TASK_STATUS)[status] || [status, "?"];
  return h("span", { class: `badge st-${status}` },
    h("span", { class: "symbol", "aria-hidden": "true" }, symbol), " ", text);
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
const numbers = new Intl.NumberFormat();

export function number(value) {
  return numbers.format(value);
}

/** A <time> element in the browser's locale; ProActive's -1 means "not yet". */
export function time(ms) {
  if (typeof ms !== "number" || ms <= 0) return h("span", { class: "muted" }, "—");
  const date = new Date(ms);
  return h("time", { datetime: date.toISOString() }, dateTime.format(date));
}

export function duration(ms) {
  if (typeof ms !== "number" || ms < 0) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  let seconds = Math.round(ms / 1000);
  const days = Math.floor(seconds / 86400);
  seconds -= days * 86400;
  const hours = Math.floor(seconds / 3600);
  seconds -= hours * 3600;
  const minutes = Math.floor(seconds / 60);
  seconds -= minutes * 60;
  const parts = [];
  if (days) parts.push(`${days} d`);
  if (hours) parts.push(`${hours} h`);
  if (minutes) parts.push(`${minutes} min`);
  if (seconds || !parts.length) parts.push(`${seconds} s`);
  return parts.slice(0, 2).join(" ");
}

/** How long something took, or has taken so far if it is still going. */
export function elapsed(start, end) {
  if (typeof start !== "number" || start <= 0) return "—";
  const stop = typeof end === "number" && end > 0 ? end : Date.now();
  return duration(stop - start);
}

export function bytes(size) {
  if (size < 1024) return `${size} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = size / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

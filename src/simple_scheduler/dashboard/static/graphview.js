// The task graph as SVG, and its live updates. A task node is a link to the task's page
// (focusable, Enter opens it); a cluster is a button that lists its tasks in the table.
// Updates touch only the nodes whose tasks changed: a class and a text per task node,
// the status bar of a cluster.

import { taskPath } from "./api.js";
import { NODE_H, NODE_W, layout } from "./graph.js";
import { s } from "./dom.js";
import { number, taskStatusSymbol, taskStatusText } from "./format.js";

const NAME_CHARS = 22;
/** Nodes attached per task after the first paint. */
const REST_CHUNK = 300;
/** Which status a mixed cluster is coloured by: what needs attention first. */
const PRECEDENCE = [
  "IN_ERROR", "RUNNING", "WAITING_ON_ERROR", "WAITING_ON_FAILURE", "FAULTY", "FAILED",
  "PENDING", "SUBMITTED", "PAUSED", "ABORTED", "NOT_RESTARTED", "NOT_STARTED", "SKIPPED",
  "FINISHED",
];

function short(name) {
  return name.length > NAME_CHARS ? `${name.slice(0, NAME_CHARS - 1)}…` : name;
}

function clusterStatus(counts) {
  let only = null;
  let kinds = 0;
  for (const [status, count] of counts) {
    if (count > 0) {
      kinds += 1;
      only = status;
    }
  }
  if (kinds === 1) return only;
  for (const status of PRECEDENCE) if ((counts.get(status) || 0) > 0) return status;
  return "SUBMITTED";
}

function countsText(counts) {
  return [...counts.entries()]
    .filter(([, count]) => count > 0)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 3)
    .map(([status, count]) => `${number(count)} ${taskStatusSymbol(status)}`)
    .join("  ");
}

function countsLabel(counts) {
  return [...counts.entries()]
    .filter(([, count]) => count > 0)
    .sort((a, b) => b[1] - a[1])
    .map(([status, count]) => `${number(count)} ${taskStatusText(status).toLowerCase()}`)
    .join(", ");
}

/**
 * Draw the graph of `data` (the server's graph answer) into `container`.
 * `onCluster(node)` is called when a cluster is activated. Returns the view:
 * {model, statusOf(task), update(changes), setScale(scale), fit(), describe()}.
 */
export function renderGraph(container, jobId, data, { onCluster }) {
  const { names, codes, edges } = data;
  const n = names.length;
  const status = new Array(n);
  for (let i = 0; i < n; i += 1) status[i] = codes[data.statuses[i]] || "SUBMITTED";

  const model = layout(n, edges);
  performance.mark("graph-laid-out");
  const { nodes, nodeOf } = model;
  const elements = new Array(nodes.length);
  const clusterCounts = new Array(nodes.length);

  function layerLabel(node) {
    const [first, last] = node.span;
    return first === last ? `layer ${first + 1}` : `layers ${first + 1}–${last + 1}`;
  }

  function taskNode(node) {
    const t = node.tasks[0];
    const st = status[t];
    const name = names[t];
    const stateText = s("text", { class: "state", x: 10, y: 37 },
      `${taskStatusSymbol(st)} ${taskStatusText(st)}`);
    const title = s("title", null, `${name} — ${taskStatusText(st)}`);
    const el = s("a", {
      class: `node st-${st}`,
      href: taskPath(jobId, name),
      transform: `translate(${node.x} ${node.y})`,
      "aria-label": `Task ${name}: ${taskStatusText(st)}`,
    },
    title,
    s("rect", { class: "box", width: NODE_W, height: NODE_H, rx: 6 }),
    s("text", { class: "name", x: 10, y: 19 }, short(name)),
    stateText);
    el.__state = stateText;
    el.__title = title;
    return el;
  }

  function clusterBar(counts, total) {
    const width = NODE_W - 20;
    const bar = [];
    let x = 10;
    for (const st of PRECEDENCE) {
      const count = counts.get(st) || 0;
      if (!count) continue;
      const w = (count / total) * width;
      bar.push(s("rect", { class: `seg st-${st}`, x: x.toFixed(2), y: 24, width: w.toFixed(2), height: 7 }));
      x += w;
    }
    return bar;
  }

  function clusterNode(id, node) {
    const counts = new Map();
    for (const t of node.tasks) counts.set(status[t], (counts.get(status[t]) || 0) + 1);
    clusterCounts[id] = counts;
    const el = s("g", {
      class: `node cluster st-${clusterStatus(counts)}`,
      transform: `translate(${node.x} ${node.y})`,
      tabindex: 0,
      role: "button",
    });
    el.addEventListener("click", () => onCluster(id));
    el.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        onCluster(id);
      }
    });
    drawCluster(id, el);
    return el;
  }

  function drawCluster(id, el) {
    const node = nodes[id];
    const counts = clusterCounts[id];
    const total = node.tasks.length;
    const label = `Cluster of ${number(total)} tasks, ${layerLabel(node)}: ${countsLabel(counts)}`;
    el.setAttribute("class", `node cluster st-${clusterStatus(counts)}`);
    el.setAttribute("aria-label", label);
    el.replaceChildren(
      s("title", null, label),
      s("rect", { class: "stack", x: 4, y: -4, width: NODE_W, height: NODE_H, rx: 6 }),
      s("rect", { class: "box", width: NODE_W, height: NODE_H, rx: 6 }),
      s("text", { class: "name", x: 10, y: 17 }, `${number(total)} tasks · ${layerLabel(node)}`),
      ...clusterBar(counts, total),
      s("text", { class: "state", x: 10, y: 43 }, countsText(counts)),
    );
  }

  // Nodes in document order: by column, then row (the keyboard's Tab order too).
  // Elements are built when attached (with the statuses of that moment).
  const order = nodes.map((_, id) => id).sort((a, b) => nodes[a].x - nodes[b].x || nodes[a].y - nodes[b].y);
  function build(id) {
    const el = nodes[id].cluster ? clusterNode(id, nodes[id]) : taskNode(nodes[id]);
    elements[id] = el;
    return el;
  }

  // A graph wider than the box starts scaled down to fit its width, but never below
  // half size, where names stop being readable.
  const boxWidth = container.clientWidth || model.width;
  let scale = model.width > boxWidth ? Math.max(0.5, boxWidth / model.width) : 1;

  // The columns that are on screen are attached first; the others follow in chunks
  // after that frame is painted, so a big graph shows up at once and fills in.
  const visibleWidth = boxWidth / scale + NODE_W + 64;
  let firstCount = order.findIndex((id) => nodes[id].x > visibleWidth);
  if (firstCount < 0) firstCount = order.length;
  const nodeLayer = s("g", { class: "nodes" });
  for (let i = 0; i < firstCount; i += 1) nodeLayer.appendChild(build(order[i]));
  const svg = s("svg", {
    class: "graph",
    viewBox: `0 0 ${model.width} ${model.height}`,
    width: model.width,
    height: model.height,
    role: "group",
    "aria-label": `Task graph: ${number(n)} tasks in ${model.layers} layers, drawn left to right`,
  },
  s("g", { class: "edges", "aria-hidden": "true" },
    s("path", { class: "edge", d: model.paths.single || "M0 0" }),
    s("path", { class: "edge bundle", d: model.paths.bundled || "M0 0" }),
    s("path", { class: "arrowhead", d: model.paths.heads || "M0 0" })),
  nodeLayer);
  container.replaceChildren(svg);
  setScale(scale);
  performance.mark("graph-inserted");

  function attachRest(from) {
    const end = Math.min(order.length, from + REST_CHUNK);
    const fragment = document.createDocumentFragment();
    for (let i = from; i < end; i += 1) fragment.appendChild(build(order[i]));
    nodeLayer.appendChild(fragment);
    if (end < order.length) setTimeout(() => attachRest(end), 0);
    else {
      performance.mark("graph-complete");
      container.dataset.complete = "true";
    }
  }
  // rAF runs just before the frame is painted; a task queued from it runs just after.
  requestAnimationFrame(() => setTimeout(() => {
    performance.mark("graph-painted");
    container.dataset.painted = "true";
    attachRest(firstCount);
  }, 0));

  function setScale(next) {
    scale = Math.min(2, Math.max(0.05, next));
    svg.setAttribute("width", String(Math.round(model.width * scale)));
    svg.setAttribute("height", String(Math.round(model.height * scale)));
    return scale;
  }

  function update(changes) {
    const dirty = new Set();
    for (const [task, code] of changes) {
      const next = codes[code] || "SUBMITTED";
      const previous = status[task];
      if (previous === next) continue;
      status[task] = next;
      const id = nodeOf[task];
      const node = nodes[id];
      if (!elements[id]) continue; // not built yet: it will be, with this status
      if (node.cluster) {
        const counts = clusterCounts[id];
        counts.set(previous, (counts.get(previous) || 1) - 1);
        counts.set(next, (counts.get(next) || 0) + 1);
        dirty.add(id);
      } else {
        const el = elements[id];
        const name = names[task];
        el.setAttribute("class", `node st-${next}`);
        el.setAttribute("aria-label", `Task ${name}: ${taskStatusText(next)}`);
        el.__state.textContent = `${taskStatusSymbol(next)} ${taskStatusText(next)}`;
        el.__title.textContent = `${name} — ${taskStatusText(next)}`;
      }
    }
    for (const id of dirty) drawCluster(id, elements[id]);
  }

  return {
    model,
    svg,
    status,
    update,
    setScale,
    scale: () => scale,
    fit() {
      const width = container.clientWidth || model.width;
      const height = Math.max(240, container.clientHeight || model.height);
      return setScale(Math.min(1, width / model.width, height / model.height));
    },
  };
}

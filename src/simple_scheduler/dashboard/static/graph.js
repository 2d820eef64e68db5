// Layered layout of a job's task graph, and the clustering that keeps a 10,000-task job
// legible. Pure functions over arrays: no DOM here.
//
// 1. Layers: each task's longest path from a root (Kahn's order, O(V + E)); edges always
//    go from a lower layer to a higher one, drawn left to right.
// 2. Clustering, only when needed: a layer wider than WIDE_LAYER tasks is drawn as a few
//    clusters (tasks grouped by the nodes their parents are drawn in, the largest groups
//    kept, the rest in one "other" cluster); if the job still needs more than MAX_NODES
//    nodes or MAX_LAYERS columns, whole layers (or bands of consecutive layers) become
//    one cluster each. A cluster shows its size and a bar of its tasks' statuses.
// 3. Order within a layer: a few barycenter sweeps (down, then up) to reduce crossings.
// 4. Coordinates on a grid; edges as cubic curves, deduplicated between drawn nodes.

export const NODE_W = 176;
export const NODE_H = 48;
export const COL_GAP = 64;
export const ROW_GAP = 14;
export const MARGIN = 16;

export const WIDE_LAYER = 40;
export const MAX_NODES = 1500;
export const MAX_LAYERS = 150;
const MAX_CLUSTERS_PER_LAYER = 6;
const SWEEPS = 4;

/** Parents and children of each task as CSR arrays, from a flat [child, parent, ...] list. */
export function adjacency(n, edges) {
  const parentCount = new Int32Array(n + 1);
  const childCount = new Int32Array(n + 1);
  for (let i = 0; i < edges.length; i += 2) {
    parentCount[edges[i] + 1] += 1;
    childCount[edges[i + 1] + 1] += 1;
  }
  for (let i = 0; i < n; i += 1) {
    parentCount[i + 1] += parentCount[i];
    childCount[i + 1] += childCount[i];
  }
  const parents = new Int32Array(edges.length / 2);
  const children = new Int32Array(edges.length / 2);
  const pFill = parentCount.slice(0, n);
  const cFill = childCount.slice(0, n);
  for (let i = 0; i < edges.length; i += 2) {
    const child = edges[i];
    const parent = edges[i + 1];
    parents[pFill[child]++] = parent;
    children[cFill[parent]++] = child;
  }
  return { parentStart: parentCount, parents, childStart: childCount, children };
}

/** Longest-path layer of each task (the server guarantees the graph is acyclic). */
export function layering(n, adj) {
  const layer = new Int32Array(n);
  const indegree = new Int32Array(n);
  for (let t = 0; t < n; t += 1) indegree[t] = adj.parentStart[t + 1] - adj.parentStart[t];
  const queue = new Int32Array(n);
  let head = 0;
  let tail = 0;
  for (let t = 0; t < n; t += 1) if (indegree[t] === 0) queue[tail++] = t;
  while (head < tail) {
    const t = queue[head++];
    for (let k = adj.childStart[t]; k < adj.childStart[t + 1]; k += 1) {
      const c = adj.children[k];
      if (layer[t] + 1 > layer[c]) layer[c] = layer[t] + 1;
      indegree[c] -= 1;
      if (indegree[c] === 0) queue[tail++] = c;
    }
  }
  let depth = 0;
  for (let t = 0; t < n; t += 1) if (layer[t] + 1 > depth) depth = layer[t] + 1;
  const layers = Array.from({ length: depth }, () => []);
  for (let t = 0; t < n; t += 1) layers[layer[t]].push(t);
  return { layer, layers };
}

/**
 * Decide what is drawn: returns {nodeOf: Int32Array(task -> node), nodes: [{tasks, layer,
 * cluster}], note} where `note` says why clusters were made (null when none were).
 */
export function cluster(n, adj, layers) {
  const nodeOf = new Int32Array(n).fill(-1);
  const nodes = [];
  const maxWidth = layers.reduce((m, l) => Math.max(m, l.length), 0);

  // `layer`: the column drawn in; `span`: the task layers the node covers.
  function add(tasks, layer, isCluster, span = [layer, layer]) {
    const id = nodes.length;
    nodes.push({ tasks, layer, cluster: isCluster, span });
    for (const t of tasks) nodeOf[t] = id;
    return id;
  }

  if (n <= MAX_NODES && maxWidth <= WIDE_LAYER && layers.length <= MAX_LAYERS) {
    for (let l = 0; l < layers.length; l += 1) for (const t of layers[l]) add([t], l, false);
    return { nodeOf, nodes, note: null };
  }

  // Step A: split wide layers by where their parents are drawn (pointless when there
  // are too many columns anyway).
  let wideLayers = 0;
  for (let l = 0; l < (layers.length <= MAX_LAYERS ? layers.length : 0); l += 1) {
    const tasks = layers[l];
    if (tasks.length <= WIDE_LAYER) {
      for (const t of tasks) add([t], l, false);
      continue;
    }
    wideLayers += 1;
    const groups = new Map();
    for (const t of tasks) {
      const seen = [];
      for (let k = adj.parentStart[t]; k < adj.parentStart[t + 1]; k += 1) {
        const node = nodeOf[adj.parents[k]];
        if (!seen.includes(node)) seen.push(node);
        if (seen.length > 4) break; // many parents: group by the first few
      }
      seen.sort((a, b) => a - b);
      const key = seen.join(",");
      let group = groups.get(key);
      if (!group) groups.set(key, (group = []));
      group.push(t);
    }
    const sorted = [...groups.values()].sort((a, b) => b.length - a.length);
    const rest = [];
    let kept = 0;
    for (const group of sorted) {
      if (kept < MAX_CLUSTERS_PER_LAYER - 1 && group.length > 1) {
        add(group, l, true);
        kept += 1;
      } else {
        for (const t of group) rest.push(t); // no spread: groups reach 100,000 tasks
      }
    }
    if (rest.length) add(rest, l, rest.length > 1);
  }

  if (nodes.length && nodes.length <= MAX_NODES && layers.length <= MAX_LAYERS) {
    return {
      nodeOf,
      nodes,
      note: `${wideLayers} layer${wideLayers === 1 ? "" : "s"} wider than ${WIDE_LAYER} tasks ` +
        "drawn as clusters",
    };
  }

  // Step B: too many nodes or columns: one cluster per layer, or per band of layers.
  nodes.length = 0;
  nodeOf.fill(-1);
  const band = Math.max(1, Math.ceil(layers.length / MAX_LAYERS));
  for (let start = 0; start < layers.length; start += band) {
    const tasks = [];
    for (let l = start; l < Math.min(layers.length, start + band); l += 1) {
      for (const t of layers[l]) tasks.push(t);
    }
    add(tasks, start / band, tasks.length > 1, [start, Math.min(layers.length, start + band) - 1]);
  }
  const note = band === 1
    ? `each layer drawn as one cluster (${layers.length} layers)`
    : `every ${band} consecutive layers drawn as one cluster (${layers.length} layers)`;
  return { nodeOf, nodes, note };
}

/** Edges between drawn nodes, deduplicated: [{from, to, count}]. */
export function nodeEdges(edges, nodeOf, nodeCount) {
  const counts = new Map();
  for (let i = 0; i < edges.length; i += 2) {
    const from = nodeOf[edges[i + 1]];
    const to = nodeOf[edges[i]];
    if (from === to) continue;
    const key = from * nodeCount + to;
    counts.set(key, (counts.get(key) || 0) + 1);
  }
  const out = [];
  for (const [key, count] of counts) {
    out.push({ from: Math.floor(key / nodeCount), to: key % nodeCount, count });
  }
  return out;
}

/** Order nodes within their layers (barycenter sweeps) and give them coordinates. */
export function place(nodes, links) {
  const depth = nodes.reduce((m, node) => Math.max(m, node.layer + 1), 0);
  const columns = Array.from({ length: depth }, () => []);
  // Initial order: by first task index, which is document order.
  const byFirst = nodes.map((node, id) => [node.tasks[0], id]).sort((a, b) => a[0] - b[0]);
  for (const [, id] of byFirst) columns[nodes[id].layer].push(id);

  const ins = nodes.map(() => []);
  const outs = nodes.map(() => []);
  for (const link of links) {
    outs[link.from].push(link.to);
    ins[link.to].push(link.from);
  }
  const pos = new Float64Array(nodes.length);
  function settle(column) {
    const mid = (column.length - 1) / 2;
    column.forEach((id, i) => { pos[id] = i - mid; });
  }
  columns.forEach(settle);
  const key = new Float64Array(nodes.length);
  function sweep(column, neighbours) {
    for (const id of column) {
      const list = neighbours[id];
      if (!list.length) {
        key[id] = pos[id];
        continue;
      }
      let sum = 0;
      for (const other of list) sum += pos[other];
      key[id] = sum / list.length;
    }
    column.sort((a, b) => key[a] - key[b] || pos[a] - pos[b]);
    settle(column);
  }
  if (nodes.length <= 20000) {
    for (let round = 0; round < SWEEPS; round += 1) {
      for (let l = 1; l < depth; l += 1) sweep(columns[l], ins);
      for (let l = depth - 2; l >= 0; l -= 1) sweep(columns[l], outs);
    }
  }

  const tallest = columns.reduce((m, c) => Math.max(m, c.length), 0);
  const rowHeight = NODE_H + ROW_GAP;
  for (let l = 0; l < depth; l += 1) {
    const column = columns[l];
    const offset = (tallest - column.length) / 2;
    column.forEach((id, i) => {
      nodes[id].x = MARGIN + l * (NODE_W + COL_GAP);
      nodes[id].y = MARGIN + (offset + i) * rowHeight;
    });
  }
  return {
    width: MARGIN * 2 + Math.max(1, depth) * (NODE_W + COL_GAP) - COL_GAP,
    height: MARGIN * 2 + Math.max(1, tallest) * rowHeight - ROW_GAP,
    depth,
  };
}

/** SVG path data for the links: one string for single edges, one for bundles (edges
 * standing for several task edges), and one arrowhead per node that has parents. */
export function edgePaths(nodes, links) {
  const single = [];
  const bundled = [];
  const heads = new Set();
  for (const link of links) {
    const a = nodes[link.from];
    const b = nodes[link.to];
    const x1 = a.x + NODE_W;
    const y1 = a.y + NODE_H / 2;
    const x2 = b.x;
    const y2 = b.y + NODE_H / 2;
    const dx = Math.max(24, (x2 - x1) / 2);
    const d = `M${x1} ${y1}C${x1 + dx} ${y1} ${x2 - dx} ${y2} ${x2} ${y2}`;
    (link.count > 1 ? bundled : single).push(d);
    heads.add(link.to);
  }
  const arrows = [];
  for (const id of heads) {
    const x = nodes[id].x;
    const y = nodes[id].y + NODE_H / 2;
    arrows.push(`M${x - 7} ${y - 4}L${x} ${y}L${x - 7} ${y + 4}z`);
  }
  return { single: single.join(""), bundled: bundled.join(""), heads: arrows.join("") };
}

/** Everything the view needs, from the server's graph answer. */
export function layout(n, edges) {
  const adj = adjacency(n, edges);
  const { layers } = layering(n, adj);
  const { nodeOf, nodes, note } = cluster(n, adj, layers);
  const links = nodeEdges(edges, nodeOf, nodes.length);
  const size = place(nodes, links);
  return { nodes, nodeOf, links, note, layers: layers.length, ...size, paths: edgePaths(nodes, links) };
}

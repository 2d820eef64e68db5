// DOM construction without HTML parsing: every string becomes a text node or an
// attribute value, so user data (task names, variables, log text) can never turn into
// markup. Nothing in the dashboard assigns innerHTML/outerHTML or calls insertAdjacentHTML.

const SVG_NS = "http://www.w3.org/2000/svg";

function apply(el, props) {
  if (!props) return el;
  for (const [key, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "on") {
      for (const [event, handler] of Object.entries(value)) el.addEventListener(event, handler);
    } else if (key === "text") {
      el.textContent = String(value);
    } else if (key === "dataset") {
      for (const [k, v] of Object.entries(value)) el.dataset[k] = String(v);
    } else if (key === "value" && "value" in el) {
      el.value = String(value);
    } else if (key === "checked" || key === "selected" || key === "disabled") {
      el[key] = Boolean(value);
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
  return el;
}

/** An HTML element: h("a", {href: "/jobs/1"}, "Job ", 1). */
export function h(tag, props, ...children) {
  return append(apply(document.createElement(tag), props), children);
}

/** An SVG element, same calling convention as h(). */
export function s(tag, props, ...children) {
  return append(apply(document.createElementNS(SVG_NS, tag), props), children);
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

/** Replace an element's content with the given children. */
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** Politely tell assistive technology what just happened (the page's live region). */
export function announce(message) {
  const region = document.getElementById("announce");
  if (!region) return;
  region.textContent = "";
  // A fresh text node after a tick so the same message twice is announced twice.
  setTimeout(() => { region.textContent = message; }, 30);
}

// Small widgets shared by the pages: titles, errors, confirmation dialogs, focus keeping.

import { h } from "./dom.js";

export function setTitle(text) {
  document.title = text ? `${text} · simple-scheduler` : "simple-scheduler";
}

export function errorBox(error) {
  const message = error && error.message ? error.message : String(error);
  return h("div", { class: "error", role: "alert" }, message);
}

/** A modal confirmation (<dialog>: focus trapped, Escape cancels). Resolves to a boolean. */
export function confirmDialog({ title, body, confirm = "Confirm", danger = false }) {
  return new Promise((resolve) => {
    const titleId = `dlg-${Math.random().toString(36).slice(2)}`;
    const cancelButton = h("button", { type: "button", class: "secondary" }, "Cancel");
    const okButton = h("button", { type: "submit", class: danger ? "danger" : "primary" }, confirm);
    const dialog = h("dialog", { class: "confirm", "aria-labelledby": titleId },
      h("form", { method: "dialog" },
        h("h2", { id: titleId }, title),
        body ? h("p", null, body) : null,
        h("div", { class: "buttons" }, cancelButton, okButton)));
    let answered = false;
    function finish(value) {
      if (answered) return;
      answered = true;
      dialog.close();
      dialog.remove();
      resolve(value);
    }
    cancelButton.addEventListener("click", () => finish(false));
    dialog.addEventListener("cancel", () => finish(false));
    dialog.querySelector("form").addEventListener("submit", (event) => {
      event.preventDefault();
      finish(true);
    });
    document.body.appendChild(dialog);
    dialog.showModal();
    cancelButton.focus();
  });
}

/**
 * Run `change` (which rebuilds part of `container`) and give focus back to the element
 * with the same data-key or href if focus was inside: live updates must not throw a
 * keyboard user back to the top of the page.
 */
export function keepFocus(container, change) {
  const active = document.activeElement;
  let key = null;
  if (active && container.contains(active)) {
    key = active.getAttribute("data-key") || active.getAttribute("href");
  }
  change();
  if (key && !container.contains(document.activeElement)) {
    for (const el of container.querySelectorAll("[data-key], [href]")) {
      if (el.getAttribute("data-key") === key || el.getAttribute("href") === key) {
        el.focus();
        break;
      }
    }
  }
}

/** A definition list from [term, value] pairs; values may be nodes or text. */
export function facts(pairs, className = "facts") {
  return h("dl", { class: className },
    pairs.filter(Boolean).map(([term, value]) => h("div", null, h("dt", null, term), h("dd", null, value))));
}

/** Debounce for inputs that trigger requests. */
export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

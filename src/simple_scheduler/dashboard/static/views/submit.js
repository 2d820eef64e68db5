// Submit a workflow: pick an XML or zip file, see its variables as a form (inputs chosen
// and checked by their models), see every problem with its task and line, and only then
// submit through the REST API. Nothing is stored until "Submit" succeeds.

import { DATA, REST, post, jobPath } from "../api.js";
import { announce, fill, h } from "../dom.js";
import { checkModel, listChoices, parseModel } from "../models.js";
import { navigate } from "../nav.js";
import { debounce, errorBox, setTitle } from "../ui.js";

function where(problem) {
  const parts = [];
  if (problem.line !== null && problem.line !== undefined) parts.push(`line ${problem.line}`);
  if (problem.task) parts.push(`task ${problem.task}`);
  return parts.length ? `${parts.join(", ")}: ` : "";
}

function modelHint(model) {
  const parsed = parseModel(model);
  if (!parsed) return model ? `model ${model}` : "";
  const labels = {
    INTEGER: "a whole number", LONG: "a whole number", FLOAT: "a number", DOUBLE: "a number",
    BOOLEAN: "true or false", NOT_EMPTY_STRING: "not empty", LIST: "one of the choices",
    REGEXP: "text matching a pattern",
  };
  const label = labels[parsed.kind];
  return label ? `${label}${parsed.rest && parsed.kind !== "LIST" ? ` ${parsed.rest}` : ""}` : `model ${model}`;
}

export function submitView(main) {
  setTitle("Submit a job");
  const fileInput = h("input", {
    id: "workflow-file", name: "file", type: "file", accept: ".xml,.zip,application/xml,text/xml,application/zip",
    "aria-describedby": "workflow-help",
  });
  const summary = h("div", { class: "summary-box", "aria-live": "polite" });
  const problemsBox = h("div", { id: "problems" });
  const fields = h("div", { class: "variables" });
  const submitButton = h("button", { type: "submit", class: "primary", disabled: true }, "Submit");
  const submitStatus = h("div", { "aria-live": "assertive" });
  const form = h("form", { class: "submit card", novalidate: true },
    h("label", { for: "workflow-file" }, "Workflow file"),
    fileInput,
    h("p", { id: "workflow-help", class: "muted" },
      "A ProActive job descriptor (XML), or a zip archive holding one. It is checked here first; nothing is stored until you submit."),
    summary,
    problemsBox,
    fields,
    h("div", { class: "buttons" }, submitButton),
    submitStatus);
  main.replaceChildren(h("h1", null, "Submit a job"), form);

  let file = null;
  let inputs = new Map(); // name -> {input, error, variable}
  let sequence = 0;
  let lastResult = null;
  let checking = false;

  function values() {
    const out = {};
    for (const [name, entry] of inputs) out[name] = entry.input.value;
    return out;
  }

  function localErrors() {
    let bad = 0;
    for (const entry of inputs.values()) {
      const why = entry.variable.model ? checkModel(entry.variable.model, entry.input.value) : null;
      if (why) bad += 1;
      showError(entry, why ? `${entry.variable.name}: ${why}` : entry.serverError);
    }
    return bad;
  }

  function showError(entry, message) {
    entry.error.textContent = message || "";
    entry.error.hidden = !message;
    if (message) entry.input.setAttribute("aria-invalid", "true");
    else entry.input.removeAttribute("aria-invalid");
  }

  function updateButton() {
    const bad = localErrors(); // also marks each field
    submitButton.disabled = !(lastResult && lastResult.valid && !checking && bad === 0);
  }

  function drawProblems(result) {
    if (!result.problems.length && !result.warnings.length) {
      problemsBox.replaceChildren();
      return;
    }
    fill(problemsBox,
      result.problems.length
        ? h("section", { class: "error", role: "alert" },
          h("h2", null, result.problems.length === 1 ? "1 problem" : `${result.problems.length} problems`),
          h("ul", null, result.problems.map((p) => h("li", null, h("strong", null, where(p)), p.message))))
        : null,
      result.warnings.length
        ? h("section", { class: "notice" },
          h("h2", null, "Accepted, but ignored here"),
          h("ul", null, result.warnings.map((w) => h("li", null, w))))
        : null);
  }

  function variableField(variable) {
    const id = `var-${inputs.size}`;
    const describedBy = [];
    let input;
    const choices = listChoices(variable.model);
    const parsed = parseModel(variable.model);
    if (choices) {
      input = h("select", { id, name: variable.name },
        choices.map((c) => h("option", { value: c }, c)));
      if (!choices.includes(variable.value)) input.appendChild(h("option", { value: variable.value }, variable.value));
      input.value = variable.value;
    } else if (parsed && parsed.kind === "BOOLEAN") {
      input = h("select", { id, name: variable.name },
        h("option", { value: "true" }, "true"), h("option", { value: "false" }, "false"));
      input.value = variable.value.trim().toLowerCase() === "true" ? "true" : "false";
    } else {
      input = h("input", { id, name: variable.name, type: "text", value: variable.value, autocomplete: "off", spellcheck: "false" });
      if (parsed && ["INTEGER", "LONG", "FLOAT", "DOUBLE"].includes(parsed.kind)) input.setAttribute("inputmode", "decimal");
    }
    const hint = modelHint(variable.model);
    const help = h("p", { class: "muted", id: `${id}-help` },
      variable.description || null, variable.description && hint ? " · " : null, hint || null);
    if (variable.description || hint) describedBy.push(help.id);
    const error = h("p", { class: "field-error", id: `${id}-error`, hidden: true });
    describedBy.push(error.id);
    input.setAttribute("aria-describedby", describedBy.join(" "));
    const entry = { input, error, variable, serverError: variable.error ? `${variable.name}: ${variable.error}` : null };
    inputs.set(variable.name, entry);
    input.addEventListener("input", () => { updateButton(); recheck(); });
    input.addEventListener("change", () => { updateButton(); recheck(); });
    return h("div", { class: "field" }, h("label", { for: id }, variable.name), input, help, error);
  }

  function drawFields(result) {
    inputs = new Map();
    const visible = result.variables.filter((v) => !v.hidden);
    if (!visible.length) {
      fill(fields, result.valid || result.name ? h("p", { class: "muted" }, "This workflow has no variables to set.") : null);
      return;
    }
    const groups = new Map();
    for (const variable of visible) {
      const key = variable.advanced ? "\u0000advanced" : variable.group || "";
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(variable);
    }
    const parts = [];
    for (const [key, list] of groups) {
      if (key === "\u0000advanced") continue;
      parts.push(h("fieldset", null, h("legend", null, key || "Variables"), list.map(variableField)));
    }
    const advanced = groups.get("\u0000advanced");
    if (advanced) {
      parts.push(h("details", null, h("summary", null, `Advanced variables (${advanced.length})`),
        h("fieldset", null, h("legend", { class: "visually-hidden" }, "Advanced variables"), advanced.map(variableField))));
    }
    fields.replaceChildren(...parts);
  }

  async function inspect(first) {
    if (!file) return;
    const mine = ++sequence;
    checking = true;
    updateButton();
    const data = new FormData();
    data.append("file", file);
    if (!first) data.append("variables", JSON.stringify(values()));
    try {
      const result = await post(`${DATA}/workflow`, { body: data });
      if (mine !== sequence) return;
      lastResult = result;
      fill(summary, result.name
        ? h("p", null, "Job ", h("strong", null, result.name), ` · ${result.variables.length} variable${result.variables.length === 1 ? "" : "s"}`)
        : null);
      drawProblems(result);
      if (first) drawFields(result);
      else {
        for (const variable of result.variables) {
          const entry = inputs.get(variable.name);
          if (entry) entry.serverError = variable.error ? `${variable.name}: ${variable.error}` : null;
        }
      }
      announce(result.valid ? "The workflow is valid" : `${result.problems.length} problems found`);
    } catch (error) {
      if (mine !== sequence) return;
      lastResult = null;
      summary.replaceChildren();
      fields.replaceChildren();
      problemsBox.replaceChildren(errorBox(error));
    } finally {
      if (mine === sequence) {
        checking = false;
        updateButton();
      }
    }
  }
  const recheck = debounce(() => inspect(false), 400);

  fileInput.addEventListener("change", () => {
    file = fileInput.files && fileInput.files[0] ? fileInput.files[0] : null;
    lastResult = null;
    submitStatus.replaceChildren();
    fields.replaceChildren();
    problemsBox.replaceChildren();
    fill(summary, file ? h("p", { class: "muted" }, "Checking…") : null);
    inspect(true);
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (submitButton.disabled || !file) return;
    submitButton.disabled = true;
    submitStatus.replaceChildren(h("p", { class: "muted" }, "Submitting…"));
    const data = new FormData();
    data.append("file", file);
    data.append("variables", JSON.stringify(values()));
    try {
      const created = await post(`${REST}/submit`, { body: data, query: { "submission.mode": "dashboard" } });
      announce(`Job ${created.id} submitted`);
      navigate(jobPath(created.id));
    } catch (error) {
      submitStatus.replaceChildren(errorBox(error));
      updateButton();
    }
  });

  fileInput.focus();
  return () => { sequence += 1; };
}

// Variable models checked as the user types (PA:INTEGER[0,10], PA:LIST(a,b), ...), the
// same rules as workflow/models.py. A hint only: the server checks again before storing.

const MODEL = /^\s*PA:([A-Za-z_]+)\s*([\s\S]*)$/;
const INT = /^[+-]?[0-9]+$/;
const FLOAT = /^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[fFdD]?$/;
const BITS = { INTEGER: 32n, LONG: 64n };

export function parseModel(model) {
  const match = MODEL.exec(model || "");
  if (!match) return null;
  return { kind: match[1].toUpperCase(), rest: match[2].trim() };
}

/** The choices of a PA:LIST model, or null. */
export function listChoices(model) {
  const parsed = parseModel(model);
  if (!parsed || parsed.kind !== "LIST") return null;
  if (!parsed.rest.startsWith("(") || !parsed.rest.endsWith(")")) return null;
  return parsed.rest.slice(1, -1).split(",").map((c) => c.trim());
}

function checkNumber(kind, rest, value, integral) {
  const text = value.trim();
  if (!(integral ? INT : FLOAT).test(text)) return `not a valid ${kind.toLowerCase()}`;
  const number = Number.parseFloat(text.replace(/[fFdD]$/, ""));
  if (integral) {
    const big = BigInt(text);
    const bits = BITS[kind];
    if (big < -(2n ** (bits - 1n)) || big >= 2n ** (bits - 1n)) return `out of range for a ${kind.toLowerCase()}`;
  }
  if (!rest) return null;
  if (!rest.startsWith("[") || !rest.endsWith("]")) return null;
  const [low, high] = rest.slice(1, -1).split(",").map((p) => p.trim());
  if ((low && number < Number.parseFloat(low)) || (high && number > Number.parseFloat(high))) {
    return `outside the range ${rest}`;
  }
  return null;
}

/** Why `value` fails `model`, or null (unknown models are accepted as text). */
export function checkModel(model, value) {
  const parsed = parseModel(model);
  if (!parsed) return null;
  const { kind, rest } = parsed;
  if (kind === "INTEGER" || kind === "LONG") return checkNumber(kind, rest, value, true);
  if (kind === "FLOAT" || kind === "DOUBLE") return checkNumber(kind, rest, value, false);
  if (kind === "BOOLEAN") return ["true", "false"].includes(value.trim().toLowerCase()) ? null : "must be true or false";
  if (kind === "NOT_EMPTY_STRING") return value.trim() ? null : "must not be empty";
  if (kind === "LIST") {
    const choices = listChoices(model);
    return choices && !choices.includes(value.trim()) ? `must be one of ${choices.join(", ")}` : null;
  }
  if (kind === "REGEXP") {
    if (!rest.startsWith("(") || !rest.endsWith(")")) return null;
    try {
      return new RegExp(`^(?:${rest.slice(1, -1)})$`).test(value) ? null : `must match ${rest.slice(1, -1)}`;
    } catch {
      return null; // a Python-only pattern: the server decides
    }
  }
  return null;
}

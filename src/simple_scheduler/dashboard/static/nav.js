// Navigation without reloading, shared by the pages (the router registers itself here,
// which keeps the pages from importing app.js).

let router = null;

export function setRouter(fn) {
  router = fn;
}

export function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  if (router) router({ focus: !replace });
}

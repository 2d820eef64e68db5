// Log in with the API's own login call (same users, same throttle); the server sets the
// HttpOnly session cookie, the page never sees or stores the token.

import { ApiError, login } from "../api.js";
import { h } from "../dom.js";
import { setTitle } from "../ui.js";

export function loginView(main, { next, message, onLoggedIn }) {
  setTitle("Log in");
  const status = h("p", { class: message ? "notice" : "error", role: "alert", id: "login-status" });
  if (message) status.textContent = message;
  const user = h("input", {
    id: "username", name: "username", autocomplete: "username", required: true,
    autocapitalize: "none", spellcheck: "false",
  });
  const password = h("input", {
    id: "password", name: "password", type: "password", autocomplete: "current-password",
    required: true,
  });
  const button = h("button", { type: "submit", class: "primary" }, "Log in");
  const form = h("form", { class: "login card", "aria-describedby": "login-status" },
    h("h1", null, "Log in"),
    status,
    h("label", { for: "username" }, "User name"), user,
    h("label", { for: "password" }, "Password"), password,
    button);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    status.className = "error";
    status.textContent = "";
    try {
      const session = await login(user.value, password.value);
      if (!session) throw new Error("logged in, but the session was not accepted");
      onLoggedIn(next);
    } catch (error) {
      if (error instanceof ApiError && error.status === 429) {
        const wait = error.headers.get("Retry-After");
        status.textContent = `Too many failed logins. Try again in ${wait || "a few"} seconds.`;
      } else if (error instanceof ApiError && error.status === 401) {
        status.textContent = "Wrong user name or password.";
      } else {
        status.textContent = error.message || String(error);
      }
      password.select();
      password.focus();
    } finally {
      button.disabled = false;
    }
  });
  main.replaceChildren(form);
  user.focus();
  return null;
}

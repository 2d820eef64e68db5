"""The dashboard in a real browser: Playwright driving Debian's Chromium against the real
`simple-scheduler run-server` (one per module, as in test_e2e.py).

Every wait is on a condition (Playwright's auto-waiting `expect`), never a fixed sleep.
Screenshots of each page go to tests/artifacts/dashboard/ (ignored by git). The page's
Content-Security-Policy stays on: Playwright's locators and `evaluate` work under it,
and a CSP violation or an uncaught script error fails the test.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import httpx
import pytest
from harness import kill_under
from test_e2e import Server
from wfxml import NS, job_xml

pytestmark = pytest.mark.slow

# No skipping: without Playwright or Chromium these tests fail (`.ci/run` installs both).
from playwright import sync_api  # noqa: E402

expect = sync_api.expect
CHROMIUM = os.environ.get("SIMPLE_SCHEDULER_CHROMIUM", "/usr/bin/chromium")
assert Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM} (apt-get install chromium)"

ARTIFACTS = Path(__file__).resolve().parent / "artifacts" / "dashboard"
TIMEOUT_MS = 30_000
expect.set_options(timeout=TIMEOUT_MS)
HOSTILE_NAME = "<img src=x onerror=alert(1)>"

SLOW_DIAMOND = job_xml(
    [
        {"name": "A", "bash": "sleep 1.5; echo A"},
        {"name": "B", "depends": ["A"], "bash": "sleep 1.5; echo B"},
        {"name": "C", "depends": ["A"], "bash": "sleep 1.5; echo C"},
        {"name": "D", "depends": ["B", "C"], "bash": "sleep 1.5; echo D runs last"},
    ],
    name="diamond",
)
VARIABLES_JOB = f"""<?xml version="1.0" encoding="UTF-8"?>
<job xmlns="{NS}" name="with-variables">
  <variables>
    <variable name="COUNT" value="20" model="PA:INTEGER[1,10]" description="how many"/>
    <variable name="MODE" value="fast" model="PA:LIST(fast,slow)"/>
  </variables>
  <taskFlow>
    <task name="A"><scriptExecutable><script><code language="bash">echo $variables_COUNT
    </code></script></scriptExecutable></task>
  </taskFlow>
</job>
""".encode()


def layered_job(n: int, width: int) -> bytes:
    """`n` tasks in layers of `width` (each on one or two tasks of the layer before),
    all held by a first task that sleeps: a big graph that does not change."""
    rng = random.Random(n)
    parts = ['<task name="gate"><nativeExecutable><staticCommand value="sleep">'
             '<arguments><argument value="600"/></arguments></staticCommand>'
             "</nativeExecutable></task>"]  # fmt: skip
    previous, index = ["gate"], 0
    while len(parts) < n:
        layer = []
        for _ in range(min(width, n - len(parts))):
            name = f"t{index:05d}"
            index += 1
            deps = rng.sample(previous, min(len(previous), rng.randint(1, 2)))
            refs = "".join(f"<task ref={quoteattr(d)}/>" for d in deps)
            parts.append(
                f'<task name="{name}"><depends>{refs}</depends><nativeExecutable>'
                '<staticCommand value="true"/></nativeExecutable></task>'
            )
            layer.append(name)
        previous = layer
    body = "".join(parts)
    return f'<job xmlns="{NS}" name="layered-{n}"><taskFlow>{body}</taskFlow></job>'.encode()


@dataclass
class Site:
    """The running server, seen from the tests: its origin and an API client per user."""

    server: Server
    clients: dict[str, httpx.Client] = field(default_factory=dict)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def api(self, user: str = "alice") -> httpx.Client:
        if user not in self.clients:
            token = self.server.login(user, f"{user}-pw")
            self.clients[user] = httpx.Client(
                base_url=f"{self.origin}/rest/scheduler", headers={"sessionid": token}, timeout=30
            )
        return self.clients[user]

    def submit(self, xml: bytes, user: str = "alice") -> int:
        response = self.api(user).post("/submit", files={"file": ("job.xml", xml)})
        assert response.status_code == 200, response.text
        return int(response.json()["id"])

    def info(self, job_id: int, user: str = "alice") -> dict[str, Any]:
        info: dict[str, Any] = self.api(user).get(f"/jobs/{job_id}/info").json()
        return info

    def kill(self, job_id: int) -> None:
        self.api("alice").put(f"/jobs/{job_id}/kill")


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    root = Path(tempfile.mkdtemp(prefix="ss-dash-", dir="/tmp"))
    token = uuid.uuid4().hex
    server = Server(root, token)
    result = Site(server)
    try:
        for user in ("alice", "bob", "carol"):
            server.cli("create-user", user, f"{user}-pw")
        server.start()
        yield result
    finally:
        for client in result.clients.values():
            client.close()
        server.kill()
        kill_under(root, token)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM)
        try:
            yield instance
        finally:
            instance.close()


@dataclass
class Watch:
    """What the page did that it must not: dialogs (alert), CSP violations, script errors."""

    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@pytest.fixture
def watch() -> Watch:
    return Watch()


def new_page(browser: Any, site: Site, watch: Watch, **options: Any) -> Any:
    context = browser.new_context(
        base_url=site.origin, viewport=options.pop("viewport", {"width": 1280, "height": 800}),
        **options,
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()

    def on_dialog(dialog: Any) -> None:
        watch.dialogs.append(dialog.message)
        dialog.dismiss()

    def on_console(message: Any) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            watch.errors.append(message.text)

    page.on("dialog", on_dialog)
    page.on("pageerror", lambda error: watch.errors.append(str(error)))
    page.on("console", on_console)
    return page


@pytest.fixture
def page(browser: Any, site: Site, watch: Watch) -> Iterator[Any]:
    page = new_page(browser, site, watch)
    try:
        yield page
    finally:
        page.context.close()
    assert watch.errors == []
    assert watch.dialogs == []


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def login(page: Any, user: str = "alice", path: str = "/") -> None:
    """Log in through the login page (the cookie the server sets is the session)."""
    page.goto(path)
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(f"{user}-pw")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


def node(page: Any, name: str) -> Any:
    """A task's node in the graph (its aria-label starts with "Task NAME:")."""
    return page.locator("svg.graph a.node").filter(has=page.locator("title", has_text=f"{name} —"))


def confirm(page: Any, label: str) -> None:
    dialog = page.locator("dialog[open]")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name=label).click()
    expect(dialog).to_have_count(0)


# -- the tour the issue asks for ---------------------------------------------------------------


def test_login_submit_the_diamond_and_watch_it_finish_live(
    page: Any, site: Site, tmp_path: Path
) -> None:
    page.goto("/")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    shot(page, "login")
    login(page)
    expect(page).to_have_url(re.compile(r"/jobs$"))
    expect(page.get_by_role("heading", name="Jobs")).to_be_visible()

    page.get_by_role("link", name="Submit a job").first.click()
    workflow = tmp_path / "diamond.xml"
    workflow.write_bytes(SLOW_DIAMOND)
    page.get_by_label("Workflow file").set_input_files(str(workflow))
    submit = page.get_by_role("button", name="Submit", exact=True)
    expect(submit).to_be_enabled()
    expect(page.get_by_text("Job diamond")).to_be_visible()
    shot(page, "submit")
    submit.click()

    expect(page).to_have_url(re.compile(r"/jobs/\d+$"))
    job_id = int(page.url.rsplit("/", 1)[1])
    page.evaluate("() => { window.stillTheSamePage = true; }")
    # D waits for A, then B and C: it is seen unfinished first, then all four finish.
    expect(node(page, "D")).to_have_class(re.compile(r"st-(SUBMITTED|PENDING|RUNNING)"))
    for name in "ABCD":
        expect(node(page, name)).to_have_class(re.compile(r"\bst-FINISHED\b"))
    expect(page.locator(".job-head .badge")).to_have_text(re.compile("Finished"))
    assert page.evaluate("() => window.stillTheSamePage === true"), "the page was reloaded"
    assert site.info(job_id)["status"] == "FINISHED"
    shot(page, "job")

    jobs = page.get_by_role("navigation", name="Main").get_by_role("link", name="Jobs")
    jobs.click()
    row = page.locator("table.jobs tbody tr", has=page.get_by_role("link", name="diamond"))
    expect(row.first).to_contain_text("Finished")
    expect(row.first).to_contain_text("4 of 4 finished")
    shot(page, "jobs")

    page.go_back()
    node(page, "D").click()
    expect(page).to_have_url(re.compile(rf"/jobs/{job_id}/tasks/D$"))
    stdout = page.locator("pre.log").first
    expect(stdout).to_have_text("D runs last\n")
    expect(page.get_by_text("exit code 0", exact=True)).to_be_visible()
    shot(page, "task")


def test_a_job_page_follows_the_events_socket_without_polling(page: Any, site: Site) -> None:
    """The job's page subscribes to the events WebSocket (with the session cookie) and
    draws the job's end from it: no reload, and not one request once the page is drawn."""
    gate = site.server.root / f"gate-{uuid.uuid4().hex}"
    job_id = site.submit(
        job_xml(
            [
                {"name": "gated", "bash": f"until [ -e {gate} ]; do sleep 0.01; done"},
                {"name": "then", "depends": ["gated"], "bash": "true"},
            ],
            name="<b>socket</b>",
        )
    )
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    login(page, path=f"/jobs/{job_id}")
    expect(node(page, "gated")).to_have_class(re.compile(r"\bst-RUNNING\b"))
    expect(node(page, "then")).to_have_class(re.compile(r"\bst-SUBMITTED\b"))
    expect(page.get_by_role("heading", name="<b>socket</b>")).to_be_visible()  # as text
    # Subscribed, and the job read once after that: from here on, only the socket.
    page.wait_for_function("() => performance.getEntriesByName('live-events').length > 0")
    page.evaluate("() => { window.stillTheSamePage = true; }")
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    gate.touch()
    expect(node(page, "then")).to_have_class(re.compile(r"\bst-FINISHED\b"))
    expect(node(page, "gated")).to_have_class(re.compile(r"\bst-FINISHED\b"))
    expect(page.locator(".job-head .badge")).to_have_text(re.compile("Finished"))
    assert page.evaluate("() => window.stillTheSamePage === true"), "the page was reloaded"
    assert sockets == [f"ws://127.0.0.1:{site.server.port}/rest/scheduler/events"]
    assert requests == [], requests  # every change came through the socket
    assert page.evaluate("() => performance.getEntriesByName('live-polling').length") == 0
    assert site.info(job_id)["status"] == "FINISHED"


def test_kill_a_running_job_from_its_page(page: Any, site: Site) -> None:
    job_id = site.submit(
        job_xml(
            [
                {"name": "long", "native": ["sleep", "60"]},
                {"name": "after", "depends": ["long"], "bash": "echo never"},
            ],
            name="to-kill",
        )
    )
    login(page, path=f"/jobs/{job_id}")
    expect(node(page, "long")).to_have_class(re.compile(r"\bst-RUNNING\b"))
    kill = page.get_by_role("button", name="Kill", exact=True)
    kill.click()
    # Escape cancels the confirmation: nothing happens.
    expect(page.locator("dialog[open]")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("dialog[open]")).to_have_count(0)
    assert site.info(job_id)["status"] == "RUNNING"
    kill.click()
    confirm(page, "Kill")
    expect(node(page, "long")).to_have_class(re.compile(r"\bst-ABORTED\b"))
    expect(node(page, "after")).to_have_class(re.compile(r"\bst-NOT_STARTED\b"))
    expect(page.locator(".job-head .badge")).to_have_text(re.compile("Killed"))
    expect(node(page, "long")).to_contain_text("Aborted")
    expect(node(page, "after")).to_contain_text("Not started")
    assert site.info(job_id)["status"] == "KILLED"
    shot(page, "job-killed")


def test_hostile_names_and_logs_are_shown_as_text(page: Any, site: Site, watch: Watch) -> None:
    job_id = site.submit(
        job_xml(
            [
                {
                    "name": HOSTILE_NAME,
                    "bash": "echo '<script>alert(2)</script>'; "
                    "echo '<img src=x onerror=alert(3)>' >&2",
                }
            ],
            name="<b onmouseover=alert(4)>job</b>",
            variables={"V": "<svg onload=alert(5)>"},
        )
    )
    login(page, path=f"/jobs/{job_id}")
    expect(page.get_by_role("heading", level=1)).to_contain_text("<b onmouseover=alert(4)>job</b>")
    link = page.get_by_role("link", name=HOSTILE_NAME, exact=True)
    expect(link).to_be_visible()
    expect(node(page, HOSTILE_NAME)).to_have_class(re.compile(r"\bst-FINISHED\b"))
    expect(page.get_by_role("cell", name="<svg onload=alert(5)>")).to_be_visible()
    link.click()
    expect(page.get_by_role("heading", level=1)).to_have_text(HOSTILE_NAME)
    logs = page.locator("pre.log")
    expect(logs.nth(0)).to_have_text("<script>alert(2)</script>\n")
    expect(logs.nth(1)).to_have_text("<img src=x onerror=alert(3)>\n")
    page.reload()  # the deep link to a task with such a name survives a reload
    expect(logs.nth(0)).to_have_text("<script>alert(2)</script>\n")
    for selector in ("main img", "main script", "main svg[onload]", "main b"):
        assert page.locator(selector).count() == 0, selector
    shot(page, "task-hostile")
    assert watch.dialogs == []


def test_a_state_change_without_csrf_protection_is_refused(page: Any, site: Site) -> None:
    job_id = site.submit(job_xml([{"name": "nap", "native": ["sleep", "60"]}], name="csrf"))
    login(page)
    url = f"{site.origin}/rest/scheduler/jobs/{job_id}/kill"
    # The browser's session cookie, sent alone (no token header)...
    [cookie] = [c for c in page.context.cookies() if c["name"] == "sessionid"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
    response = page.request.put(url, headers={"Cookie": f"sessionid={cookie['value']}"})
    assert response.status == 403
    assert "X-CSRF-Token" in response.json()["errorMessage"]
    # ...and from a script on the page that does not send the token.
    status = page.evaluate("async (url) => (await fetch(url, {method: 'PUT'})).status", url)
    assert status == 403
    refused = page.evaluate(
        "async (url) => (await fetch(url, {method: 'DELETE'})).status",
        f"{site.origin}/rest/scheduler/jobs/{job_id}",
    )
    assert refused == 403
    assert site.info(job_id)["status"] in ("PENDING", "RUNNING")
    site.kill(job_id)


def test_another_users_job_is_not_reachable_by_url(page: Any, site: Site) -> None:
    job_id = site.submit(job_xml([{"name": "A", "bash": "echo secret"}], name="alice-only"))
    login(page, "bob", path=f"/jobs/{job_id}")
    expect(page.get_by_role("heading", name="Job not found")).to_be_visible()
    expect(page.get_by_role("alert")).to_have_text(f"job {job_id} does not exist")
    page.goto(f"/jobs/{job_id}/tasks/A")
    expect(page.get_by_role("heading", name="Task not found")).to_be_visible()
    page.goto("/jobs")
    expect(page.get_by_role("heading", name="Jobs")).to_be_visible()
    expect(page.locator("table.jobs")).not_to_contain_text("alice-only")
    assert "alice-only" not in page.content()
    shot(page, "other-users-job")


# -- the rest of the pages -----------------------------------------------------------------------


def test_a_10000_task_job_is_clustered_and_says_so(page: Any, site: Site) -> None:
    job_id = site.submit(layered_job(10_000, 100))
    login(page, path=f"/jobs/{job_id}")
    notice = page.locator("#graph .notice")
    expect(notice).to_contain_text("This job has 10,000 tasks")
    expect(notice).to_contain_text("To stay legible")
    expect(page.locator(".graph-box[data-complete]")).to_have_count(1)
    clusters = page.locator("svg.graph g.cluster")
    assert 1 <= clusters.count() <= 1500
    assert page.locator("svg.graph .node").count() < 1500
    shot(page, "job-10000")
    clusters.first.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#tasks .chip-row")).to_contain_text("Showing the")
    expect(page.locator("#tasks tbody tr")).to_have_count(50)
    page.get_by_label("Name contains").nth(0).fill("t00042")
    expect(page.locator("#tasks tbody tr")).to_have_count(1)
    site.kill(job_id)


def test_submit_form_checks_variables_and_problems_before_storing(
    page: Any, site: Site, tmp_path: Path
) -> None:
    before = site.api().get("/jobs").json()["size"]
    login(page, path="/submit")
    workflow = tmp_path / "variables.xml"
    workflow.write_bytes(VARIABLES_JOB)
    page.get_by_label("Workflow file").set_input_files(str(workflow))
    problems = page.locator("#problems")
    expect(problems).to_contain_text("line 4")
    expect(problems).to_contain_text("COUNT")
    count = page.get_by_label("COUNT")
    expect(count).to_have_attribute("aria-invalid", "true")
    submit = page.get_by_role("button", name="Submit", exact=True)
    expect(submit).to_be_disabled()
    expect(page.get_by_label("MODE")).to_have_value("fast")
    count.fill("7")
    page.get_by_label("MODE").select_option("slow")
    expect(count).not_to_have_attribute("aria-invalid", "true")
    expect(problems).to_be_empty()
    expect(submit).to_be_enabled()

    broken = tmp_path / "broken.xml"
    broken.write_bytes(job_xml([{"name": "A", "depends": ["Z"], "bash": "true"}], name="x"))
    page.get_by_label("Workflow file").set_input_files(str(broken))
    expect(problems).to_contain_text("line 1, task A")
    expect(submit).to_be_disabled()
    shot(page, "submit-problems")
    assert site.api().get("/jobs").json()["size"] == before  # nothing stored

    page.get_by_label("Workflow file").set_input_files(str(workflow))
    expect(count).to_have_attribute("aria-invalid", "true")
    count.fill("3")
    expect(submit).to_be_enabled()
    submit.click()
    expect(page).to_have_url(re.compile(r"/jobs/\d+$"))
    expect(page.get_by_role("row", name=re.compile("COUNT 3"))).to_be_visible()
    expect(page.get_by_role("row", name=re.compile("submission.mode dashboard"))).to_be_visible()


def test_job_actions_pause_resume_resubmit_remove(page: Any, site: Site) -> None:
    job_id = site.submit(
        job_xml(
            [
                {"name": "hold", "native": ["sleep", "60"]},
                {"name": "next", "depends": ["hold"], "bash": "true"},
            ],
            name="actions",
        )
    )
    login(page, path=f"/jobs/{job_id}")
    badge = page.locator(".job-head .badge")
    expect(badge).to_have_text(re.compile("Running"))
    page.get_by_role("button", name="Pause").click()
    expect(badge).to_have_text(re.compile("Paused"))
    expect(page.get_by_role("button", name="Resume")).to_be_enabled()
    page.get_by_role("button", name="Resume").click()
    expect(badge).to_have_text(re.compile("Running"))
    page.get_by_role("button", name="Resubmit").click()
    confirm(page, "Resubmit")
    expect(page).not_to_have_url(re.compile(rf"/jobs/{job_id}$"))
    expect(page).to_have_url(re.compile(r"/jobs/\d+$"))
    copy = int(page.url.rsplit("/", 1)[1])
    expect(page.get_by_role("heading", level=1)).to_contain_text("actions")
    page.get_by_role("button", name="Remove").click()
    expect(page.locator("dialog[open]")).to_contain_text("killed first")
    confirm(page, "Remove")
    expect(page).to_have_url(re.compile(r"/jobs$"))
    assert site.api().get(f"/jobs/{copy}/info").status_code == 404
    site.kill(job_id)


def test_in_error_tasks_are_finished_or_restarted(page: Any, site: Site) -> None:
    job_id = site.submit(
        job_xml(
            [
                {"name": "first", "bash": "echo try >&2; exit 3"},
                {"name": "second", "bash": "echo again >&2; exit 4"},
                {"name": "last", "depends": ["first"], "bash": "echo done"},
            ],
            name="in-error",
            on_error="suspendTask",
        )
    )
    login(page, path=f"/jobs/{job_id}")
    section = page.locator("section.attention")
    expect(section).to_contain_text("Tasks in error")
    expect(section.get_by_role("link")).to_have_count(2)
    section.locator("li", has_text="first").get_by_role("button", name="Mark finished").click()
    confirm(page, "Mark finished")
    expect(node(page, "first")).to_have_class(re.compile(r"\bst-FINISHED\b"))
    expect(node(page, "last")).to_have_class(re.compile(r"\bst-FINISHED\b"))

    node(page, "second").click()
    expect(page.get_by_text("Reason:")).to_be_visible()
    expect(page.get_by_text("exit code 4", exact=True)).to_be_visible()
    for hidden in ("Kill", "Restart"):  # for running tasks only
        expect(page.get_by_role("button", name=hidden, exact=True)).to_be_hidden()
    page.get_by_role("button", name="Restart (in error)").click()
    confirm(page, "Restart")
    expect(page.get_by_label("Attempt", exact=True)).to_contain_text("Attempt 2 (latest)")
    expect(page.locator("pre.log").nth(1)).to_have_text("again\n")
    page.get_by_label("Attempt", exact=True).select_option("1")
    expect(page.locator("pre.log").nth(1)).to_have_text("again\n")
    shot(page, "task-in-error")
    site.kill(job_id)


def test_logout_revokes_the_session(page: Any, site: Site) -> None:
    login(page)
    [cookie] = [c for c in page.context.cookies() if c["name"] == "sessionid"]
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    expect(page.locator("#login-status")).to_have_text("You are logged out.")
    assert not [c for c in page.context.cookies() if c["name"] == "sessionid"]
    old = httpx.get(f"{site.origin}/rest/common/connected", cookies={"sessionid": cookie["value"]})
    assert old.json() is False  # the token itself was revoked, not only the cookie dropped
    page.goto("/jobs")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()


def test_login_is_throttled_like_the_api(page: Any) -> None:
    page.goto("/login")
    status = page.locator("#login-status")
    for _ in range(4):
        page.get_by_label("User name").fill("carol")
        page.get_by_label("Password").fill("wrong")
        page.get_by_role("button", name="Log in").click()
        expect(status).to_have_text(re.compile("Wrong user name or password|Too many"))
    page.get_by_role("button", name="Log in").click()
    expect(status).to_contain_text("Too many failed logins")


def test_keyboard_deep_links_narrow_window_and_locale(
    browser: Any, site: Site, watch: Watch
) -> None:
    job_id = site.submit(job_xml([{"name": "only", "bash": "echo hi"}], name="keyboard"))
    page = new_page(
        browser, site, watch, locale="de-DE", timezone_id="Europe/Berlin"
    )
    try:
        login(page, path="/jobs")
        # Keyboard only: Tab to the job's link, Enter opens it; the graph's node too.
        target = page.get_by_role("link", name="keyboard")
        for _ in range(40):
            page.keyboard.press("Tab")
            if target.evaluate("(el) => el === document.activeElement"):
                break
        else:
            pytest.fail("the job link is not reachable with Tab")
        page.keyboard.press("Enter")
        expect(page).to_have_url(re.compile(rf"/jobs/{job_id}$"))
        expect(node(page, "only")).to_have_class(re.compile(r"\bst-FINISHED\b"))
        node(page, "only").focus()
        page.keyboard.press("Enter")
        expect(page).to_have_url(re.compile(rf"/jobs/{job_id}/tasks/only$"))
        # Deep link, reloaded.
        page.reload()
        expect(page.locator("pre.log").first).to_have_text("hi\n")
        # Times in the browser's locale (German: 30.11.2026, 12:00:00).
        started = page.locator(".facts time").first
        expect(started).to_have_text(re.compile(r"^\d{2}\.\d{2}\.\d{4}, \d{2}:\d{2}:\d{2}$"))
        # A narrow window: nothing wider than the screen.
        page.set_viewport_size({"width": 390, "height": 844})
        ready = {
            "/jobs": "table.jobs tbody a",
            f"/jobs/{job_id}": ".graph-box[data-complete]",
            f"/jobs/{job_id}/tasks/only": "pre.log:has-text('hi')",
            "/submit": "#workflow-file",
        }
        for path, selector in ready.items():
            page.goto(path)
            expect(page.locator(selector).first).to_be_visible()
            width = page.evaluate("() => document.documentElement.scrollWidth")
            assert width <= 391, f"{path} is {width} px wide in a 390 px window"
            shot(page, "narrow-" + (path.strip("/").replace("/", "-") or "root"))
    finally:
        page.context.close()
    assert watch.errors == [] and watch.dialogs == []

"""Dashboard rendering: headless Chromium showing the job page of a 1,000- and a
10,000-task job, and the frame rate while tasks change status live.

Starts the real `simple-scheduler run-server` (10 workers) on a temporary data folder and
drives Debian's Chromium (`/usr/bin/chromium`, or `--chromium PATH`) with Playwright.

- **Time to first paint of the graph**: two layered random DAGs (each task depends on one
  or two tasks of the layer before; 1,000 tasks 25 wide, 10,000 tasks 100 wide), held by a
  first task that sleeps, so nothing changes while we measure. For each, `--runs`
  navigations to `/jobs/{id}` after one warm-up; the figure is the median of
  `performance.getEntriesByName("graph-painted")` (set by the page in the task queued
  from the requestAnimationFrame callback that follows drawing the SVG, i.e. just after
  that frame is painted), measured from navigation start: HTML, scripts, the session
  check, the graph request, layout, SVG and paint all count.
- **Frames per second while 10 tasks/s change status**: a 1,000-task DAG 20 wide whose
  tasks `sleep 1`, on 10 workers: about 10 tasks finish and 10 start every second. With
  the page open, requestAnimationFrame callbacks are counted for `--seconds`.

Targets: ms_1000 <= 500, ratio_10000_vs_1000 <= 5, fps_live >= 30. Last line, one JSON
object: {"benchmark": "dashboard_render", "ms_1000", "ms_10000", "ratio_10000_vs_1000",
"fps_live"}.

    .venv/bin/python benchmarks/dashboard_render.py [--runs 5] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from typing import Any
from xml.sax.saxutils import quoteattr

from harness import NS, LiveServer
from playwright.sync_api import Page, sync_playwright

PAINTED = ".graph-box[data-painted]"
COUNT_FRAMES = """async (ms) => {
  const start = performance.now();
  let frames = 0, last = start, longest = 0;
  await new Promise((resolve) => {
    function tick(now) {
      frames += 1;
      longest = Math.max(longest, now - last);
      last = now;
      if (now - start < ms) requestAnimationFrame(tick); else resolve();
    }
    requestAnimationFrame(tick);
  });
  return {frames, elapsed: performance.now() - start, longest};
}"""


def layered_job(name: str, n: int, width: int, argv: list[str], gate: list[str] | None) -> bytes:
    """A DAG of `n` tasks in layers of `width`, each task depending on one or two tasks of
    the layer before; with `gate`, one first task (running `gate`) holds all the others."""
    rng = random.Random(n * 31 + width)

    def task(task_name: str, deps: list[str], command: list[str]) -> str:
        depends = "".join(f"<task ref={quoteattr(d)}/>" for d in deps)
        args = "".join(f"<argument value={quoteattr(a)}/>" for a in command[1:])
        return (
            f"<task name={quoteattr(task_name)}>"
            + (f"<depends>{depends}</depends>" if deps else "")
            + f"<nativeExecutable><staticCommand value={quoteattr(command[0])}>"
            f"<arguments>{args}</arguments></staticCommand></nativeExecutable></task>"
        )

    parts: list[str] = []
    previous: list[str] = []
    if gate is not None:
        parts.append(task("gate", [], gate))
        previous = ["gate"]
    index = 0
    while len(parts) < n:
        layer = []
        for _ in range(min(width, n - len(parts))):
            task_name = f"t{index:05d}"
            index += 1
            deps = rng.sample(previous, min(len(previous), rng.randint(1, 2))) if previous else []
            parts.append(task(task_name, deps, argv))
            layer.append(task_name)
        previous = layer
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><job xmlns="{NS}" name={quoteattr(name)}>'
        f"<taskFlow>{''.join(parts)}</taskFlow></job>"
    ).encode()


class Session:
    """The benchmark's REST calls to `server`, as its (non-admin) user."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.origin = server.base
        self.token = server.login()

    def request(
        self, method: str, path: str, data: bytes | None = None, xml: bool = False
    ) -> bytes:
        headers = {"sessionid": self.token}
        if xml:
            headers["Content-Type"] = "application/xml"
        return self.server.request(method, path, data, headers)

    def submit(self, xml: bytes) -> int:
        return int(json.loads(self.request("POST", "/scheduler/submit", xml, xml=True))["id"])

    def info(self, job_id: int) -> dict[str, Any]:
        info: dict[str, Any] = json.loads(self.request("GET", f"/scheduler/jobs/{job_id}/info"))
        return info

    def wait(self, job_id: int, ready: Any, what: str, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            info = self.info(job_id)
            if ready(info):
                return info
            if time.monotonic() > deadline:
                raise SystemExit(f"job {job_id}: {what} did not happen: {info['status']}")
            time.sleep(0.1)


def first_paint_ms(page: Page, url: str, runs: int) -> tuple[list[float], list[float]]:
    """Milliseconds from navigation start to the graph's first paint, and to the moment
    every node is attached (the page attaches off-screen columns after the first paint),
    per navigation."""
    painted, complete = [], []
    for run in range(runs + 1):
        page.goto(url)
        page.locator(".graph-box[data-complete]").wait_for(timeout=60_000)
        marks = page.evaluate(
            "['graph-painted', 'graph-complete']"
            ".map((name) => performance.getEntriesByName(name)[0].startTime)"
        )
        if run:  # the first navigation warms the browser's caches
            painted.append(float(marks[0]))
            complete.append(float(marks[1]))
    return painted, complete


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    live_server = LiveServer("ss-dash-", {"nb_of_workers": "10", "kill_grace_s": "1"}, admin=False)
    try:
        live_server.start()
        server = Session(live_server)
        gate = ["sleep", "3600"]
        small = server.submit(layered_job("layered-1000", 1000, 25, ["true"], gate))
        large = server.submit(layered_job("layered-10000", 10_000, 100, ["true"], gate))
        for job_id in (small, large):
            server.wait(job_id, lambda i: i["numberOfRunningTasks"] == 1, "the gate task start")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=args.chromium)
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            context.add_cookies(
                [{"name": "sessionid", "value": server.token, "url": server.origin}]
            )
            page = context.new_page()
            ms_small, all_small = first_paint_ms(page, f"{server.origin}/jobs/{small}", args.runs)
            ms_large, all_large = first_paint_ms(page, f"{server.origin}/jobs/{large}", args.runs)
            drawn_large = page.locator("svg.graph .node").count()
            for job_id in (small, large):
                server.request("PUT", f"/scheduler/jobs/{job_id}/kill")

            live = server.submit(layered_job("live-1000", 1000, 20, ["sleep", "1"], None))
            server.wait(live, lambda i: i["numberOfFinishedTasks"] >= 20, "the first tasks end")
            page.goto(f"{server.origin}/jobs/{live}")
            page.locator(PAINTED).wait_for(timeout=60_000)
            before = server.info(live)
            started = time.monotonic()
            frames = page.evaluate(COUNT_FRAMES, args.seconds * 1000)
            updates = page.evaluate(
                "performance.getEntriesByName('live-update').map((m) => m.duration)"
            )
            after = server.info(live)
            elapsed = time.monotonic() - started
            shown_finished = page.locator("svg.graph a.node.st-FINISHED").count()
            browser.close()
        server.request("PUT", f"/scheduler/jobs/{live}/kill")
    finally:
        live_server.stop()

    ms_1000 = statistics.median(ms_small)
    ms_10000 = statistics.median(ms_large)
    ratio = ms_10000 / ms_1000
    fps = frames["frames"] / (frames["elapsed"] / 1000)
    changed = after["numberOfFinishedTasks"] - before["numberOfFinishedTasks"]
    print(f"first paint, 1,000 tasks:  {', '.join(f'{t:.0f}' for t in ms_small)} ms")
    print(
        f"first paint, 10,000 tasks: {', '.join(f'{t:.0f}' for t in ms_large)} ms "
        f"({drawn_large} nodes drawn)"
    )
    print(
        f"median {ms_1000:.0f} ms and {ms_10000:.0f} ms, ratio {ratio:.2f} "
        "(goals: <= 500 ms, ratio <= 5)"
    )
    print(
        f"every node attached: median {statistics.median(all_small):.0f} ms (1,000 tasks), "
        f"{statistics.median(all_large):.0f} ms (10,000 tasks)"
    )
    print(
        f"live: {changed / elapsed:.1f} tasks/s finished (as many started), "
        f"{fps:.1f} frames/s, longest frame {frames['longest']:.0f} ms (goal >= 30 fps); "
        f"the page showed {shown_finished} finished tasks, the server "
        f"{after['numberOfFinishedTasks']}"
    )
    print(
        f"page work per live update ({len(updates)}): median "
        f"{statistics.median(updates):.1f} ms, max {max(updates):.1f} ms"
    )
    print(
        json.dumps(
            {
                "benchmark": "dashboard_render",
                "ms_1000": round(ms_1000, 1),
                "ms_10000": round(ms_10000, 1),
                "ratio_10000_vs_1000": round(ratio, 2),
                "fps_live": round(fps, 1),
            }
        )
    )


if __name__ == "__main__":
    main()

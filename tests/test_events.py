"""The events WebSocket against the real `run-server`, with a real WebSocket client.

One server per module (heartbeat 0.3 s, a small per-subscriber queue so the slow-consumer
test needs few tasks); users alice, bob and root (admin). Every wait is on a condition:
a frame arriving, a status read, a process gone.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from harness import kill_under
from test_e2e import DIAMOND, Server, submit, wait
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect
from wfxml import job_xml

pytestmark = pytest.mark.slow

MAX_QUEUED = 400
NONE_FRAME = {"action": "NONE", "schedulerEvent": None, "data": None}
ENDED = {"FINISHED", "CANCELED", "FAILED", "KILLED"}


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    root = Path(tempfile.mkdtemp(prefix="ss-ev-", dir="/tmp"))
    token = uuid.uuid4().hex
    srv = Server(root, token)
    srv.env["SIMPLE_SCHEDULER_EVENTS_HEARTBEAT_S"] = "0.3"
    srv.env["SIMPLE_SCHEDULER_EVENTS_MAX_QUEUED"] = str(MAX_QUEUED)
    try:
        srv.cli("create-user", "alice", "alice-pw")
        srv.cli("create-user", "bob", "bob-pw")
        srv.cli("create-user", "root", "root-pw", "--admin")
        srv.start()
        yield srv
    finally:
        srv.kill()
        kill_under(root, token)
        shutil.rmtree(root, ignore_errors=True)


def ws_url(server: Server, query: str = "") -> str:
    return server.url.replace("http://", "ws://") + "/scheduler/events" + query


def subscribe(
    server: Server,
    token: str,
    *,
    my_events_only: bool = True,
    events: list[str] | None = None,
) -> ClientConnection:
    """Connect as ProActive's client does (sessionid header), subscribe, check NONE."""
    ws = connect(
        ws_url(server), additional_headers={"sessionid": token}, open_timeout=20, max_size=None
    )
    ws.send(json.dumps({"myEventsOnly": my_events_only, "events": events or []}))
    assert json.loads(next_frame(ws, heartbeats=False)) == NONE_FRAME
    return ws


def next_frame(ws: ClientConnection, *, heartbeats: bool = False, timeout: float = 30) -> str:
    """The next frame; heartbeats skipped unless asked for."""
    while True:
        frame = ws.recv(timeout=timeout)
        assert isinstance(frame, str)
        if frame != "X" or heartbeats:
            return frame


def events_until(ws: ClientConnection, done: Any, timeout: float = 60) -> list[dict[str, Any]]:
    """Event frames until one satisfies `done` (included)."""
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        event = json.loads(next_frame(ws, timeout=max(0.1, deadline - time.monotonic())))
        out.append(event)
        if done(event):
            return out


def job_ended(job_id: int) -> Any:
    def check(e: dict[str, Any]) -> bool:
        data = e["data"]
        return (
            e["action"] == "JOB_STATE_UPDATED"
            and data["jobId"]["id"] == job_id
            and data["status"] in ENDED
        )

    return check


def api(server: Server, token: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"sessionid": token}, timeout=30)


def test_diamond_event_sequence_in_order(server: Server) -> None:
    token = server.login("alice", "alice-pw")
    with subscribe(server, token) as ws, api(server, token) as c:
        job_id = submit(c, DIAMOND)
        frames = events_until(ws, job_ended(job_id))
    assert all(set(f) == {"action", "schedulerEvent", "data"} for f in frames)
    first = frames[0]
    assert first["action"] == first["schedulerEvent"] == "JOB_SUBMITTED"
    assert first["data"]["id"] == job_id and first["data"]["jobInfo"]["status"] == "PENDING"
    # The tasks' first statuses come with the submission (ProActive: no task event for
    # them): A, without parents, is PENDING already; the others wait for their parents.
    first_status = {
        t["taskInfo"]["taskId"]["readableName"]: t["taskInfo"]["taskStatus"]
        for t in first["data"]["tasks"].values()
    }
    assert first_status == {"A": "PENDING", "B": "SUBMITTED", "C": "SUBMITTED", "D": "SUBMITTED"}

    tasks = [f for f in frames if f["action"] == "TASK_STATE_UPDATED"]
    seen: dict[str, list[str]] = {}
    order: list[tuple[str, str]] = []
    for f in tasks:
        info = f["data"]
        assert info["jobId"] == {"id": job_id, "readableName": "diamond"}
        name = info["taskId"]["readableName"]
        seen.setdefault(name, []).append(info["taskStatus"])
        order.append((name, info["taskStatus"]))
    # Exactly one event per status change, in order, for every task.
    assert seen == {
        "A": ["RUNNING", "FINISHED"],
        **{n: ["PENDING", "RUNNING", "FINISHED"] for n in "BCD"},
    }
    names = {
        f["schedulerEvent"] for f in tasks if f["data"]["taskStatus"] in ("RUNNING", "FINISHED")
    }
    assert names == {"TASK_PENDING_TO_RUNNING", "TASK_RUNNING_TO_FINISHED"}
    # Dependencies: A finished before B and C became pending; both before D.
    assert order.index(("A", "FINISHED")) < order.index(("B", "PENDING"))
    assert order.index(("A", "FINISHED")) < order.index(("C", "PENDING"))
    assert max(order.index(("B", "FINISHED")), order.index(("C", "FINISHED"))) < order.index(
        ("D", "PENDING")
    )
    jobs = [f for f in frames if f["action"] == "JOB_STATE_UPDATED"]
    assert [j["schedulerEvent"] for j in jobs] == [
        "JOB_PENDING_TO_RUNNING",
        "JOB_RUNNING_TO_FINISHED",
    ]
    assert jobs[-1]["data"]["status"] == "FINISHED"
    assert frames[-1] is jobs[-1]  # the job's end comes after every task's


def test_users_see_only_their_jobs_admin_sees_all(server: Server) -> None:
    alice, bob, root = (server.login(u, f"{u}-pw") for u in ("alice", "bob", "root"))
    with (
        subscribe(server, bob, my_events_only=False) as bob_ws,
        subscribe(server, root, my_events_only=False) as root_ws,
        subscribe(server, root) as root_own_ws,
        api(server, alice) as ca,
        api(server, bob) as cb,
    ):
        alice_job = submit(ca, job_xml([{"name": "a", "bash": "true"}]))
        root_frames = events_until(root_ws, job_ended(alice_job))
        assert root_frames[0]["data"]["owner"] == "alice"
        bob_job = submit(cb, job_xml([{"name": "b", "bash": "true"}]))
        bob_frames = events_until(bob_ws, job_ended(bob_job))
        # Bob's first event is his own submission: nothing of alice's came before it.
        assert bob_frames[0]["action"] == "JOB_SUBMITTED"
        assert bob_frames[0]["data"]["id"] == bob_job
        assert {f["data"].get("jobOwner") or f["data"].get("owner") for f in bob_frames} <= {
            "bob",
            None,
        }
        assert all(f["data"]["jobId"]["id"] == bob_job for f in bob_frames if "jobId" in f["data"])
        # An admin following its own jobs only hears of nobody else's: its stream is
        # still quiet after both jobs ended (only heartbeats arrive).
        assert next_frame(root_own_ws, heartbeats=True, timeout=10) == "X"


def test_event_filter_and_heartbeat(server: Server) -> None:
    token = server.login("alice", "alice-pw")
    wanted = ["JOB_SUBMITTED", "JOB_RUNNING_TO_FINISHED"]
    with subscribe(server, token, events=wanted) as ws, api(server, token) as c:
        assert next_frame(ws, heartbeats=True, timeout=10) == "X"  # nothing happens: X
        job_id = submit(c, job_xml([{"name": "a", "bash": "true"}]))
        frames = events_until(ws, job_ended(job_id))
    assert [f["schedulerEvent"] for f in frames] == wanted


def test_session_from_query_or_cookie_and_401_before_upgrade(server: Server) -> None:
    token = server.login("alice", "alice-pw")
    with connect(ws_url(server, f"?sessionid={token}")) as ws:
        ws.send("{}")
        assert json.loads(next_frame(ws)) == NONE_FRAME
    with connect(ws_url(server), additional_headers={"Cookie": f"sessionid={token}"}) as ws:
        ws.send('{"myEventsOnly": true, "events": null}')
        assert json.loads(next_frame(ws)) == NONE_FRAME
    for headers in ({}, {"sessionid": "not-a-token"}, {"sessionid": token + "x"}):
        with pytest.raises(InvalidStatus) as refused:
            connect(ws_url(server), additional_headers=headers)
        assert refused.value.response.status_code == 401


def test_logout_closes_the_stream(server: Server) -> None:
    token = server.login("alice", "alice-pw")
    other = server.login("alice", "alice-pw")
    with subscribe(server, token) as ws, subscribe(server, other) as survivor:
        response = httpx.put(f"{server.url}/common/logout", headers={"sessionid": token})
        assert response.status_code == 204
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                next_frame(ws, heartbeats=True)
        assert closed.value.rcvd is not None and closed.value.rcvd.reason == "logged out"
        # Another session of the same user keeps its stream.
        assert next_frame(survivor, heartbeats=True) == "X"


def _stuck_subscriber(server: Server, token: str) -> socket.socket:
    """A client that subscribes, then never reads: a tiny receive buffer fills at once."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    sock.sendall(
        (
            "GET /rest/scheduler/events HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"sessionid: {token}\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    payload = b'{"myEventsOnly": true, "events": []}'
    mask = b"\x01\x02\x03\x04"
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    sock.sendall(bytes((0x81, 0x80 | len(payload))) + mask + masked)
    return sock


def _read_frames(sock: socket.socket, until: Any, timeout: float = 60) -> list[tuple[int, bytes]]:
    """(first byte, payload) of each frame the server sends, until `until(frames)`."""
    sock.settimeout(timeout)
    buffer, frames = b"", list[tuple[int, bytes]]()
    while not until(frames):
        chunk = sock.recv(1 << 16)
        assert chunk, "the server closed the stream"
        buffer += chunk
        while len(buffer) >= 2:
            size, header = buffer[1] & 0x7F, 2
            if size == 126:
                size, header = int.from_bytes(buffer[2:4], "big"), 4
            elif size == 127:
                size, header = int.from_bytes(buffer[2:10], "big"), 10
            if len(buffer) < header + size:
                break
            frames.append((buffer[0], buffer[header : header + size]))
            buffer = buffer[header + size :]
    return frames


def test_a_big_message_goes_in_frames_proactives_client_accepts(server: Server) -> None:
    """ProActive's Java client drops its connection on a frame over 10,240 bytes (a job
    of more than a dozen tasks announced whole in JOB_SUBMITTED): big messages go as a
    text frame and continuations, cut between UTF-8 characters, and reassemble whole."""
    token = server.login("alice", "alice-pw")
    wide = "é€😀" * 2000  # multi-byte characters, so that cuts meet them
    xml = job_xml([{"name": f"t{i}", "native": ["true"]} for i in range(40)], variables={"W": wide})
    sock = _stuck_subscriber(server, token)
    try:
        _read_frames(sock, lambda frames: len(frames) == 1)  # NONE
        with api(server, token) as c:
            job_id = submit(c, xml)

        def submitted(frames: list[tuple[int, bytes]]) -> bool:
            return bool(frames) and frames[-1][0] == 0x80  # a fragmented message's end

        frames = _read_frames(sock, submitted)
    finally:
        sock.close()
    assert frames[0][0] == 0x01  # text, not final
    assert all(first == 0x00 for first, _ in frames[1:-1])  # continuations
    assert len(frames) > 2
    assert max(len(payload) for _, payload in frames) <= 10240
    for _, payload in frames:
        payload.decode()  # each fragment is whole UTF-8 text on its own
    message = json.loads(b"".join(payload for _, payload in frames))
    assert message["action"] == "JOB_SUBMITTED"
    assert message["data"]["id"] == job_id
    assert len(message["data"]["tasks"]) == 40
    assert message["data"]["jobInfo"]["variables"]["W"] == wide


def test_slow_subscriber_is_disconnected_and_scheduling_goes_on(server: Server) -> None:
    token = server.login("alice", "alice-pw")
    n = 300
    # Events carry the task's variables: big ones outgrow the kernel's socket buffers
    # long before the job ends, so the server must stop sending to the stuck client.
    wmem_max = int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    big = {"BIG": "x" * max(16384, 4 * wmem_max // (2 * n))}
    xml = job_xml([{"name": f"t{i}", "native": ["true"]} for i in range(n)], variables=big)
    stuck = _stuck_subscriber(server, token)
    try:
        with subscribe(server, token) as ws, api(server, token) as c:
            job_id = submit(c, xml)
            frames = events_until(ws, job_ended(job_id), timeout=120)
            assert wait(c, job_id, ENDED)["status"] == "FINISHED"
        # The reader that kept up got every event: 1 submission (with the tasks' first
        # status), 2 per task (running, finished), 2 of the job.
        assert len(frames) == 1 + 2 * n + 2
        log = server.log.read_text()
        assert "does not keep up" in log
        # The server let go of the stuck one: reading now reaches the end of the stream
        # (a close frame saying why, if it was taken in time, else a dropped connection).
        stuck.settimeout(30)
        received = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := stuck.recv(65536):
                received += chunk
        assert b"too slow" in received or "it does not read" in server.log.read_text()
    finally:
        stuck.close()


def test_kill_is_committed_when_it_answers_and_events_say_so(server: Server) -> None:
    token = server.login("alice", "alice-pw")
    pid_file = server.root / f"pid-{uuid.uuid4().hex}"
    xml = job_xml(
        [
            {"name": "s", "bash": f"echo $$ > {pid_file}; exec sleep 60"},
            {"name": "t", "depends": ["s"]},
        ]
    )
    with subscribe(server, token) as ws, api(server, token) as c:
        job_id = submit(c, xml)
        events_until(ws, lambda e: e["data"].get("taskStatus") == "RUNNING")
        deadline = time.monotonic() + 30
        while not (pid_file.exists() and pid_file.read_text().strip()):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        pid = int(pid_file.read_text())
        assert c.put(f"/scheduler/jobs/{job_id}/kill").json() is True
        # Committed when answered: no polling needed.
        assert c.get(f"/scheduler/jobs/{job_id}/info").json()["status"] == "KILLED"
        s = c.get(f"/scheduler/jobs/{job_id}/tasks/s").json()["taskInfo"]
        t = c.get(f"/scheduler/jobs/{job_id}/tasks/t").json()["taskInfo"]
        assert s["taskStatus"] == "ABORTED" and "killed by user" in s["statusReason"]
        assert t["taskStatus"] == "NOT_STARTED"
        # Events in ProActive's order: the job's end, then ABORTED, then NOT_STARTED.
        frames = events_until(ws, lambda e: e["data"].get("taskStatus") == "NOT_STARTED")
        states = [f["data"].get("taskStatus") or f["data"]["status"] for f in frames]
        assert states[-3:] == ["KILLED", "ABORTED", "NOT_STARTED"]
        # Again: 409 with ProActive's exception; a task kill says what the task is.
        again = c.put(f"/scheduler/jobs/{job_id}/kill")
        assert again.status_code == 409
        assert again.json()["exceptionClass"].endswith("JobAlreadyFinishedRestException")
        task_kill = c.put(f"/scheduler/jobs/{job_id}/tasks/s/kill")
        assert task_kill.status_code == 409 and "ABORTED" in task_kill.json()["errorMessage"]
        # The process got TERM (and KILL if needed): it is gone.
        deadline = time.monotonic() + 30
        while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline, "the killed task's process is still there"
            time.sleep(0.05)


def test_reconnect_after_server_restart(server: Server) -> None:
    token = server.login("alice", "alice-pw")
    ws = subscribe(server, token)
    try:
        assert server.kill(signal.SIGTERM) == 0
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                next_frame(ws, heartbeats=True)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    finally:
        ws.close()
        server.start()
    # The same session works after the restart (tokens are signed, not in memory).
    with subscribe(server, token) as ws2, api(server, token) as c:
        job_id = submit(c, job_xml([{"name": "a", "bash": "true"}]))
        frames = events_until(ws2, job_ended(job_id))
    assert frames[0]["action"] == "JOB_SUBMITTED" and frames[-1]["data"]["status"] == "FINISHED"

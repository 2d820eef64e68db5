"""The CLI's events source falls back to polling when the server's socket will not open.

A real HTTP server (the standard library's, in a thread) that answers the job's info but
refuses the WebSocket upgrade with a 404, as an older server or a proxy would: the watch
must still see the job end, by polling. (The socket path itself is tested against a real
simple-scheduler in test_client_cli.py.)
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from simple_scheduler.client.eventsource import events_url, open_source
from simple_scheduler.client.rest import Rest
from simple_scheduler.client.session import Session
from simple_scheduler.client.watch import PollingSource, watch

INFO = {
    "jobId": {"id": 7, "readableName": "j"},
    "status": "FINISHED",
    "numberOfFailedTasks": 0,
    "numberOfFaultyTasks": 0,
}


class _Handler(BaseHTTPRequestHandler):
    paths: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.paths.append(self.path)
        if self.path == "/rest/scheduler/jobs/7/info":
            body = json.dumps(INFO).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def old_server() -> Iterator[str]:
    _Handler.paths = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_events_url() -> None:
    assert events_url("http://h:8000") == "ws://h:8000/rest/scheduler/events"
    assert events_url("https://h") == "wss://h/rest/scheduler/events"


def test_a_refused_socket_falls_back_to_polling(old_server: str) -> None:
    with Rest(Session(old_server, token="t.o.k")) as rest:
        source = open_source(rest, 7)
        assert isinstance(source, PollingSource)
        info = watch(source, lambda _: None)
    assert info["status"] == "FINISHED"
    # It did try the socket first, then read the info over HTTP.
    assert _Handler.paths[0] == "/rest/scheduler/events"
    assert "/rest/scheduler/jobs/7/info" in _Handler.paths

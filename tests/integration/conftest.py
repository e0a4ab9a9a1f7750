"""Fixtures of the lab integration tests (the lab itself and `db` are in tests/conftest.py)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from twinsite.lab.topology import Lab


@pytest.fixture
def hook(lab: Lab) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A real webhook on the lab's uplink (reachable from the lab hosts): its URL, and the alerts it got."""
    got: list[dict[str, Any]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    srv = ThreadingHTTPServer((lab.uplink_address, 0), Hook)  # reachable from the lab hosts
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://{lab.uplink_address}:{srv.server_address[1]}/hook", got
    srv.shutdown()

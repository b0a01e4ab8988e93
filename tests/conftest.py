"""Shared fixtures: loopback HTTP servers (a payload, a folder), a real browser, a seeded tiny classifier."""

from __future__ import annotations

import http.server
import os
import shutil
import threading
from pathlib import Path

import pytest


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.payload`` at any path; honours ``Range: bytes=N-``.

    ``server.drop_after``: if set, the first response announces the full length but the
    connection is closed after that many body bytes (an interrupted transfer).
    """

    def log_message(self, *args):
        pass

    def do_GET(self):
        payload = self.server.files.get(self.path, self.server.payload)
        self.server.requests.append(dict(self.headers))
        start = 0
        range_header = self.headers.get("Range")
        if range_header and self.server.honour_range:
            start = int(range_header.split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(payload) - 1}/{len(payload)}")
        else:
            self.send_response(200)
        body = payload[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.server.drop_after is not None:
            cut, self.server.drop_after = self.server.drop_after, None
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def file_server():
    """Start a server on 127.0.0.1; yields it (set .payload, or .files {"/name": bytes};
    .drop_after; read .requests)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.payload = b""
    server.files = {}
    server.drop_after = None
    server.honour_range = True
    server.requests = []
    server.url = f"http://127.0.0.1:{server.server_address[1]}/archive.zip"
    server.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def seeded_cnn():
    """``seeded_cnn(image_size)``: the two-class catsdogs CNN, seed 0, normalising with
    mean 0.5 / std 0.25, in eval mode (the small model the explainer tests share)."""
    import torch

    from xaibench.models import NormalizedClassifier, build_model

    def build(image_size: int):
        torch.manual_seed(0)
        return NormalizedClassifier(build_model("catsdogs_cnn", 2, image_size), [0.5] * 3, [0.25] * 3).eval()

    return build


def pytest_collection_modifyitems(config, items):
    """The slow tests (the whole DAG in a temporary copy) first: under `make test`
    (pytest-xdist, one file per worker) they start at once on one worker while the other
    runs the rest, so the suite takes about as long as the DAG test alone."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


# --- A real browser: Debian's chromium driven by Playwright (the report's and the docs' tests).

BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str | None:
    """$XAIBENCH_CHROMIUM, else Debian's `chromium` (or `chromium-browser`) on PATH."""
    for name in (os.environ.get("XAIBENCH_CHROMIUM"), "chromium", "chromium-browser"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


@pytest.fixture(scope="module")
def browser():
    path = chromium_path()
    if path is None:
        message = ("Chromium not found: the report's browser test drives Debian's chromium package "
                   "(sudo apt-get install -y chromium), or set XAIBENCH_CHROMIUM to a Chromium binary")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=path, args=BROWSER_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def serve():
    """serve(folder) -> http://127.0.0.1:<port>, a loopback server of that folder."""
    import functools
    import http.server
    import threading

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    servers = []

    def start(folder: Path) -> str:
        handler = functools.partial(QuietHandler, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()

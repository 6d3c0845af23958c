"""A served dashboard and Debian's Chromium, shared by the real-browser tests and the browser benches."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, process: subprocess.Popen, timeout: float = 60) -> None:
    """Poll the server's health endpoint until it answers 200; raise if it exits or never answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)  # polling a readiness endpoint, not sleeping for luck
    raise TimeoutError("server did not become healthy")


def wait_workers_gone(root: Path, timeout: float = 30) -> None:
    """Wait until no worker of the cache at `root` is alive (the pool follows its server)."""
    from engine.jobs import queue
    from engine.store.db import Store

    store = Store(root)
    deadline = time.monotonic() + timeout
    while queue.live_workers(store, within_seconds=3) and time.monotonic() < deadline:
        time.sleep(0.2)


@contextmanager
def served(root: Path, workers: int = 1, timing_log: Path | None = None) -> Iterator[tuple[str, int, int]]:
    """The dashboard on a free loopback port with its cache at `root` and its own worker pool:
    yields (url, port, the server's pid); on exit stops the server and waits for its workers to follow.
    With `timing_log`, every script run's seconds are written there (bench.timed_server)."""
    port = free_port()
    env = {**os.environ, "AER_CACHE_DIR": str(root), "AER_WORKERS": str(workers)}
    streamlit = ["bench.timed_server", str(timing_log)] if timing_log else ["streamlit"]
    process = subprocess.Popen(
        [sys.executable, "-m", *streamlit, "run", "app.py", "--server.port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process)
        yield url, port, process.pid
    finally:
        process.terminate()
        process.wait(timeout=20)
        wait_workers_gone(root)


@contextmanager
def chromium():
    """Debian's Chromium under Playwright, headless (never a downloaded browser)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()

"""A classroom on one server: 20 Chromium sessions on one served dashboard, quiet and beside a running job.

Each session is its own browser context (its own Streamlit session): a student opens the link within
the lesson's first ten seconds, then clicks through every page in the sidebar, reading each for 2–6 s,
in an order rotated by their number so the class spreads over the pages as a real one does, and ends
in the Playground, whose attack waits its turn in the server's line. Meanwhile a thread polls the
health endpoint and the server's resident memory, and the server logs each script run's seconds.

Chromium runs at the lowest CPU priority (nice 19): in a classroom the browsers are the students'
laptops, not the server's cores. Three times per page, each a p50 / p95 / max: `script` (the server's
own run of the page, logged by bench.timed_server) is the figure held to the 5 s target; `served`
(from the browser's request for a run to the run's last message, read off the websocket) adds the
delivery to browsers that share this machine's two cores; `drawn` (click to title drawn and run
finished) adds twenty renderers starved at nice 19, which students' own laptops do not have.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import tempfile
import threading
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from bench.browser import CHROMIUM, FLAGS, served

SESSIONS = 20
ARRIVALS_S = 10.0
"""Students open the link within the first ten seconds of the lesson, each at a time of their own."""
READING_S = (2.0, 6.0)
"""Seconds a student looks at a page before clicking the next (drawn uniformly, seeded per student)."""
TITLES = {
    "Home": "AER Lab",
    "Papers": "Papers, reproduced small",
    "Surface": "Robust accuracy over sparsity × ε",
    "Compare": "Compare pruning runs",
    "Layers": "Layer by layer",
    "Budget": "Adversarial budgets while pruning",
    "Transfer": "Transfer from the base model",
    "Runs": "Runs",
    "Playground": "Attack playground",
}
"""Each page's link in the sidebar and the title it draws."""
TIMEOUT_MS = 180_000


def resident_mb(pid: int) -> float:
    """A process's resident memory in MB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Watch:
    """Polls the health endpoint (its slowest answer) and the server's memory (its peak) until stopped."""

    def __init__(self, url: str, pid: int):
        self.url, self.pid = url, pid
        self.health_max_s, self.peak_mb, self.stop = 0.0, resident_mb(pid), threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self.stop.wait(0.25):
            started = time.perf_counter()
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=60):
                    pass
            except OSError:
                pass  # counted by its time, which hit the timeout
            self.health_max_s = max(self.health_max_s, time.perf_counter() - started)
            self.peak_mb = max(self.peak_mb, resident_mb(self.pid))

    def __enter__(self) -> Watch:
        self.thread.start()
        return self

    def __exit__(self, *_) -> None:
        self.stop.set()
        self.thread.join()


@contextmanager
def niced_chromium(folder: Path):
    """Debian's Chromium at the lowest priority (the students' laptops, not the server's cores), through a
    wrapper Playwright starts like the browser."""
    wrapper = folder / "chromium-niced"
    wrapper.write_text(f'#!/bin/sh\nexec nice -n 19 {CHROMIUM} "$@"\n')
    wrapper.chmod(0o755)
    yield str(wrapper)


class Finishes:
    """One session's websocket, read: when the browser asked for a script run and when the server reported
    it finished, so a page's server time excludes whatever kept the browser from asking sooner."""

    def __init__(self) -> None:
        self.asked_at, self.served, self.changed = 0.0, [0.0], asyncio.Event()

    def sent(self, payload: str | bytes) -> None:
        from streamlit.proto.BackMsg_pb2 import BackMsg

        if isinstance(payload, bytes) and BackMsg.FromString(payload).WhichOneof("type") == "rerun_script":
            self.asked_at = time.perf_counter()

    def received(self, payload: str | bytes) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        if isinstance(payload, bytes):
            message = ForwardMsg.FromString(payload)
            if message.WhichOneof("type") == "script_finished" and message.script_finished == 0:  # successfully
                self.served.append(time.perf_counter() - self.asked_at)
                self.changed.set()

    def watch(self, socket) -> None:
        """Read this socket's frames both ways."""
        socket.on("framesent", self.sent)
        socket.on("framereceived", self.received)

    async def after(self, count: int) -> float:
        """Once more than `count` runs have finished, the server's seconds for the last."""
        while len(self.served) <= count:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), TIMEOUT_MS / 1000)
        return self.served[-1]


async def drawn(page, link: str) -> None:
    """Wait until the page behind `link` has drawn its title and finished its script run."""
    await page.get_by_role("heading", name=TITLES[link]).first.wait_for(timeout=TIMEOUT_MS)
    if link == "Playground":
        await page.get_by_text("image(s) in").first.wait_for(timeout=TIMEOUT_MS)
    await page.locator('[data-test-script-state="notRunning"]').first.wait_for(timeout=TIMEOUT_MS)


async def session(browser, url: str, number: int, times: dict[str, dict[str, list[float]]]) -> None:
    """One student: opens the app (timed as "open"), then clicks through every page in the sidebar, from
    a starting page of their own, ending in the Playground, where an attack runs. Each page is timed
    twice: from the browser's request to the server's last message of its script run (the server's
    time), and from the click to its title drawn in the browser."""
    links = [name for name in TITLES if name not in ("Home", "Playground")]
    order = links[number % len(links) :] + links[: number % len(links)] + ["Home", "Playground"]
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    finishes = Finishes()
    page.on("websocket", finishes.watch)
    reading = random.Random(number)
    await asyncio.sleep(reading.uniform(0, ARRIVALS_S) if number else 0)
    try:
        for link in ["open", *order]:
            if link != "open":
                await asyncio.sleep(reading.uniform(*READING_S))
            started, count = time.perf_counter(), len(finishes.served)
            if link == "open":
                await page.goto(url, timeout=TIMEOUT_MS)
            else:
                await (
                    page.get_by_test_id("stSidebarNav")
                    .get_by_role("link", name=link, exact=True)
                    .click(timeout=TIMEOUT_MS)
                )
            served_s = await finishes.after(count)
            await drawn(page, "Home" if link == "open" else link)
            times["server"].setdefault(link, []).append(served_s)
            times["drawn"].setdefault(link, []).append(time.perf_counter() - started)
    finally:
        await context.close()


async def classroom(url: str, executable: str, sessions: int = SESSIONS) -> dict[str, dict[str, list[float]]]:
    """`sessions` students at once; each page's times, served and drawn."""
    from playwright.async_api import async_playwright

    times: dict[str, dict[str, list[float]]] = {"server": {}, "drawn": {}}
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=executable, args=FLAGS)
        try:
            await asyncio.gather(*(session(browser, url, i, times) for i in range(sessions)))
        finally:
            await browser.close()
    return times


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0–1) of `values`, interpolated."""
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1] if len(values) > 1 else values[0]


def prepared(root: Path) -> str:
    """A cache holding one finished teaching run (every page has something to draw); its id."""
    from engine import api

    os.environ["AER_CACHE_DIR"] = str(root)
    api.forget_stores()
    return api.run(api.load_spec(preset="teaching"), api.open_store(root))["run_id"]


def start_job(root: Path) -> None:
    """Queue four teaching runs of other seeds: the served worker pool runs them, one after another,
    throughout the class."""
    from engine import api

    store = api.open_store(root)
    for seed in (1, 2, 3, 4):
        api.submit(api.load_spec(preset="teaching", overrides=[f"seed={seed}"]), store)


def measure(root: Path, busy: bool, folder: Path) -> dict:
    """One class on a fresh server: page times, the slowest health answer, server memory."""
    from engine import api
    from engine.jobs import queue

    log = folder / f"script-runs-{'busy' if busy else 'quiet'}.txt"
    with served(root, timing_log=log) as (url, _, pid), niced_chromium(folder) as executable:
        asyncio.run(classroom(url, executable, sessions=1))  # the server's imports, caches and pool warm
        log.write_text("")
        if busy:
            start_job(root)
            store = api.open_store(root)
            while not any(j.status == "running" for j in queue.jobs(store)):
                time.sleep(0.2)  # waiting for the pool to claim the job, not for luck
        idle_mb = resident_mb(pid)
        with Watch(url, pid) as watch:
            started = time.perf_counter()
            times = asyncio.run(classroom(url, executable, SESSIONS))
            seconds = time.perf_counter() - started
        running = busy and any(j.status == "running" for j in queue.jobs(api.open_store(root)))
    runs = [float(line) for line in log.read_text().split()]
    return {
        "script_runs": len(runs),
        "script_p50_s": round(statistics.median(runs), 2),
        "script_p95_s": round(percentile(runs, 0.95), 2),
        "script_max_s": round(max(runs), 2),
        **summary(times["server"], "served"),
        **summary(times["drawn"], "drawn"),
        "health_max_s": round(watch.health_max_s, 2),
        "server_warm_mb": round(idle_mb),
        "server_peak_mb": round(watch.peak_mb),
        "mb_per_session": round((watch.peak_mb - idle_mb) / SESSIONS, 1),  # above the server warmed by one
        "class_s": round(seconds, 1),
        "job_ran_throughout": running if busy else None,
    }


def summary(times: dict[str, list[float]], what: str) -> dict:
    """p50, p95 and max over every page, the Playground's p95 and the slowest page's name."""
    every = [t for page_times in times.values() for t in page_times]
    return {
        f"{what}_pages": len(every),
        f"{what}_p50_s": round(statistics.median(every), 2),
        f"{what}_p95_s": round(percentile(every, 0.95), 2),
        f"{what}_max_s": round(max(every), 2),
        f"{what}_playground_p95_s": round(percentile(times["Playground"], 0.95), 2),
        f"{what}_slowest_page": max(times, key=lambda p: percentile(times[p], 0.95)),
        f"{what}_p95_by_page_s": {p: round(percentile(t, 0.95), 2) for p, t in sorted(times.items())},
    }


def run() -> dict:
    """The class quiet and beside a running job."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "cache"
        prepared(root)
        quiet = measure(root, busy=False, folder=Path(folder))
        busy = measure(root, busy=True, folder=Path(folder))
    return {"sessions": SESSIONS, **{f"quiet_{k}": v for k, v in quiet.items()}} | {
        f"busy_{k}": v for k, v in busy.items()
    }

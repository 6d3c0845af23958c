"""The teaching demo as a user meets it: the dashboard served with its worker pool, Chromium on Home,
one click on "Run teaching", then the Surface page until every checkpoint is drawn; and the tour: one
click on "Take the tour", then Home until every run is done, each Explore view filled.

Measures seconds from the click to the first checkpoint visible on Surface and to the full surface,
and where those seconds went, read from the store's own timestamps (queue, worker start and data,
base training, per step: pruning and fine-tuning, attacks, other evaluation, efficiency measurement
and store; and the page's redraw delay). Run once on a quiet machine and once beside a process that
keeps one core busy (a laptop running a browser), so the two can be set side by side. For the tour:
seconds from the click to each view's run done (read from the store), to Home showing all done, and
the tour's estimate on the button for comparison.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from bench.browser import chromium, served

PRESET = "teaching"
TIMEOUT_MS = 600_000


@contextmanager
def busy_core(enabled: bool):
    """A process spinning on one core for the duration (a browser tab, a build), when enabled."""
    process = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if enabled else None
    try:
        yield
    finally:
        if process is not None:
            process.kill()
            process.wait()


def click_to_surface(url: str) -> tuple[float, float, float]:
    """(wall time of the click, seconds to the first checkpoint on Surface, seconds to every checkpoint)."""
    with chromium() as browser:
        page = browser.new_page()
        page.goto(url)
        button = page.get_by_role("button", name=f"Run {PRESET}")
        button.wait_for(timeout=60_000)
        clicked = time.time()
        button.click()
        page.get_by_role("link", name="Open its surface").click(timeout=TIMEOUT_MS)
        page.get_by_text(re.compile(r"^[1-9]\d* of \d+ checkpoints evaluated$")).wait_for(timeout=TIMEOUT_MS)
        first = time.time() - clicked
        page.get_by_text(re.compile(r"^(\d+) of \1 checkpoints evaluated$")).wait_for(timeout=TIMEOUT_MS)
        return clicked, first, time.time() - clicked


def phases(root: Path, clicked: float, first: float, full: float) -> dict[str, float]:
    """Where the seconds from the click went, from the store's timestamps and per-phase timings."""
    from engine.store.db import Store

    store = Store(root)
    with store.atomic() as db:
        job = db.execute("SELECT * FROM jobs ORDER BY job_id LIMIT 1").fetchone()
        run = db.execute("SELECT * FROM runs WHERE run_id = ?", (job["run_id"],)).fetchone()
        base = db.execute("SELECT * FROM bases WHERE base_id = ?", (run["base_id"],)).fetchone()
        steps = db.execute("SELECT * FROM steps WHERE run_id = ? ORDER BY step", (run["run_id"],)).fetchall()
        attacks = db.execute(
            "SELECT sum(seconds) FROM (SELECT DISTINCT step, attack, seconds FROM robust WHERE run_id = ?)",
            (run["run_id"],),
        ).fetchone()[0]
    walk_start = base["created_at"]
    walk = steps[-1]["finished_at"] - walk_start
    train = sum(s["train_seconds"] for s in steps)
    evaluation = sum(s["eval_seconds"] for s in steps)
    return {
        "click_to_queued": job["created_at"] - clicked,
        "queued_to_claimed": job["started_at"] - job["created_at"],
        "worker_start_and_data": run["created_at"] - job["started_at"],
        "base_training": base["train_seconds"],
        "base_store": walk_start - run["created_at"] - base["train_seconds"],
        "pruning_and_finetuning": train,
        "attacks": attacks or 0.0,
        "other_evaluation": evaluation - (attacks or 0.0),
        "efficiency_and_store": walk - train - evaluation,
        "page_first_redraw": first - (steps[0]["finished_at"] - clicked),
        "page_last_redraw": full - (steps[-1]["finished_at"] - clicked),
    }


TOUR_DONE = re.compile(r"^(The cliff on the surface|MRS heat map|Magnitude vs|AP and BAP).* · done")


def click_to_tour(url: str, root: Path) -> dict[str, float]:
    """Seconds from the click on "Take the tour" to each view filled (its last run done, from the
    store's timestamps) and to Home showing every run done; the button's estimate beside them."""
    from playwright.sync_api import expect

    from engine import api

    estimate = api.tour(api.open_store(root)).seconds
    with chromium() as browser:
        page = browser.new_page()
        page.goto(url)
        button = page.get_by_role("button", name="Take the tour")
        button.wait_for(timeout=60_000)
        clicked = time.time()
        button.click()
        expect(page.get_by_text(TOUR_DONE)).to_have_count(5, timeout=1_800_000)
        seen = time.time() - clicked
    store = api.open_store(root)
    with store.atomic() as db:
        jobs = db.execute("SELECT job_id, finished_at FROM jobs ORDER BY job_id").fetchall()
    views = api.tour(store).views
    filled: dict[str, float] = {}
    for view, job in zip(views, jobs):
        filled[view] = max(filled.get(view, 0.0), job["finished_at"] - clicked)
    return {f"tour_{view}_s": round(seconds, 1) for view, seconds in filled.items()} | {
        "tour_every_view_s": round(max(filled.values()), 1),
        "tour_home_all_done_s": round(seen, 1),
        "tour_estimate_s": round(estimate, 1),
    }


def measure_tour(busy: bool) -> dict:
    """One cold tour from a click in Chromium, on a fresh cache."""
    with tempfile.TemporaryDirectory() as folder, busy_core(busy):
        root = Path(folder)
        with served(root) as (url, *_):
            return click_to_tour(url, root)


def measure(busy: bool) -> dict:
    """One cold teaching run from a click in Chromium: the two waits and their breakdown."""
    with tempfile.TemporaryDirectory() as folder, busy_core(busy):
        root = Path(folder)
        with served(root) as (url, *_):
            clicked, first, full = click_to_surface(url)
        breakdown = phases(root, clicked, first, full)
    return {"first_curve_s": round(first, 1), "full_surface_s": round(full, 1)} | {
        f"phase_{name}_s": round(value, 1) for name, value in breakdown.items()
    }


def run() -> dict:
    """The teaching demo and the tour quiet, then beside one busy core: seconds, breakdowns and the
    busy / quiet ratios."""
    quiet, busy = measure(busy=False), measure(busy=True)
    tour_quiet, tour_busy = measure_tour(busy=False), measure_tour(busy=True)
    return {
        **quiet,
        "busy_full_surface_s": busy["full_surface_s"],
        "busy_first_curve_s": busy["first_curve_s"],
        "busy_over_quiet": round(busy["full_surface_s"] / quiet["full_surface_s"], 2),
        **tour_quiet,
        "busy_tour_every_view_s": tour_busy["tour_every_view_s"],
        "tour_busy_over_quiet": round(tour_busy["tour_every_view_s"] / tour_quiet["tour_every_view_s"], 2),
        "busy": busy,
        "tour_busy": tour_busy,
    }

"""How good the cost estimate is: presets queued one after another into an empty cache, each
estimated when queued (from the runs before it; the first on the rough guess scaled by this machine's
probe) and then run by a worker; then a paper preset's variants queued together, as the Papers page
queues them. Prints each job's estimate beside the actual seconds and the median |relative error| over
every job, the first run on the fresh cache included.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

PRESETS = ("smoke", "teaching", "quickstart")
PAPER = "transfer"


def run(presets: tuple[str, ...] = PRESETS, paper: str | None = PAPER) -> dict:
    """Estimate, run and compare each preset in turn, then a paper preset's variants; the median
    |relative error| over all of them, and over the runs before the paper preset."""
    from engine import api
    from engine.jobs.worker import Worker
    from engine.store.db import Store

    labels = list(presets)
    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder))
        for name in presets:
            api.submit(api.load_spec(preset=name), store)
            Worker(store).serve(exit_when_idle=True)
        if paper:
            labels += [f"{paper}: {label}" for label in api.paper_specs(paper)]
            api.submit_paper(paper, store)
            Worker(store).serve(exit_when_idle=True)
        errors = api.estimate_errors(store)
    rows = [
        {"run": label, "estimate_s": round(e, 1), "actual_s": round(a, 1), "relative_error": round(r, 2)}
        for label, e, a, r in zip(
            labels, errors["estimate_seconds"], errors["actual_seconds"], errors["relative_error"]
        )
    ]
    every = [abs(row["relative_error"]) for row in rows]
    return {
        "runs": rows,
        "median_abs_error": round(statistics.median(every), 2) if every else None,
        "first_run_abs_error": every[0] if every else None,
        "presets_median_abs_error": round(statistics.median(every[: len(presets)]), 2) if presets else None,
    }

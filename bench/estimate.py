"""How good the cost estimate is: presets queued one after another into an empty cache, each
estimated (from the runs before it) when queued and then run by a worker; prints each estimate
beside the actual seconds and the median relative error. The first preset runs on the rough guess.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

PRESETS = ("smoke", "teaching", "quickstart")


def run(presets: tuple[str, ...] = PRESETS) -> dict:
    """Estimate, run and compare each preset in turn; the median |relative error| after the first."""
    from engine import api
    from engine.jobs.worker import Worker
    from engine.store.db import Store

    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder))
        for name in presets:
            api.submit(api.load_spec(preset=name), store)
            Worker(store).serve(exit_when_idle=True)
        errors = api.estimate_errors(store)
    rows = [
        {"preset": name, "estimate_s": round(e, 1), "actual_s": round(a, 1), "relative_error": round(r, 2)}
        for name, e, a, r in zip(
            presets, errors["estimate_seconds"], errors["actual_seconds"], errors["relative_error"]
        )
    ]
    learnt = [abs(row["relative_error"]) for row in rows[1:]]
    return {"runs": rows, "median_abs_error": round(statistics.median(learnt), 2) if learnt else None}

"""Benchmarks: `python -m bench [PRESET ...]` times presets cold and cached through the CLI;
`python -m bench --drill 20` kills a worker 20 times in one run and reports what survived.

Prints numbers (seconds, ratios, counts); nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def timed_cli(*args: str) -> tuple[float, dict]:
    """Run `python -m engine ARGS --json` and return (wall seconds, parsed document)."""
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "engine", *args, "--json"], cwd=REPO, check=True,
                         capture_output=True, text=True)
    return time.perf_counter() - started, json.loads(out.stdout)


def preset_cold_and_hit(preset: str) -> dict:
    """Seconds for a preset from an empty cache, then again from the cache."""
    with tempfile.TemporaryDirectory() as root:
        cold, doc = timed_cli("--cache-dir", root, "run", "--preset", preset, "--quiet")
        hit, again = timed_cli("--cache-dir", root, "run", "--preset", preset, "--quiet")
    assert again["cached"] and not doc["cached"]
    return {"preset": preset, "cold_s": round(cold, 1), "hit_s": round(hit, 2), "cold_over_hit": round(cold / hit, 1),
            "points": [(p["sparsity"], p["clean_acc"], [r["acc"] for r in p["robust"]]) for p in doc["points"]]}


def main() -> None:
    """Run the chosen benchmarks and print one JSON line each."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("presets", nargs="*", default=["quickstart"], help="presets to time cold and cached")
    parser.add_argument("--drill", type=int, metavar="KILLS", help="run the crash drill with this many kill -9s")
    args = parser.parse_args()
    if args.drill:
        from bench.drill import run_drill

        print(json.dumps({"drill": run_drill(args.drill)}))
        return
    for preset in args.presets:
        print(json.dumps(preset_cold_and_hit(preset)))


if __name__ == "__main__":
    main()

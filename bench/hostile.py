"""Hostile-input drill: every case of the hostile-input issue through the real CLI, one process each.

Each case runs `python -m engine …` in a fresh process on a cache of its own and is judged as a user
sees it: a clean refusal is exit 1 or 2 with one or two lines on stderr, no traceback, no echo of the
refused file's content, within 30 s. Wall time and peak resident memory (the whole process, Python's
start and imports included) are measured per case; the drill prints the counts and the maxima.
Generated trees (hostile leaves at random paths of the teaching preset) run in this process, timed
per refusal. Run it with `python -m bench --hostile`.
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "tests" / "data" / "hostile"
SECRETS = ("hunter2", "saltsalt", "secret-token", "pwned", "lol")
HANG_SECONDS = 30.0


@dataclass
class Outcome:
    """One case as the user saw it."""

    case: str
    code: int | None
    lines: list[str]
    seconds: float
    peak_mb: float

    @property
    def clean(self) -> bool:
        """Exit 1 or 2, one or two lines, no traceback, nothing of the refused content echoed."""
        text = "\n".join(self.lines)
        return (
            self.code in (1, 2)
            and 1 <= len(self.lines) <= 2
            and "Traceback" not in text
            and not any(secret in text for secret in SECRETS)
        )


def engine_process(case: str, argv: list[str], env: dict[str, str] | None = None) -> Outcome:
    """Run `python -m engine ARGV`; its exit code (None: killed after 30 s), stderr lines, wall seconds
    and peak RSS (from wait4, so of this one process)."""
    with tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "engine", *argv],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, **(env or {})},
        )
        hung = False
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - started > HANG_SECONDS and not hung:
                proc.kill()
                hung = True
            time.sleep(0.005)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
        err.seek(0)
        lines = err.read().decode(errors="replace").strip().splitlines()
    return Outcome(case, None if hung else proc.returncode, lines, seconds, usage.ru_maxrss / 1024)


def spec_files(folder: Path) -> dict[str, Path]:
    """The corpus, the files too large to keep in the repository, and things that are not files."""
    files = {f"corpus/{p.name}": p for p in sorted(CORPUS.iterdir())}
    big = {
        "a 1.2 MB list": "eval: {attacks: [" + ",".join(["0.1"] * 300_000) + "]}\n",
        "a 50 MB list": "eval: {attacks: [" + ",".join(["0.1"] * 12_500_000) + "]}\n",
        "100,000 one-shot targets": "schedule: {name: one_shot, targets: ["
        + ",".join(f"{i / 200_000:.6f}" for i in range(1, 100_000))
        + "]}\n",
    }
    for index, (name, text) in enumerate(big.items()):
        files[name] = folder / f"big-{index}.yaml"
        files[name].write_text(text)
    os.mkfifo(folder / "fifo")
    os.symlink("/dev/zero", folder / "zero-link.yaml")
    files |= {
        "/dev/zero": Path("/dev/zero"),
        "a FIFO": folder / "fifo",
        "a link to /dev/zero": folder / "zero-link.yaml",
        "a folder": folder,
        "a missing file": folder / "missing.yaml",
        "/etc/shadow": Path("/etc/shadow"),
    }
    return files


OVERRIDES = [
    "eval.attacks.0.eps.1.x=1",
    "eval.attacks.7.eps=[0.1]",
    "eval.attacks.0.eps=[0, .nan]",
    "eval.attacks.0.eps=[0, .inf]",
    "eval.attacks.0.eps=[0, -.inf]",
    "eval.attacks.0.step_size=.inf",
    "eval.attacks.0.steps=-1",
    "eval.attacks.0.steps=1e12",
    "schedule.power=.inf",
    "schedule.end=1000000000",
    "schedule.final_sparsity=.nan",
    "schedule.final_sparsity=1.5",
    "prune.finetune_steps=1000000000000",
    "train.lr=1.0e999",
    "train.lr=-1",
    "train.epochs=99999999",
    "eval.n_samples=0",
    "seed=" + "9" * 5000,
    "seed=-1",
    "seed=" + "[" * 100 + "]" * 100,
    ".".join(["a"] * 40) + "=1",
    "model.name=../../etc/passwd",
    "model.name='; DROP TABLE runs; --",
    "dataset.name={{7*7}}",
    "eval=[]",
    "schedule=null",
    "=1",
    "noequals",
]


OPTION_CASES = [
    "{name: apgd_t, eps: [0, 0.1], options: {n_classes: 0}}",
    "{name: apgd_t, eps: [0, 0.1], options: {n_classes: -5}}",
    "{name: apgd_t, eps: [0, 0.1], options: {n_classes: 5}}",
    "{name: apgd_t, eps: [0, 0.1], options: {n_classes: abc}}",
    "{name: autoattack, eps: [0, 0.01], options: {n_classes: 1}}",
    "{name: deepfool, eps: [0, 3.0], options: {overshoot: -5}}",
    "{name: deepfool, eps: [0, 3.0], options: {overshoot: 1e308}}",
    "{name: square, eps: [0, 0.1], options: {n_queries: 1e12}}",
    "{name: square, eps: [0, 0.1], options: {n_queries: many}}",
    "{name: apgd_ce, eps: [0, 0.1], options: {n_restarts: 1e9}}",
    "{name: cw_l2, eps: [0, 1.0], options: {c: abc}}",
    "{name: cw_l2, eps: [0, 1.0], options: {lr: 1e308}}",
    "{name: smooth_pgd_l2, eps: [0, 0.25], options: {samples: 1e6}}",
    "{name: pgd_linf, eps: [0, 0.1], options: {search: '" + "x" * 5000 + "'}}",
    '{name: pgd_linf, eps: [0, 0.1], options: {search: "\\e[31mred\\nline"}}',
]
"""Attack options that made an attack vacuous, unbounded or a traceback after training (issue 29)."""

SMOOTH_10000 = "{name: smooth_pgd_l2, eps: [0, 0.25], options: {samples: 10000}}"


def spec_cases(folder: Path) -> list[tuple[str, list[str]]]:
    """(case, argv) for every spec file through `run` and `submit`, and every `--set`."""
    cases = []
    for name, path in spec_files(folder).items():
        cases += [(f"run {name}", ["run", str(path)]), (f"submit {name}", ["submit", str(path)])]
    cases += [(f"--set {o[:48]}", ["run", "--preset", "smoke", "--set", o]) for o in OVERRIDES]
    cases += [(f"options {o[:60]}", ["run", "--preset", "smoke", "--set", f"eval.attacks=[{o}]"]) for o in OPTION_CASES]
    cases += [
        ("64 seeds above the bound", ["submit", "--preset", "smoke", "--set", "eval.n_samples=500",
                                      "--set", "eval.attacks.0.steps=200", "--set", f"seed={list(range(64))}"]),
        ("MRPF probes above the bound", ["run", "--preset", "smoke", "--set", "prune.method=mrpf",
                                         "--set", "prune.mrs={ascent_steps: 1000, n_samples: 100000, batch_size: 1}"]),
        ("a batch too large for memory", ["run", "--preset", "smoke", "--set", "eval.batch_size=65536", "--set",
                                          f"eval.attacks=[{SMOOTH_10000}]"]),
    ]  # fmt: skip
    cases += [
        ("submit above the work bound", ["submit", "--preset", "smoke", "--set", "eval.n_samples=100000",
                                          "--set", "eval.attacks.0.steps=1000"]),
    ]  # fmt: skip
    return cases


def finished_cache(root: Path) -> str:
    """A cache holding one finished smoke run (the paths and damage cases need one); its run id."""
    out = subprocess.run(
        [sys.executable, "-m", "engine", "--cache-dir", str(root), "run", "--preset", "smoke", "--json", "--quiet"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)["run_id"]


def _other_cache(folder: Path) -> Path:
    """Another cache's aer.sqlite beside the one under test (export must never replace it)."""
    path = folder / "other-cache" / "aer.sqlite"
    path.parent.mkdir(exist_ok=True)
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE IF NOT EXISTS runs (run_id TEXT)")
    return path


def _symlink_loop(folder: Path) -> Path:
    """Two links that point at each other."""
    first, second = folder / "loop-a", folder / "loop-b"
    if not first.is_symlink():
        first.symlink_to(second)
        second.symlink_to(first)
    return first


def path_cases(root: Path, run_id: str, folder: Path) -> list[tuple[str, list[str], dict[str, str]]]:
    """(case, argv, env) for export targets, job ids and cache folders that are not what they should be."""
    cache = ["--cache-dir", str(root)]
    export = [*cache, "export", run_id[:12], "--format", "csv", "--out"]
    (folder / "a-file").write_text("x")
    targets = {
        "a folder": str(folder),
        "a missing folder": str(folder / "missing" / "out.csv"),
        "/dev/full": "/dev/full",
        "an empty path": "",
        "the store itself": str(root / "aer.sqlite"),
        "the store's log": str(root / "aer.sqlite-wal"),
        "a checkpoint": str(next((root / "runs").rglob("*.safetensors"))),
        "/proc/self/mem": "/proc/self/mem",
        "an existing file": str(folder / "a-file"),
        "another cache's database": str(_other_cache(folder)),
        "a symlink loop": str(_symlink_loop(folder) / "out.csv"),
        "a 300-character name": str(folder / ("x" * 300 + ".csv")),
    }
    cases: list[tuple[str, list[str], dict[str, str]]] = [
        (f"export onto {name}", [*export, target], {}) for name, target in targets.items()
    ]
    for text in ("99999999999999999999999", "-1", "0", "1e3", "abc", "9" * 5000):
        cases.append((f"status {text[:24]}", [*cache, "status", text], {}))
    for text in ("deadbeef", "'; DROP TABLE runs; --", "../../etc", "x" * 5000, ""):
        cases.append((f"show {text[:24]!r}", [*cache, "show", text], {}))
    for name, value in {"a file": str(folder / "a-file"), "/dev/null": "/dev/null", "/proc": "/proc/1"}.items():
        cases.append((f"AER_CACHE_DIR is {name}", ["ls"], {"AER_CACHE_DIR": value}))
    return cases


def break_database(root: Path, kind: str) -> None:
    """Damage a cache's aer.sqlite the way a disk, an editor or a bad copy does (`kind`: "truncated",
    "header" flipped, or replaced by "text"), after folding its write-ahead log into it."""
    path = root / "aer.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for suffix in ("-wal", "-shm"):
        (root / f"aer.sqlite{suffix}").unlink(missing_ok=True)
    if kind == "truncated":
        with open(path, "r+b") as handle:
            handle.truncate(4096)
    elif kind == "header":
        with open(path, "r+b") as handle:
            handle.write(b"NOT SQLITE AT ALL")
    else:
        path.write_text("this is a text file now\n")


def damage_cases(source: Path, run_id: str, folder: Path) -> list[tuple[str, list[str], dict[str, str]]]:
    """(case, argv, env): reading and running on damaged databases, before `doctor`."""
    cases: list[tuple[str, list[str], dict[str, str]]] = []
    for kind in ("truncated", "header", "text"):
        root = folder / kind
        shutil.copytree(source, root)
        break_database(root, kind)
        for argv in (["ls"], ["show", run_id[:12]], ["run", "--preset", "smoke"], ["jobs"]):
            cases.append((f"{kind}: {' '.join(argv)}", ["--cache-dir", str(root), *argv], {}))
    return cases


HOSTILE_LEAVES: list = [math.nan, math.inf, -math.inf, 10**30, -(10**30), -1, 0, 1e308, True, None, "", "x" * 20_000,
                        "../../etc/passwd", "'; DROP TABLE runs; --", [], {}, list(range(5000)), 2**70]  # fmt: skip


def leaf_paths(tree, prefix=()) -> list[tuple]:
    """Every path to a leaf (and to every section) of a raw tree."""
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else []
    paths = [prefix] if prefix else []
    for key, value in items:
        paths += leaf_paths(value, (*prefix, key))
    return paths


def generated_refusals(count: int, seed: int = 0) -> dict[str, float]:
    """`count` teaching trees with 1–3 hostile leaves through the validation every door uses, in this
    process: how many were refused, accepted, or broke (an exception other than a refusal)."""
    from engine import api
    from engine.errors import SpecError

    api.validate_trees(api.load_tree(preset="teaching"))  # the registries load once, outside the timing
    teaching, rng = api.load_tree(preset="teaching"), random.Random(seed)
    paths = leaf_paths(teaching)
    counts = {"tried": count, "refused": 0, "accepted": 0, "broke": 0, "max_seconds": 0.0}
    for _ in range(count):
        tree = teaching
        for _ in range(rng.randint(1, 3)):
            tree = with_leaf(tree, rng.choice(paths), rng.choice(HOSTILE_LEAVES))
        started = time.perf_counter()
        try:
            for spec in api.validate_trees(api.bounded(tree)):
                api.check_work(spec)
            counts["accepted"] += 1
        except SpecError:
            counts["refused"] += 1
        except Exception:  # noqa: BLE001 - counted: any other exception is a failure of the drill
            counts["broke"] += 1
        counts["max_seconds"] = max(counts["max_seconds"], time.perf_counter() - started)
    return counts


def with_leaf(tree, path: tuple, value):
    """A deep copy of `tree` with the value at `path` replaced (unchanged where an earlier change
    replaced a section on this path with a leaf)."""
    out = copy.deepcopy(tree)
    node = out
    try:
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    except (KeyError, IndexError, TypeError):
        pass
    return out


def drill(generated: int = 500) -> dict:
    """Run every case; print a line per unclean case and the totals; return the record."""
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="aer-hostile-") as tmp:
        folder = Path(tmp)
        (folder / "files").mkdir()
        for case, argv in spec_cases(folder / "files"):
            cache = folder / "cache" / str(len(outcomes))
            outcomes.append(engine_process(case, ["--cache-dir", str(cache), *argv]))
        source = folder / "finished"
        run_id = finished_cache(source)
        for case, argv, env in path_cases(source, run_id, folder / "files"):
            outcomes.append(engine_process(case, argv, env))
        for case, argv, env in damage_cases(source, run_id, folder / "damaged"):
            outcomes.append(engine_process(case, argv, env))
        show = [sys.executable, "-m", "engine", "--cache-dir", str(source), "show", run_id[:12]]
        store_intact = subprocess.run(show, cwd=REPO, capture_output=True).returncode == 0
    for outcome in outcomes:
        if not outcome.clean:
            print(f"  NOT CLEAN  {outcome.case}: exit {outcome.code}, {outcome.lines[-2:]}")
    record = {
        "cases": len(outcomes),
        "clean": sum(o.clean for o in outcomes),
        "hung": sum(o.code is None for o in outcomes),
        "max_seconds": round(max(o.seconds for o in outcomes), 2),
        "median_seconds": round(sorted(o.seconds for o in outcomes)[len(outcomes) // 2], 2),
        "max_peak_mb": round(max(o.peak_mb for o in outcomes)),
        "over_1s_or_200mb": [
            f"{o.case} ({o.seconds:.1f} s, {o.peak_mb:.0f} MB)" for o in outcomes if o.seconds > 1 or o.peak_mb > 200
        ],  # fmt: skip
        "store_intact_after_path_cases": store_intact,
        "generated": generated_refusals(generated),
    }
    print(json.dumps(record, indent=2))
    return record

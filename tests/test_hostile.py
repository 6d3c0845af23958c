"""Hostile input at every door: the corpus in tests/data/hostile/, files that are not files, `--set`
paths, generated trees with hostile leaves, and the Runs page's editor. Each must end in a clean
refusal (exit 2 or a page message) of a line or two, that never echoes the refused content, in
bounded time and memory, with nothing written to the store."""

from __future__ import annotations

import math
import os
import time
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engine.science.catalog  # noqa: F401  torch loads here once: the timed refusals time the refusal, not the import
from bench.hostile import leaf_paths, with_leaf
from engine import api
from engine.__main__ import main
from engine.errors import SpecError
from tests.support import REPO, page

CORPUS = sorted((REPO / "tests" / "data" / "hostile").iterdir())
SECRETS = ("hunter2", "saltsalt", "secret-token", "pwned", "lol")
SECONDS, BYTES = 5.0, 500e6  # generous: a refusal takes milliseconds and kilobytes


def refused(argv: list[str], root: Path, capsys, monkeypatch) -> list[str]:
    """Run the CLI in-process on a cache of its own: assert a clean, bounded refusal; its lines."""
    monkeypatch.setenv("AER_CACHE_DIR", str(root))  # main() sets it; restored after the test
    api.forget_stores()
    tracemalloc.start()
    started = time.perf_counter()
    try:
        code = main(["--cache-dir", str(root), *argv])
    finally:
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and seconds < SECONDS and peak < BYTES, (seconds, peak)
    if (root / "aer.sqlite").exists():
        assert api.open_store(root).runs() == []
    lines = err.strip().splitlines()
    assert 1 <= len(lines) <= 2, lines
    assert not any(secret in line for secret in SECRETS for line in lines), lines
    return lines


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_every_hostile_file_is_refused_in_a_line_or_two(path, tmp_path, capsys, monkeypatch):
    refused(["run", str(path)], tmp_path / "cache", capsys, monkeypatch)


@pytest.mark.parametrize("name", ["nan_eps.yaml", "billion_laughs.yaml", "wrong_type.yaml"])
def test_a_refused_file_loads_neither_torch_nor_pandas(name, tmp_path):
    """The refusal is the process's whole work: no torch, pandas or scipy import before it (each costs
    seconds and hundreds of MB), so `python -m engine run bad.yaml` answers in a fraction of a second."""
    import subprocess
    import sys

    code = (
        "import sys; from engine.__main__ import main; code = main(['--cache-dir', sys.argv[1], 'run', sys.argv[2]]); "
        "print(code, sorted(m for m in ('torch', 'pandas', 'scipy') if m in sys.modules))"
    )
    path = REPO / "tests" / "data" / "hostile" / name
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path), str(path)], cwd=REPO, capture_output=True, text=True
    )
    assert out.stdout.strip() == "2 []", (out.stdout, out.stderr)


def big_files(folder: Path) -> dict[str, Path]:
    """Hostile files too large to keep in the repository, written on demand."""
    targets = ",".join(f"{i / 200_000:.6f}" for i in range(1, 100_000))
    files = {
        "a 1.2 MB list": "eval: {attacks: [" + ",".join(["0.1"] * 300_000) + "]}\n",
        "100,000 one-shot targets": "schedule: {name: one_shot, targets: [" + targets + "]}\n",
    }
    for name, text in files.items():
        (folder / f"{len(name)}.yaml").write_text(text)
    return {name: folder / f"{len(name)}.yaml" for name in files}


@pytest.mark.parametrize("kind", ["a 1.2 MB list", "100,000 one-shot targets"])
def test_big_files_are_refused_quickly(kind, tmp_path, capsys, monkeypatch):
    refused(["run", str(big_files(tmp_path)[kind])], tmp_path / "cache", capsys, monkeypatch)


@pytest.mark.parametrize("kind", ["/dev/zero", "fifo", "folder", "missing"])
def test_things_that_are_not_spec_files_are_refused_without_reading(kind, tmp_path, capsys, monkeypatch):
    path = {"/dev/zero": Path("/dev/zero"), "fifo": tmp_path / "fifo", "folder": tmp_path, "missing": tmp_path / "x"}
    if kind == "fifo":
        os.mkfifo(path[kind])  # reading it would block forever
    if not path[kind].exists() and kind != "missing":
        pytest.skip(f"no {kind} here")
    (line,) = refused(["submit", str(path[kind])], tmp_path / "cache", capsys, monkeypatch)
    assert line.startswith(str(path[kind])[:40])


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("eval.attacks.0.eps.1.x=1", "eval.attacks.0.eps.1.x: eval.attacks.0.eps.1 is a value"),
        ("eval.attacks.7.eps=[0.1]", "eval.attacks.7.eps: no entry '7'"),
        ("eval.attacks.0.eps=[0, .nan]", "eval.attacks[0].eps[1]: input should be a finite number"),
        ("eval.attacks.0.eps=[0, .inf]", "eval.attacks[0].eps[1]: input should be a finite number"),
        ("eval.attacks.0.step_size=.inf", "eval.attacks[0].step_size: input should be a finite number"),
        ("schedule.power=.inf", "schedule.power: input should be a finite number"),
        ("schedule.end=1000000000", "schedule.end: input should be less than or equal to 1000000"),
        ("seed=" + "9" * 5000, "seed: a number too long to read"),
        ("train.lr=1.0e999", "train.lr: input should be a finite number"),
        (".".join(["a"] * 40) + "=1", "--set: nested more than 16 levels deep"),
        ("seed=" + "[" * 100 + "]" * 100, "seed: nested more than 16 levels deep"),
    ],
)
def test_overrides_into_the_wrong_place_or_out_of_range_name_the_field(override, named, tmp_path, capsys, monkeypatch):
    lines = refused(["run", "--preset", "smoke", "--set", override], tmp_path / "cache", capsys, monkeypatch)
    assert lines[0].startswith(named), lines


def test_work_above_the_bound_needs_an_explicit_allowance(tmp_path, capsys, monkeypatch):
    long = ["--preset", "smoke", "--set", "eval.n_samples=100000", "--set", "eval.attacks.0.steps=1000"]
    (line,) = refused(["submit", *long], tmp_path / "cache", capsys, monkeypatch)
    assert "example-passes" in line and "--allow-long" in line
    spec = api.load_spec(preset="smoke", overrides=long[3::2])
    assert spec.work() > api.MAX_WORK
    api.check_work(spec, allow_long=True)  # allowed when asked for


def test_every_preset_is_within_the_work_bound():
    for name in api.presets():
        assert api.load_spec(preset=name).work() <= api.MAX_WORK, name
    for name in api.paper_presets():
        assert all(spec.work() <= api.MAX_WORK for spec in api.paper_specs(name).values()), name
        api.check_total_work(list(api.paper_specs(name).values()))  # its button queues them all at once


def test_a_seed_list_is_held_to_the_bound_as_a_whole(tmp_path, capsys, monkeypatch):
    """Issue 29: `seed: [0..63]` of a spec just inside the bound queued 64 jobs without an allowance."""
    big = ["--set", "eval.n_samples=20000", "--set", "eval.attacks.0.steps=100"]
    one = api.load_spec(preset="smoke", overrides=big[1::2])
    assert one.work() <= api.MAX_WORK < 64 * one.work()
    seeds = ["--set", f"seed=[{', '.join(str(i) for i in range(64))}]"]
    (line,) = refused(["submit", "--preset", "smoke", *big, *seeds], tmp_path / "cache", capsys, monkeypatch)
    assert line.startswith("(submission): 64 runs") and "--allow-long" in line
    assert not api.jobs(api.open_store(tmp_path / "cache"))  # nothing queued: all or none


def test_mrpf_counts_its_own_probes(tmp_path, capsys, monkeypatch):
    """Issue 29: MRPF with `prune.mrs: {ascent_steps: 1000, n_samples: 100000}` was estimated like the default."""
    mrpf = ["--set", "prune.method=mrpf", "--set", "model.name=small_cnn"]
    default = api.load_spec(preset="smoke", overrides=mrpf[1::2])
    heavy = ["--set", "prune.mrs={ascent_steps: 1000, n_samples: 100000, batch_size: 1}"]
    assert api.load_spec(preset="smoke", overrides=[*mrpf[1::2], heavy[1]]).work() > 1000 * default.prune_probe_passes()
    (line,) = refused(["submit", "--preset", "smoke", *mrpf, *heavy], tmp_path / "cache", capsys, monkeypatch)
    assert "example-passes" in line


DEEP: list = [1]
for _ in range(30):
    DEEP = [DEEP]
HOSTILE_LEAVES = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, 10**30, -(10**30), -1, 0, 1e308, -1e-308, True, None]),
    st.sampled_from(["", "x" * 20_000, "../../etc/passwd", "'; DROP TABLE runs; --", "{{7*7}}"]),
    st.sampled_from([[], {}, DEEP, list(range(5000)), {"a": {"b": {"c": 1}}}]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**70), max_value=2**70),
)


TEACHING = api.load_tree(preset="teaching")
PATHS = leaf_paths(TEACHING)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(PATHS), HOSTILE_LEAVES), min_size=1, max_size=3))
def test_generated_hostile_trees_are_refused_cleanly_or_accepted_in_range(changes):
    tree = TEACHING
    for path, value in changes:
        tree = with_leaf(tree, path, value)
    started = time.perf_counter()
    try:
        specs = api.validate_trees(api.bounded(tree))
        for spec in specs:
            api.check_work(spec)
    except SpecError as exc:
        assert 1 <= len(exc.problems) <= 13 and all(len(line) < 400 for line in exc.problems)
    else:  # accepted: every number in it is finite, and the run is within the bound
        for spec in specs:
            text = spec.canonical_json()
            assert "NaN" not in text and "Infinity" not in text
    assert time.perf_counter() - started < SECONDS


@pytest.mark.parametrize(
    "text",
    [
        "schedule: " + "[" * 3000 + "]" * 3000,
        "seed: " + "9" * 5000,
        "a: &a [*a]",
        "schedule: {name: gradual, final_sparsity: 0.9, end: 100, frequency: 10}\neval: {attacks: [{eps: [0, .nan]}]}",
        "schedule: {name: one_shot, targets: [0.5]}\neval: {n_samples: 100000, attacks: [{eps: [0.1], steps: 1000}]}",
    ],
    ids=["deep", "huge-int", "recursive", "nan", "too-long"],
)
def test_the_runs_editor_refuses_hostile_text_with_a_message(text, cache, monkeypatch):
    at = page("pages/runs.py", cache, monkeypatch)
    at.text_area[0].set_value(text)
    next(b for b in at.button if b.label == "Submit YAML").click()
    at.run()
    assert not at.exception
    assert 1 <= len(at.error) <= 2 and all("Traceback" not in e.value for e in at.error)
    assert api.jobs_frame(api.open_store()).empty

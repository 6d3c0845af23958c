"""The CLI contract (docs/cli.md), through real subprocesses."""

import json
import subprocess
import sys

import pytest

from tests.support import REPO

pytestmark = pytest.mark.slow


def cli(*args, check=True):
    result = subprocess.run(
        [sys.executable, "-m", "engine", *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    if check and result.returncode != 0:
        raise AssertionError(result.stderr)
    return result


@pytest.fixture(scope="module")
def smoke_doc(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-cache")
    doc = json.loads(cli("--cache-dir", str(root), "run", "--preset", "smoke", "--json", "--quiet").stdout)
    return root, doc


def test_run_prints_the_json_contract(smoke_doc):
    _, doc = smoke_doc
    assert {"run_id", "cached", "spec", "points"} <= set(doc) and doc["cached"] is False
    assert len(doc["run_id"]) == 64
    for point in doc["points"]:
        assert {"step", "sparsity", "clean_acc", "robust", "layers"} <= set(point)
        assert point["clean_ci_low"] <= point["clean_acc"] <= point["clean_ci_high"] and point["clean_n"] == 200
        for r in point["robust"]:
            assert set(r) == {"attack", "norm", "eps", "acc", "n", "ci_low", "ci_high"} and 0 <= r["acc"] <= 1
            assert r["ci_low"] <= r["acc"] <= r["ci_high"] and r["n"] == 200  # smoke: 200 evaluation images


def test_the_same_command_again_is_cached(smoke_doc):
    root, doc = smoke_doc
    again = json.loads(cli("--cache-dir", str(root), "run", "--preset", "smoke", "--json").stdout)
    assert again["cached"] is True and again["points"] == doc["points"]


def test_show_by_prefix_prints_the_same_document(smoke_doc):
    root, doc = smoke_doc
    shown = json.loads(cli("--cache-dir", str(root), "show", doc["run_id"][:10], "--json").stdout)
    assert shown["points"] == doc["points"] and shown["spec"] == doc["spec"]


def test_export_csv_and_json(smoke_doc, tmp_path):
    import pandas as pd

    root, doc = smoke_doc
    cli("--cache-dir", str(root), "export", doc["run_id"], "--format", "csv", "--out", str(tmp_path / "r.csv"))
    cli("--cache-dir", str(root), "export", doc["run_id"], "--format", "json", "--out", str(tmp_path / "r.json"))
    table = pd.read_csv(tmp_path / "r.csv")
    assert len(table) == sum(len(p["robust"]) for p in doc["points"])
    assert json.loads((tmp_path / "r.json").read_text())["run_id"] == doc["run_id"]


def test_ls_and_presets(smoke_doc):
    root, doc = smoke_doc
    assert doc["run_id"][:12] in cli("--cache-dir", str(root), "ls").stdout
    listed = cli("presets").stdout
    assert "smoke" in listed and "quickstart" in listed
    catalog = cli("catalog").stdout
    for name in ("fashion_mnist", "small_cnn", "global_magnitude", "gradual", "pgd_linf"):
        assert name in catalog


def test_overrides_change_the_run(smoke_doc, tmp_path):
    root, doc = smoke_doc
    other = json.loads(
        cli(
            "--cache-dir",
            str(tmp_path),
            "run",
            "--preset",
            "smoke",
            "--set",
            "eval.attacks=[]",
            "--set",
            "schedule.final_sparsity=0.5",
            "--json",
            "--quiet",
        ).stdout
    )
    assert other["run_id"] != doc["run_id"] and other["points"][-1]["sparsity"] == pytest.approx(0.5, abs=1e-3)


def test_a_bad_spec_exits_2_with_one_line_per_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("schedule: {name: gradual, final_sparsity: 1.5, end: 10, frequency: 5}\nmodel: {name: gpt}\n")
    result = cli("--cache-dir", str(tmp_path), "run", str(bad), check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("schedule.final_sparsity:")  # types and ranges first: no torch to load
    bad.write_text("schedule: {name: gradual, final_sparsity: 0.5, end: 10, frequency: 5}\nmodel: {name: gpt}\n")
    result = cli("--cache-dir", str(tmp_path), "run", str(bad), check=False)
    assert result.returncode == 2 and result.stderr.startswith("model.name: unknown model 'gpt'")  # then names


def test_unknown_preset_and_unknown_run_are_one_line_errors(tmp_path):
    preset = cli("--cache-dir", str(tmp_path), "run", "--preset", "nope", check=False)
    assert preset.returncode == 2 and preset.stderr.startswith("preset: unknown preset 'nope'")
    show = cli("--cache-dir", str(tmp_path), "show", "deadbeef", check=False)
    assert show.returncode == 1 and len(show.stderr.strip().splitlines()) == 1


def test_a_cache_hit_does_not_import_torch(smoke_doc):
    root, doc = smoke_doc
    code = (
        "import sys, json; from engine.__main__ import main; main(['--cache-dir', sys.argv[1], 'run', "
        "'--preset', 'smoke', '--json']); print('torch' in sys.modules, file=sys.stderr)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(root)], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert json.loads(result.stdout)["cached"] is True
    assert result.stderr.strip().splitlines()[-1] == "False"


def test_submit_status_cancel_and_jobs(tmp_path):
    root = str(tmp_path)
    first = json.loads(cli("--cache-dir", root, "submit", "--preset", "smoke", "--json").stdout)
    again = json.loads(cli("--cache-dir", root, "submit", "--preset", "smoke", "--json").stdout)
    assert set(first) == {"job_id", "run_id", "status"} and first == again and first["status"] == "queued"
    status = json.loads(cli("--cache-dir", root, "status", str(first["job_id"]), "--json").stdout)
    assert status["status"] == "queued" and status["attempts"] == 0
    assert "queued" in cli("--cache-dir", root, "jobs").stdout
    assert "cancelled" in cli("--cache-dir", root, "cancel", str(first["job_id"])).stdout
    missing = cli("--cache-dir", root, "status", "999", check=False)
    assert missing.returncode == 1 and "job 999" in missing.stderr


def test_a_worker_drains_the_queue(tmp_path):
    root = str(tmp_path)
    job = json.loads(cli("--cache-dir", root, "submit", "--preset", "smoke", "--json").stdout)
    assert "ran 1 jobs" in cli("--cache-dir", root, "worker", "--exit-when-idle").stdout
    done = json.loads(cli("--cache-dir", root, "status", str(job["job_id"]), "--json").stdout)
    assert done["status"] == "done" and done["fraction"] == 1.0


@pytest.mark.parametrize("target", ["existing", "other cache", "loop", "long name"])
def test_export_never_replaces_a_file_it_did_not_create(smoke_doc, tmp_path, target):
    """Issue 29: `export --out` onto another cache's aer.sqlite overwrote it; loops and long names were tracebacks."""
    import sqlite3

    root, doc = smoke_doc
    out = tmp_path / "r.csv"
    if target == "existing":
        out.write_text("mine")
    elif target == "other cache":
        out = tmp_path / "other" / "aer.sqlite"
        out.parent.mkdir()
        with sqlite3.connect(out) as db:
            db.execute("CREATE TABLE runs (run_id TEXT)")
    elif target == "loop":
        (tmp_path / "a").symlink_to(tmp_path / "b")
        (tmp_path / "b").symlink_to(tmp_path / "a")
        out = tmp_path / "a" / "r.csv"
    else:
        out = tmp_path / ("x" * 300 + ".csv")
    before = out.read_bytes() if target in ("existing", "other cache") else None
    result = cli("--cache-dir", str(root), "export", doc["run_id"], "--format", "csv", "--out", str(out), check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "--out:" in result.stderr
    if before is not None:
        assert out.read_bytes() == before  # untouched
    if target == "other cache":  # not even with --force
        forced = cli("--cache-dir", str(root), "export", doc["run_id"], "--format", "csv", "--out", str(out), "--force",
                     check=False)  # fmt: skip
        assert forced.returncode != 0 and "SQLite database" in forced.stderr and out.read_bytes() == before
    if target == "existing":
        cli("--cache-dir", str(root), "export", doc["run_id"], "--format", "csv", "--out", str(out), "--force")
        assert out.read_text().startswith("run_id")

"""The store: migrations, atomic steps, checkpoint publish and SHA-256 check."""

import hashlib
import sqlite3

import pytest
import torch

from engine.errors import IntegrityError, NotFoundError
from engine.store.checkpoints import load_verified, publish
from engine.store.db import StepRecord, Store

FAKE_RUN = hashlib.sha256(b"test\n{}").hexdigest()  # what a run of spec "{}" under engine "test" is called


def _run(store, run_id=FAKE_RUN):
    store.begin_run(run_id, "base", "{}", "test", 2)
    return run_id


def _step(run_id, step=0):
    return {
        "run_id": run_id,
        "step": step,
        "target_sparsity": 0.5,
        "sparsity": 0.5,
        "clean_acc": 0.9,
        "checkpoint": "c",
        "sha256": "s",
        "mask_checkpoint": "m",
        "mask_sha256": "t",
        "train_seconds": 1.0,
        "eval_seconds": 1.0,
    }


ROBUST = [
    {"attack": "pgd_linf", "norm": "Linf", "eps": 0.0, "acc": 0.9},
    {"attack": "pgd_linf", "norm": "Linf", "eps": 0.1, "acc": 0.2},
]
LAYERS = [{"layer": "fc1", "kind": "Linear", "numel": 10, "nonzero": 5, "sparsity": 0.5, "prunable": True}]


def test_migrations_run_once_and_reopen_cleanly(tmp_path):
    Store(tmp_path).close()
    store = Store(tmp_path)
    from engine.store.migrations import MIGRATIONS

    applied = [r[0] for r in store.db.execute("SELECT name FROM _migrations ORDER BY rowid")]
    assert applied == [name for name, _ in MIGRATIONS] and len(applied) >= 2
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.integrity_ok()


def test_step_round_trip(tmp_path):
    store = Store(tmp_path)
    run_id = _run(store)
    store.put_step(StepRecord(_step(run_id), ROBUST, LAYERS))
    assert store.steps(run_id)[0]["clean_acc"] == 0.9
    assert [r["acc"] for r in store.robust([run_id])] == [0.9, 0.2]
    assert store.layers(run_id)[0]["nonzero"] == 5


def test_a_failing_step_leaves_no_rows(tmp_path):
    store = Store(tmp_path)
    run_id = _run(store)
    bad = ROBUST + [{"attack": "pgd_linf", "norm": "Linf", "eps": 0.2, "acc": 1.5}]  # violates acc <= 1
    with pytest.raises(sqlite3.IntegrityError):
        store.put_step(StepRecord(_step(run_id), bad, LAYERS))
    assert store.steps(run_id) == [] and store.robust([run_id]) == [] and store.layers(run_id) == []


def test_writing_a_finished_step_again_changes_nothing(tmp_path):
    store = Store(tmp_path)
    run_id = _run(store)
    store.put_step(StepRecord(_step(run_id), ROBUST, LAYERS))
    store.put_step(StepRecord({**_step(run_id), "clean_acc": 0.1}, ROBUST, LAYERS))
    assert [s["clean_acc"] for s in store.steps(run_id)] == [0.9] and len(store.robust([run_id])) == 2


def test_resolve_accepts_unique_prefixes_only(tmp_path):
    store = Store(tmp_path)
    run_id = _run(store)
    assert store.resolve(run_id[:8]) == run_id
    for bad in ("ab", "zzzzzzzz", "../../etc", "ffffff"):
        with pytest.raises(NotFoundError):
            store.resolve(bad)


def test_finished_runs_are_not_reopened(tmp_path):
    store = Store(tmp_path)
    run_id = _run(store)
    store.finish_run(run_id)
    store.begin_run(run_id, "base", "{}", "test", 2)
    assert store.run(run_id)["status"] == "done"


def test_checkpoint_publish_records_the_sha_of_the_file(tmp_path):
    tensors = {"w": torch.arange(6.0).view(2, 3)}
    path = tmp_path / "runs" / "x" / "step-000.safetensors"
    sha = publish(tensors, path)
    assert sha == hashlib.sha256(path.read_bytes()).hexdigest()
    assert torch.equal(load_verified(path, sha)["w"], tensors["w"])
    assert not list(path.parent.glob(".*tmp"))  # no temp file left behind


def test_a_tampered_checkpoint_is_refused(tmp_path):
    path = tmp_path / "step.safetensors"
    sha = publish({"w": torch.ones(4)}, path)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="refusing to load"):
        load_verified(path, sha)


def test_a_missing_checkpoint_is_reported(tmp_path):
    with pytest.raises(NotFoundError):
        load_verified(tmp_path / "nope.safetensors", "0" * 64)


def test_each_thread_gets_its_own_connection(tmp_path):
    import threading

    store = Store(tmp_path)
    run_id = _run(store)
    errors = []

    def write(step):
        try:
            store.put_step(StepRecord(_step(run_id, step), ROBUST, LAYERS))
        except Exception as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(store.steps(run_id)) == 8

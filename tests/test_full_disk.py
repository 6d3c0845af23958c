"""A disk that fills, or a folder that turns read-only, in the middle of a run: the CLI says so in one
line naming the file (never the cache's absolute path), no temporary file is left behind, the steps
already committed are kept, and the same command finishes the run once there is room again.

Root ignores file permissions (and CI runs as root), so the failures are injected where the operating
system reports them: `fsync` for a full disk, `os.replace` for a read-only folder, and SQLite's own
page limit for a database that can grow no more."""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

import pytest

from engine import api
from engine.__main__ import main
from engine.errors import StoreError
from engine.store import checkpoints
from engine.store.db import Store

SMOKE = ["run", "--preset", "smoke", "--quiet"]


def fail_on_call(number: int, error: int, real):
    """`real`, except that its `number`-th call raises OSError(error)."""
    calls = {"n": 0}

    def wrapped(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == number:
            raise OSError(error, os.strerror(error))
        return real(*args, **kwargs)

    return wrapped


def run_cli(root: Path, capsys) -> tuple[int, list[str]]:
    api.forget_stores()
    code = main(["--cache-dir", str(root), *SMOKE])
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize(
    "where, error, words",
    [
        ("fsync", errno.ENOSPC, "the disk is full"),
        ("replace", errno.EROFS, "the file system is read-only"),
        ("replace", errno.EACCES, "permission denied"),
    ],
)
def test_a_checkpoint_that_cannot_be_written_is_one_line_and_the_run_resumes(
    where, error, words, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("AER_CACHE_DIR", str(tmp_path))
    real = getattr(os, where)
    # the base, step 0's weights and masks are calls 1–3 (fsync also syncs folders: counted per file)
    number = 4 if where == "replace" else 7
    monkeypatch.setattr(checkpoints.os, where, fail_on_call(number, error, real))
    code, lines = run_cli(tmp_path, capsys)
    assert code == 1 and len(lines) == 1, lines
    assert f"cannot write ({words})" in lines[0] and str(tmp_path) not in lines[0], lines
    assert not list(tmp_path.rglob("*.tmp"))
    store = Store(tmp_path)
    (run,) = store.runs()
    kept = [s["step"] for s in store.steps(run["run_id"])]
    assert kept and kept == list(range(len(kept)))  # the committed steps stay
    monkeypatch.setattr(checkpoints.os, where, real)
    code, lines = run_cli(tmp_path, capsys)
    assert code == 0, lines
    assert Store(tmp_path).run(run["run_id"])["status"] == "done"


def test_a_database_that_can_grow_no_more_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AER_CACHE_DIR", str(tmp_path))
    store = api.open_store(tmp_path)
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    real_connection = Store._connection

    def capped(self) -> sqlite3.Connection:
        connection = real_connection(self)
        connection.execute(f"PRAGMA max_page_count = {pages}")  # SQLite's own SQLITE_FULL
        return connection

    monkeypatch.setattr(Store, "_connection", capped)
    code, lines = run_cli(tmp_path, capsys)
    assert code == 1 and len(lines) == 1, lines
    assert lines[0].startswith("error: store: aer.sqlite: cannot write (the disk is full)"), lines


def test_other_write_failures_are_not_dressed_up():
    assert checkpoints.write_failure("x", "EIO") is None
    assert isinstance(checkpoints.write_failure("x", "ENOSPC"), StoreError)


def test_a_worker_records_the_one_line_reason_on_the_job(tmp_path, smoke_tree, monkeypatch):
    from engine.jobs import queue
    from engine.jobs.worker import Worker
    from engine.science.catalog import validate

    store = Store(tmp_path)
    job_id = api.submit(validate(smoke_tree), store).job_id
    monkeypatch.setattr(checkpoints.os, "fsync", fail_on_call(7, errno.ENOSPC, os.fsync))
    Worker(store).serve(exit_when_idle=True)
    job = queue.get(store, job_id)
    assert job.status == "failed" and job.error.split(":")[0].endswith("/step-001.safetensors"), job.error
    assert "cannot write (the disk is full)" in job.error and str(tmp_path) not in job.error

"""A damaged store is a state, not a crash: each damage kind gives one line that names what to do,
`doctor` leaves a working store and a report, and a run whose files were damaged recomputes."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.hostile import break_database
from engine import api
from engine.__main__ import main
from engine.errors import StoreError
from engine.store.db import Store
from tests.support import page


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, str]:
    """A cache holding one finished smoke run (copied by each test before it damages anything)."""
    root = tmp_path_factory.mktemp("finished")
    spec = api.load_spec(preset="smoke")
    store = Store(root)
    api.run(spec, store)
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in aer.sqlite itself, as after a clean exit
    store.close()
    return root, spec.run_id()


@pytest.fixture
def damaged(finished, tmp_path, monkeypatch) -> Iterator[tuple[Path, str]]:
    """A private copy of the finished cache, used by the CLI and the pages."""
    root = tmp_path / "cache"
    shutil.copytree(finished[0], root)
    monkeypatch.setenv("AER_CACHE_DIR", str(root))
    api.forget_stores()
    yield root, finished[1]
    api.forget_stores()


def cli(root: Path, *argv: str, capsys) -> tuple[int, str, str]:
    code = main(["--cache-dir", str(root), *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("kind", ["truncated", "header", "text"])
def test_a_damaged_database_is_one_line_then_doctor_makes_the_store_usable(damaged, kind, capsys):
    root, run_id = damaged
    break_database(root, kind)
    with pytest.raises(StoreError, match="aer.sqlite is damaged .*run `python -m engine doctor`"):
        Store(root)
    for command in (["ls"], ["show", run_id[:12]]):
        code, _, err = cli(root, *command, capsys=capsys)
        assert code == 1 and err.count("\n") == 1 and "doctor" in err and "Traceback" not in err
        assert str(root) not in err
    code, out, _ = cli(root, "doctor", capsys=capsys)
    assert code == 0 and "moved aside to aer.sqlite.damaged-" in out and "lost: the results of 1 runs" in out
    assert list(root.glob("aer.sqlite.damaged-*"))  # kept, never deleted
    api.forget_stores()
    assert Store(root).runs() == []  # usable again, and empty


def table_pages(root: Path, table: str, kind: str) -> list[int]:
    """The pages holding a table (`kind`: 'leaf', 'internal' or 'any'), from SQLite's dbstat table."""
    with sqlite3.connect(root / "aer.sqlite") as db:
        try:
            rows = db.execute("SELECT pageno, pagetype FROM dbstat WHERE name = ? ORDER BY pageno", (table,)).fetchall()
        except sqlite3.OperationalError:
            pytest.skip("this SQLite has no dbstat table")
    return [page for page, pagetype in rows if kind in ("any", pagetype)]


def overwrite_pages(root: Path, pages: list[int]) -> None:
    """Overwrite whole database pages with a byte pattern, as a bad sector or a stray write does."""
    size = 4096  # the store's page size (SQLite's default)
    with open(root / "aer.sqlite", "r+b") as handle:
        for number in pages:
            handle.seek((number - 1) * size)
            handle.write(b"\xa5" * size)


def test_scan_reads_past_a_damaged_page(damaged):
    from engine.store.salvage import scan

    root, _ = damaged
    with sqlite3.connect(root / "aer.sqlite") as db:
        everything = db.execute("SELECT count(*) FROM robust").fetchone()[0]
    first, *rest = table_pages(root, "robust", "leaf")
    assert rest, "the smoke run's robust rows span several pages"
    overwrite_pages(root, [first])
    with sqlite3.connect(root / "aer.sqlite") as db:
        db.row_factory = sqlite3.Row
        with pytest.raises(sqlite3.DatabaseError):
            db.execute("SELECT * FROM robust").fetchall()
        rows, complete = scan(db, "robust")
    assert not complete and 0 < len(rows) < everything
    assert {row["step"] for row in rows} == {1, 2}  # the first page held step 0's rows; the later ones came back


def test_a_damaged_page_of_per_layer_tables_keeps_every_proven_result(damaged, capsys):
    root, run_id = damaged
    before = api.robust_frame([run_id], Store(root))
    overwrite_pages(root, table_pages(root, "layers", "any"))
    code, out, _ = cli(root, "doctor", capsys=capsys)
    assert code == 0 and "salvaged 1 runs from the damaged database (3 steps" in out
    assert "only partly readable: layers" in out and "lost: the results of 0 runs" in out
    api.forget_stores()
    store = Store(root)
    assert store.run(run_id)["status"] == "done" and store.layers(run_id) == []
    assert api.robust_frame([run_id], store).equals(before)


def test_salvage_never_copies_a_non_finite_number(damaged):
    from engine.store.doctor import move_aside
    from engine.store.salvage import salvage

    root, run_id = damaged
    with sqlite3.connect(root / "aer.sqlite") as db:  # as a damaged but readable page might read
        db.execute("UPDATE efficiency SET latency_ms_b1 = 9e999 WHERE run_id = ? AND step = 1", (run_id,))
    api.forget_stores()
    moved = move_aside(root)  # as doctor does: the fresh store takes the damaged one's place
    fresh = Store(root)
    salvage(root / moved, fresh)
    latencies = fresh.db.execute("SELECT step, latency_ms_b1 FROM efficiency ORDER BY step").fetchall()
    assert [r[0] for r in latencies] == [0, 2]  # step 1's row read as infinite: left out
    assert len(fresh.steps(run_id)) == 3  # the results themselves are proven by their digest


def test_results_on_a_damaged_page_are_proven_up_to_it_and_the_rest_recomputes(damaged, capsys):
    root, run_id = damaged
    before = api.robust_frame([run_id], Store(root))
    overwrite_pages(root, table_pages(root, "robust", "leaf")[-1:])  # the last page: step 1 and 2's rows
    code, out, _ = cli(root, "doctor", capsys=capsys)
    assert code == 0 and "(1 steps whose checkpoints and result digests verify)" in out
    assert f"run {run_id[:12]}: steps 1+ could not be proven; run marked failed" in out
    api.forget_stores()
    assert [s["step"] for s in Store(root).steps(run_id)] == [0]
    code, out, _ = cli(root, "run", "--preset", "smoke", "--quiet", capsys=capsys)
    assert code == 0 and "(cached)" not in out
    api.forget_stores()
    after = api.robust_frame([run_id], Store(root))
    columns = ["step", "attack", "eps", "acc", "n"]
    assert (
        after[columns]
        .sort_values(columns)
        .reset_index(drop=True)
        .equals(before[columns].sort_values(columns).reset_index(drop=True))
    )


def test_the_pages_show_the_same_message_without_a_path_or_a_traceback(damaged, monkeypatch):
    root, _ = damaged
    break_database(root, "header")
    at = page("app.py", root, monkeypatch)
    assert not at.exception
    (error,) = at.error
    assert "damaged" in error.value and "doctor" in error.value and str(root) not in error.value


@pytest.mark.parametrize("which", ["step weights", "step masks", "deleted step"])
def test_a_damaged_step_checkpoint_is_forgotten_and_the_run_recomputes(damaged, which, capsys):
    root, run_id = damaged
    step = Store(root).step(run_id, 1)
    path = root / (step["mask_checkpoint"] if which == "step masks" else step["checkpoint"])
    if which == "deleted step":
        path.unlink()
    else:
        data = bytearray(path.read_bytes())
        data[-5] ^= 0xFF
        path.write_bytes(bytes(data))
    code, out, _ = cli(root, "doctor", capsys=capsys)
    assert code == 0 and f"run {run_id[:12]}: checkpoint of step 1 damaged" in out
    api.forget_stores()
    store = Store(root)
    assert store.run(run_id)["status"] == "failed" and [s["step"] for s in store.steps(run_id)] == [0]
    code, out, _ = cli(root, "run", "--preset", "smoke", "--quiet", capsys=capsys)
    assert code == 0 and "(cached)" not in out and "· done ·" in out
    assert len(Store(root).steps(run_id)) == 3


def test_a_damaged_base_checkpoint_is_forgotten(damaged, capsys):
    root, run_id = damaged
    base = Store(root).base(api.load_spec(preset="smoke").base_id())
    (root / base["checkpoint"]).write_bytes(b"garbage")
    code, out, _ = cli(root, "doctor", capsys=capsys)
    assert code == 0 and "checkpoint damaged or missing; forgotten" in out
    api.forget_stores()
    assert Store(root).base(base["base_id"]) is None


def test_a_result_edited_in_the_database_is_found(damaged, capsys):
    root, run_id = damaged
    with sqlite3.connect(root / "aer.sqlite") as db:
        db.execute("UPDATE robust SET acc = 0.999 WHERE run_id = ? AND step = 2 AND eps > 0", (run_id,))
    assert Store(root).edited_steps(run_id) == [2]
    code, out, _ = cli(root, "doctor", capsys=capsys)
    assert f"run {run_id[:12]}: results of step 2 edited" in out
    api.forget_stores()
    assert Store(root).edited_steps(run_id) == [] and len(Store(root).steps(run_id)) == 2


def test_an_intact_store_passes_the_doctor_unchanged(damaged, capsys):
    root, run_id = damaged
    code, out, _ = cli(root, "doctor", capsys=capsys)
    assert code == 0 and out.strip() == "7 checkpoints and their steps' results verified; the store is usable"
    api.forget_stores()
    assert Store(root).run(run_id)["status"] == "done"


def test_a_read_only_cache_can_be_read_but_not_written(damaged, monkeypatch, capsys):
    import os

    root, run_id = damaged
    monkeypatch.setattr("engine.store.db.os.access", lambda path, mode: mode != os.W_OK)  # as on a read-only mount
    api.forget_stores()
    assert Store(root).read_only
    for command in (["ls"], ["show", run_id[:12]]):
        code, out, err = cli(root, *command, capsys=capsys)
        assert code == 0 and run_id[:12] in out, err
    code, _, err = cli(root, "run", "--preset", "smoke", "--set", "seed=3", "--quiet", capsys=capsys)
    assert code == 1 and err.strip() == "error: cache: read-only; results can be read but not computed or changed here"


def test_a_cache_folder_that_is_a_file_is_one_line(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("AER_CACHE_DIR", str(blocker))
    api.forget_stores()
    code, _, err = cli(blocker, "ls", capsys=capsys)
    assert (
        code == 1 and err.strip() == "error: cache folder: it names a file, not a folder (AER_CACHE_DIR or --cache-dir)"
    )


def test_the_playground_names_a_damaged_checkpoint_without_a_path(damaged, monkeypatch):
    root, run_id = damaged
    step = Store(root).step(run_id, 2)
    (root / step["checkpoint"]).write_bytes(b"garbage")
    at = page("pages/playground.py", root, monkeypatch, run=run_id[:12], step="2")
    assert not at.exception
    (error,) = at.error
    assert "refusing to load" in error.value and str(root) not in error.value
    assert at.button(key="repair").label.startswith("Repair"), "the browser user is offered the fix, not a terminal"


@pytest.mark.timeout(60)  # a FIFO read without care blocks forever
@pytest.mark.parametrize("kind", ["fifo", "link to /dev/zero", "sparse 40 GB", "name outside the cache"])
def test_a_checkpoint_that_is_not_a_bounded_regular_file_inside_the_cache_is_refused_without_reading(
    damaged, kind, capsys
):
    """Issue 29: a FIFO hung doctor and the Playground; /dev/zero or a 40 GB sparse file ended in MemoryError."""
    import os

    from engine.errors import IntegrityError
    from engine.store.checkpoints import checkpoint_file, verified_bytes

    root, run_id = damaged
    step = Store(root).step(run_id, 1)
    path = root / step["checkpoint"]
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "link to /dev/zero":
        path.symlink_to("/dev/zero")
    elif kind == "sparse 40 GB":
        with open(path, "wb") as handle:
            handle.truncate(40 << 30)
    else:
        with sqlite3.connect(root / "aer.sqlite") as db:
            db.execute("UPDATE steps SET checkpoint = '../../etc/passwd' WHERE run_id = ? AND step = 1", (run_id,))
    with pytest.raises(IntegrityError):
        name = Store(root).step(run_id, 1)["checkpoint"]
        verified_bytes(checkpoint_file(root, name), step["sha256"])
    with pytest.raises(api.EngineError):
        api.load_checkpoint(run_id, 1, Store(root))  # the Playground's path: one line, no hang
    code, out, _ = cli(root, "doctor", capsys=capsys)
    assert code == 0 and f"run {run_id[:12]}: checkpoint of step 1 damaged" in out


def test_doctor_removes_what_a_killed_write_left_and_keeps_a_write_in_flight(damaged, capsys):
    import os

    root, run_id = damaged
    folder = (root / Store(root).step(run_id, 1)["checkpoint"]).parent
    dead = folder / ".step-1.safetensors.999999.deadbeef.tmp"  # no process 999999: a write a kill interrupted
    alive = folder / f".step-1.safetensors.{os.getpid()}.cafebabe.tmp"  # this process: still writing
    dead.write_bytes(b"half")
    alive.write_bytes(b"half")
    code, out, _ = cli(root, "doctor", capsys=capsys)
    assert code == 0 and "removed 1 temporary file" in out
    assert not dead.exists() and alive.exists()


def test_two_doctors_at_once_leave_one_kept_copy_and_every_run(damaged):
    """Issue 29: in 4 of 10 trials both moved aside to the same name and the kept copy was empty."""
    import subprocess
    import sys

    from tests.support import REPO

    root, run_id = damaged
    overwrite_pages(root, table_pages(root, "layers", "any"))  # damage a single doctor salvages around
    command = [sys.executable, "-m", "engine", "--cache-dir", str(root), "doctor"]
    doctors = [subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outputs = [d.communicate(timeout=240) for d in doctors]
    assert [d.returncode for d in doctors] == [0, 0], outputs
    assert len(list(root.glob("aer.sqlite.damaged-*"))) == 1  # the second found the store the first left
    api.forget_stores()
    assert run_id in {r["run_id"] for r in Store(root).runs()}  # salvaged once, not lost


def test_a_run_whose_stored_spec_was_edited_is_one_line_damaged_and_doctor_forgets_it(damaged, monkeypatch, capsys):
    """Issue 29: a tampered spec_json made ls, show, Home and Surface raise KeyError while doctor called the
    store usable. The id is the spec's hash, so an edit is found without trusting the row."""
    root, run_id = damaged
    with sqlite3.connect(root / "aer.sqlite") as db:
        db.execute("UPDATE runs SET spec_json = ? WHERE run_id = ?", ('{"model": 1}', run_id))
    code, out, err = cli(root, "ls", capsys=capsys)
    assert code == 0 and "1 run(s) damaged" in err and "Traceback" not in err
    code, _, err = cli(root, "show", run_id[:12], capsys=capsys)
    assert code == 1 and err.count("\n") == 1 and "damaged" in err and "doctor" in err
    for path in ("app.py", "pages/surface.py", "pages/compare.py"):
        assert not page(path, root, monkeypatch).exception
    code, out, _ = cli(root, "doctor", capsys=capsys)
    assert code == 0 and f"run {run_id[:12]}: its stored spec was edited" in out
    api.forget_stores()
    assert not Store(root).tampered_runs() and not Store(root).has_run(run_id)

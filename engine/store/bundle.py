"""Run bundles: a run's rows and checkpoint bytes as one value, to move results between stores.

Ray tasks compute a run in a private store on their node and hand its bundle back; the process
that submitted the sweep alone writes the real store (SQLite's WAL does not work over a network
filesystem, so no remote node ever opens the database). Importing checks every file's SHA-256.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from engine.errors import IntegrityError
from engine.store.checkpoints import publish_bytes
from engine.store.db import StepRecord, Store, spec_intact

SAFE_PATH = re.compile(r"(runs/[0-9a-f]{64}/step-\d{3}(\.masks)?|bases/[0-9a-f]{64})\.safetensors")


def export_run(store: Store, run_id: str) -> dict[str, Any]:
    """A finished run's rows (run, base, steps, robust, layers) and the bytes of its checkpoints."""
    run = store.run(run_id)
    base = store.base(run["base_id"])
    steps = store.steps(run_id)
    files = {
        row[key]: (store.root / row[key]).read_bytes() for row in steps for key in ("checkpoint", "mask_checkpoint")
    }
    if base:
        files[base["checkpoint"]] = (store.root / base["checkpoint"]).read_bytes()
    keys = ("run_id", "step", "attack", "norm", "eps", "acc", "params", "n", "correct")
    robust = [{k: r[k] for k in (*keys, "seconds", "abstained")} for r in store.robust([run_id], flags=True)]
    transfer = [{k: r[k] for k in keys} for r in store.robust([run_id], "transfer", flags=True)]
    return {
        "run": run,
        "base": base,
        "steps": steps,
        "robust": robust,
        "transfer": transfer,
        "warnings": store.warnings([run_id]),
        "layers": store.layers(run_id),
        "files": files,
        "efficiency": store.efficiency([run_id]),
        "budgets": store.budgets([run_id]),
    }


def export_base(store: Store, base_id: str) -> dict[str, Any] | None:
    """A trained base model's row and bytes, or None when the store has none."""
    base = store.base(base_id)
    if base is None:
        return None
    return {"base": base, "files": {base["checkpoint"]: (store.root / base["checkpoint"]).read_bytes()}}


def _checked(bundle_files: dict[str, bytes], expected: dict[str, str]) -> None:
    """Refuse a bundle before anything is written: every recorded checkpoint path must be a checkpoint
    path inside a cache (SAFE_PATH), every one must come with its bytes, and every byte string must hash
    to its recorded SHA-256."""
    for relative in (*expected, *bundle_files):
        if not SAFE_PATH.fullmatch(relative):
            raise IntegrityError(f"bundle file {relative[:80]!r} is not a checkpoint path")
    missing = sorted(set(expected) - set(bundle_files))
    if missing:
        raise IntegrityError(f"bundle lacks the bytes of {missing[0]} (and {len(missing) - 1} more)")
    for relative, data in bundle_files.items():
        actual = hashlib.sha256(data).hexdigest()
        if expected.get(relative) != actual:
            raise IntegrityError(f"bundle file {relative} has SHA-256 {actual[:12]}…, not the recorded one")


def _write_files(store: Store, files: dict[str, bytes], expected: dict[str, str]) -> None:
    _checked(files, expected)
    for relative, data in files.items():
        publish_bytes(data, store.root / relative)


def import_base(store: Store, bundle: dict[str, Any]) -> None:
    """Write a base model's checkpoint and row into `store` (nothing when the bundle is refused)."""
    base = bundle["base"]
    _write_files(store, bundle["files"], {base["checkpoint"]: base["sha256"]})
    store.put_base(base)


def import_run(store: Store, bundle: dict[str, Any]) -> None:
    """Write a bundle's checkpoints and then its rows into `store`, all or nothing: every path, hash and
    the run's spec (its id is the spec's hash) are checked before the first write, and a failure while
    writing the rows forgets the run again."""
    run = bundle["run"]
    expected = {
        row[path]: row[sha]
        for row in bundle["steps"]
        for path, sha in (("checkpoint", "sha256"), ("mask_checkpoint", "mask_sha256"))
    }
    if bundle["base"]:
        expected[bundle["base"]["checkpoint"]] = bundle["base"]["sha256"]
    if not spec_intact(run):
        raise IntegrityError(f"bundle run {str(run.get('run_id'))[:12]}: its spec does not hash to its id")
    _write_files(store, bundle["files"], expected)
    had_run = store.has_run(run["run_id"])
    try:
        if bundle["base"]:
            store.put_base(bundle["base"])
        _write_rows(store, bundle)
    except BaseException:
        if not had_run:
            store.forget_run(run["run_id"])
        raise


def _write_rows(store: Store, bundle: dict[str, Any]) -> None:
    run = bundle["run"]
    store.begin_run(run["run_id"], run["base_id"], run["spec_json"], run["engine_version"], run["n_steps"])
    for step in bundle["steps"]:
        of_step = {
            name: [
                {k: v for k, v in r.items() if k not in ("run_id", "step")}
                for r in bundle[name]
                if r["step"] == step["step"]
            ]
            for name in ("robust", "transfer", "layers", "warnings")
        }
        cost = _row_of(bundle["efficiency"], step["step"], ("sparsity",))
        budget = _row_of(bundle.get("budgets", []), step["step"], ("sparsity", "clean_acc"))
        store.put_step(
            StepRecord(
                {k: v for k, v in step.items() if k != "finished_at"},
                of_step["robust"],
                of_step["layers"],
                transfer=of_step["transfer"],
                warnings=of_step["warnings"],
                efficiency=cost,
                budget=budget,
            )
        )
    store.finish_run(run["run_id"], run["error"])


def _row_of(rows: list[dict[str, Any]], step: int, joined: tuple[str, ...]) -> dict[str, Any] | None:
    """The row of `step`, without the columns the store joined in from the steps table."""
    row = next((r for r in rows if r["step"] == step), None)
    return None if row is None else {k: v for k, v in row.items() if k not in joined}

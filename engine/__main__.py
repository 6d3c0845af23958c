"""AER Lab engine CLI: run specs and presets, inspect and export cached runs, without a browser.

Examples:
  python -m engine run --preset quickstart --json
  python -m engine run spec.yaml --set schedule.final_sparsity=0.9
  python -m engine show 3fa2c1 --json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from engine.errors import DataUnavailableError, EngineError, SpecError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m engine", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache-dir", help="cache folder (default: $AER_CACHE_DIR or cache/)")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a spec to completion, using the cache")
    run.add_argument("spec", nargs="?", help="YAML or JSON spec file")
    run.add_argument("--preset", help="a named preset instead of a file (see `presets`)")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a spec field, e.g. schedule.final_sparsity=0.9 (repeatable)")
    run.add_argument("--json", action="store_true", help="print the result document as JSON")
    run.add_argument("--quiet", action="store_true", help="no progress bar")

    show = sub.add_parser("show", help="print a cached run's result document")
    show.add_argument("run_id", help="run id or a unique prefix of at least 6 characters")
    show.add_argument("--json", action="store_true", help="print JSON (default: a summary table)")

    ls = sub.add_parser("ls", help="list the runs in the store")
    ls.add_argument("--json", action="store_true")

    sub.add_parser("presets", help="list the named presets")
    sub.add_parser("catalog", help="list the datasets, models, methods, schedules and attacks a spec may name")

    export = sub.add_parser("export", help="export a run's results")
    export.add_argument("run_id")
    export.add_argument("--format", choices=["csv", "json"], required=True)
    export.add_argument("--out", required=True, type=Path)

    data = sub.add_parser("data", help="make sure a dataset is on disk (download where possible)")
    data.add_argument("name", nargs="?", default="fashion_mnist")
    return parser


def _progress_bar():
    """A tqdm bar over the run's checkpoints, created on the first progress report."""
    state = {}

    def update(p) -> None:
        if "bar" not in state:
            from tqdm import tqdm

            state["bar"] = tqdm(total=p.n_steps, unit="step", file=sys.stderr, dynamic_ncols=True,
                                bar_format="{l_bar}{bar}| {n:.2f}/{total} steps [{elapsed}<{remaining}]")
        bar = state["bar"]
        bar.n = p.step + 1 if p.phase == "evaluated" else min(p.step + p.done / max(p.total, 1), p.n_steps)
        bar.set_description(f"step {p.step} of {p.n_steps - 1} · {p.phase}", refresh=False)
        bar.update(0)  # redraws at most every `mininterval` seconds

    def close() -> None:
        if "bar" in state:
            state["bar"].close()

    return close, update


def _cmd_run(args, api) -> int:
    tree = api.load_tree(args.spec, preset=args.preset, overrides=args.overrides)
    close, update = (lambda: None, None) if args.quiet else _progress_bar()
    try:
        doc = api.run_tree(tree, on_progress=update)
    finally:
        close()
    return _print_document(doc, args.json)


def _print_document(doc: dict, as_json: bool) -> int:
    """The document as JSON, or a header line and one summary row per checkpoint."""
    if as_json:
        print(json.dumps(doc, indent=2))
        return 0
    cached = " (cached)" if doc["cached"] else ""
    print(f"run {doc['run_id']} · {doc['status']}{cached} · {len(doc['points'])}/{doc['n_steps']} steps")
    print(f"{'step':>4}  {'sparsity':>8}  {'clean':>6}  robust accuracy by attack and ε")
    for point in doc["points"]:
        curves = {}
        for r in point["robust"]:
            curves.setdefault(r["attack"], []).append(f"{r['eps']:g}:{r['acc']:.3f}")
        text = "  ".join(f"{name} " + " ".join(v) for name, v in curves.items())
        print(f"{point['step']:>4}  {point['sparsity']:>8.3f}  {point['clean_acc']:>6.3f}  {text}")
    return 0


def _cmd_show(args, api) -> int:
    store = api.open_store()
    return _print_document(api.document(store.resolve(args.run_id), store), args.json)


def _cmd_ls(args, api) -> int:
    frame = api.runs_frame()
    if args.json:
        print(frame.assign(created_at=frame["created_at"].astype(str)).to_json(orient="records", indent=2))
    elif frame.empty:
        print("no runs yet: try `python -m engine run --preset smoke`")
    else:
        frame = frame.assign(run_id=frame["run_id"].str[:12]).drop(columns=["error"])
        print(frame.to_string(index=False))
    return 0


def _cmd_presets(args, api) -> int:
    for name, text in api.presets().items():
        print(f"{name:<14} {text}")
    return 0


def _cmd_catalog(args, api) -> int:
    for kind, entries in api.catalog().items():
        print(f"{kind}s:")
        for name, text in entries.items():
            print(f"  {name:<18} {text.splitlines()[0] if text else ''}")
    return 0


def _cmd_export(args, api) -> int:
    store = api.open_store()
    out = api.export(store.resolve(args.run_id), args.format, args.out, store)
    print(f"wrote {out}")
    return 0


def _cmd_data(args, api) -> int:
    from engine.datasets import DATASETS, load_dataset

    DATASETS.get(args.name)
    data = load_dataset(args.name)
    print(f"{args.name}: {len(data.x_train)} training and {len(data.x_test)} test images ready")
    return 0


COMMANDS = {"run": _cmd_run, "show": _cmd_show, "ls": _cmd_ls, "presets": _cmd_presets, "catalog": _cmd_catalog,
            "export": _cmd_export, "data": _cmd_data}


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and run one command; exit 2 for a bad spec, 1 for other errors."""
    args = _parser().parse_args(argv)
    if args.cache_dir:
        os.environ["AER_CACHE_DIR"] = str(Path(args.cache_dir).resolve())
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from engine import api

    try:
        return COMMANDS[args.command](args, api)
    except SpecError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        return 2
    except DataUnavailableError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

"""AER Lab engine CLI: run specs and presets, inspect and export cached runs, without a browser.

Examples:
  python -m engine run --preset quickstart --json
  python -m engine run spec.yaml --set schedule.final_sparsity=0.9
  python -m engine show 3fa2c1 --json
  python -m engine submit --preset quickstart --json && python -m engine worker --procs 1
  python -m engine sweep presets/sweeps/smoke-grid.yaml --executor ray
  python -m engine run-paper hydra && python -m engine check-preset hydra --json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine import api
from engine.errors import DataUnavailableError, EngineError, SpecError
from engine.jobs import worker
from engine.status import Decision


def _job_id(text: str) -> int:
    """A job id as argparse reads it: a positive integer that SQLite can hold."""
    if not text.isdigit() or not 0 < int(text) < 2**63:
        raise argparse.ArgumentTypeError(f"not a job id: {text[:30]!r}")
    return int(text)


def _command(sub: Any, name: str, handler: Callable[[argparse.Namespace], int], **kwargs: Any) -> Any:
    """Add one command: its parser and the function that runs it, defined together."""
    parser = sub.add_parser(name, **kwargs)
    parser.set_defaults(handler=handler)
    return parser


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m engine", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cache-dir", help="cache folder (default: $AER_CACHE_DIR or cache/)")
    sub = parser.add_subparsers(dest="command", required=True)

    run = _command(sub, "run", _cmd_run, help="run a spec to completion, using the cache")
    run.add_argument("spec", nargs="?", help="YAML or JSON spec file")
    run.add_argument("--preset", help="a named preset instead of a file (see `presets`)")
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a spec field, e.g. schedule.final_sparsity=0.9 (repeatable)",
    )
    run.add_argument("--json", action="store_true", help="print the result document as JSON")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument(
        "--allow-long", action="store_true", help="accept a run above the work bound (see the refusal's estimate)"
    )

    show = _command(sub, "show", _cmd_show, help="print a cached run's result document")
    show.add_argument("run_id", help="run id or a unique prefix of at least 6 characters")
    show.add_argument("--json", action="store_true", help="print JSON (default: a summary table)")

    ls = _command(sub, "ls", _cmd_ls, help="list the runs in the store")
    ls.add_argument("--json", action="store_true")

    _command(sub, "presets", _cmd_presets, help="list the named presets")
    _command(
        sub, "catalog", _cmd_catalog, help="list the datasets, models, methods, schedules and attacks a spec may name"
    )

    export = _command(sub, "export", _cmd_export, help="export a run's results, or with --step one checkpoint's model")
    export.add_argument("run_id")
    export.add_argument("--format", choices=["csv", "json", "safetensors", "onnx"], required=True)
    export.add_argument("--step", type=int, help="the checkpoint to export as safetensors or onnx")
    export.add_argument("--out", required=True, type=Path)
    export.add_argument(
        "--shrunk", action="store_true", help="filter pruning: the physically smaller model, pruned filters removed"
    )
    export.add_argument("--force", action="store_true", help="replace an existing file (never a SQLite database)")

    submit = _command(sub, "submit", _cmd_submit, help="queue a spec for the workers (returns at once)")
    submit.add_argument("spec", nargs="?", help="YAML or JSON spec file")
    submit.add_argument("--preset", help="a named preset instead of a file")
    submit.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    submit.add_argument("--json", action="store_true", help="print job_id, run_id and status as JSON")
    submit.add_argument(
        "--allow-long", action="store_true", help="accept a run above the work bound (see the refusal's estimate)"
    )

    status = _command(sub, "status", _cmd_status, help="a job's status and progress")
    status.add_argument("job_id", type=_job_id)
    status.add_argument("--json", action="store_true")

    cancel = _command(sub, "cancel", _cmd_cancel, help="cancel a job (a running one stops between batches)")
    cancel.add_argument("job_id", type=_job_id)

    jobs = _command(sub, "jobs", _cmd_jobs, help="the queue, newest first")
    jobs.add_argument("--json", action="store_true")

    worker = _command(sub, "worker", _cmd_worker, help="run workers that drain the queue")
    worker.add_argument("--procs", type=int, default=1, help="worker processes to keep alive (default 1)")
    worker.add_argument("--lease", type=float, default=30.0, help="lease seconds, renewed by a heartbeat")
    worker.add_argument("--parent-pid", type=int, help="stop when this process exits (the app's server)")
    worker.add_argument(
        "--exit-when-idle", action="store_true", help="one worker, in this process, until the queue is empty"
    )
    worker.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    worker.add_argument("--threads", type=int, help=argparse.SUPPRESS)

    sweep = _command(sub, "sweep", _cmd_sweep, help="run a grid of specs (locally through the queue, or on Ray)")
    sweep.add_argument("sweep", help="sweep YAML: a base (preset or spec) and a grid of field values")
    sweep.add_argument("--executor", choices=["local", "ray"], default="local")
    sweep.add_argument("--ray-address", help="an existing Ray cluster (default: a local instance)")
    sweep.add_argument("--json", action="store_true")
    sweep.add_argument(
        "--allow-long", action="store_true", help="accept a run above the work bound (see the refusal's estimate)"
    )

    _command(sub, "papers", _cmd_papers, help="list the paper presets (one per seed paper, with its claim)")
    paper = _command(sub, "run-paper", _cmd_run_paper, help="run a paper preset's variants, then check its claim")
    paper.add_argument("name", help="a paper preset (see `papers`)")
    paper.add_argument("--reduced", action="store_true", help="the tiny version (synthetic data, a few steps)")
    paper.add_argument("--executor", choices=["local", "ray"], default="local")
    paper.add_argument("--json", action="store_true", help="print the verdict as JSON")
    paper.add_argument(
        "--scale", choices=["laptop", "paper"], default="laptop", help="paper: the paper's own setting (a GPU's work)"
    )
    paper.add_argument("--allow-long", action="store_true", help="run the paper scale even above the work bound")
    check = _command(
        sub, "check-preset", _cmd_check_preset, help="does a paper preset's claim hold in the store? with the numbers"
    )
    check.add_argument("name", help="a paper preset (see `papers`)")
    check.add_argument("--reduced", action="store_true", help="check the tiny version's runs")
    check.add_argument("--json", action="store_true", help="print the verdict as JSON")
    check.add_argument("--scale", choices=["laptop", "paper"], default="laptop", help="judge the paper-scale runs")
    check.add_argument(
        "--decide",
        action="store_true",
        help="an inconclusive claim: evaluate further test images, look by look (planned doublings), until decided",
    )

    decide = _command(
        sub,
        "decide",
        _cmd_decide,
        help="evaluate further test images until a paired comparison is decided (or the split is spent)",
    )
    decide.add_argument("first", help="RUN:STEP (a run id prefix and a step), the checkpoint on the left of −")
    decide.add_argument("second", help="RUN:STEP, the checkpoint it is compared with")
    decide.add_argument("--attack", required=True, help="an attack both runs ran (e.g. pgd_linf)")
    decide.add_argument("--eps", required=True, type=float, help="one ε of that attack's grid")
    decide.add_argument(
        "--margin", type=float, default=0.0, help="decide 'first ≥ second − margin' (0: do they differ)"
    )
    decide.add_argument("--json", action="store_true", help="print the outcome as JSON")

    _command(
        sub, "doctor", _cmd_doctor, help="check the cache; move a damaged database aside; forget damaged checkpoints"
    )

    data = _command(sub, "data", _cmd_data, help="make sure a dataset is on disk (download where possible)")
    data.add_argument("name", nargs="?", default="fashion_mnist")

    bring = _command(
        sub,
        "import",
        _cmd_import,
        help="copy trained weights or an .npz data set into the cache (checked first) and print its spec lines",
    )
    bring.add_argument("file", type=Path, help="weights (.safetensors, .pt, .pth, .bin) or a data set (.npz)")
    return parser


def _progress_bar():
    """A tqdm bar over the run's checkpoints, created on the first progress report."""
    state = {}

    def update(p) -> None:
        if "bar" not in state:
            from tqdm import tqdm  # noqa: PLC0415  tqdm: only when a bar is drawn

            state["bar"] = tqdm(
                total=p.n_steps,
                unit="step",
                file=sys.stderr,
                dynamic_ncols=True,
                bar_format="{l_bar}{bar}| {n:.2f}/{total} steps [{elapsed}<{remaining}]",
            )
        bar = state["bar"]
        bar.n = p.step + 1 if p.finished else min(p.step + p.done / max(p.total, 1), p.n_steps)
        bar.set_description(f"step {p.step} of {p.n_steps - 1} · {p.phase}", refresh=False)
        bar.update(0)  # redraws at most every `mininterval` seconds

    def close() -> None:
        if "bar" in state:
            state["bar"].close()

    return close, update


def _cmd_run(args) -> int:
    trees = api.seed_trees(api.load_tree(args.spec, preset=args.preset, overrides=args.overrides))
    docs = []
    for tree in trees:  # a list of seeds: one run each, in order
        close, update = (lambda: None, None) if args.quiet else _progress_bar()
        try:
            docs.append(api.run_tree(tree, on_progress=update, allow_long=args.allow_long))
        finally:
            close()
    if len(docs) > 1 and args.json:
        print(json.dumps(docs, indent=2))  # one document per seed
        return 0
    return max(_print_document(doc, args.json) for doc in docs)


def _print_document(doc: dict, as_json: bool) -> int:
    """The document as JSON, or a header line and one summary row per checkpoint."""
    if as_json:
        print(json.dumps(doc, indent=2))
        return 0
    cached = " (cached)" if doc["cached"] else ""
    print(f"run {doc['run_id']} · {doc['status']}{cached} · {len(doc['points'])}/{doc['n_steps']} steps")
    print(f"    {api.describe_spec(doc['spec'])}")
    print(f"{'step':>4}  {'sparsity':>8}  {'clean':>6}  robust accuracy by attack and ε")
    for point in doc["points"]:
        curves: dict[str, list[str]] = {}
        for r in point["robust"]:
            curves.setdefault(r["attack"], []).append(f"{r['eps']:g}:{r['acc']:.3f}")
        text = "  ".join(f"{name} " + " ".join(v) for name, v in curves.items())
        if "budget" in point:
            budget = point["budget"]
            cutoff = budget.get("cutoff")
            text += f"  · budget median {budget['budget_q50']:.4g} ({budget['norm']}), cutoff "
            text += f"{cutoff:.4g}" if cutoff is not None else "none"
        print(f"{point['step']:>4}  {point['sparsity']:>8.3f}  {point['clean_acc']:>6.3f}  {text}")
    return 0


def _cmd_show(args) -> int:
    store = api.open_store()
    return _print_document(api.document(store.resolve(args.run_id), store), args.json)


def _cmd_ls(args) -> int:
    frame = api.runs_frame()
    if args.json:
        print(frame.assign(created_at=frame["created_at"].astype(str)).to_json(orient="records", indent=2))
    elif frame.empty:
        print("no runs yet: try `python -m engine run --preset smoke`")
    else:
        frame = frame.assign(run_id=frame["run_id"].str[:12]).drop(columns=["error"])
        print(frame.to_string(index=False))
    if damaged := api.open_store().tampered_runs():
        print(f"{len(damaged)} run(s) damaged (a stored spec edited): run `python -m engine doctor`", file=sys.stderr)
    return 0


def _cmd_presets(args) -> int:
    for name, text in api.presets().items():
        print(f"{name:<14} {text}")
    return 0


def _cmd_catalog(args) -> int:
    for kind, entries in api.catalog().items():
        print(f"{kind}s:")
        for name, text in entries.items():
            print(f"  {name:<18} {text.splitlines()[0] if text else ''}")
    return 0


def _cmd_export(args) -> int:
    store = api.open_store()
    run_id = store.resolve(args.run_id)
    if args.format in ("safetensors", "onnx"):
        if args.step is None:
            raise SpecError([f"--step: give the checkpoint to export as {args.format}"])
        out = api.export_model(run_id, args.step, args.format, args.out, store, force=args.force, shrunk=args.shrunk)
    else:
        out = api.export(run_id, args.format, args.out, store, force=args.force)
    print(f"wrote {out}")
    return 0


def _cmd_doctor(args) -> int:
    for line in api.doctor():
        print(line)
    return 0


def _cmd_data(args) -> int:
    data = api.load_data(args.name)
    print(f"{args.name}: {len(data.x_train)} training and {len(data.x_test)} test images ready")
    return 0


def _cmd_import(args) -> int:
    if not args.file.is_file():
        raise SpecError([f"file: {str(args.file)[:80]} is not a file"])
    if args.file.stat().st_size > api.MAX_UPLOAD_BYTES:
        raise SpecError([f"file: larger than the {api.MAX_UPLOAD_BYTES >> 20} MiB an import takes"])
    data = args.file.read_bytes()
    if args.file.suffix.lower() == ".npz":
        print(f"dataset: {{name: arrays, path: {api.upload_data(args.file.name, data)}}}")
    else:
        print(f"base: {{weights: {api.upload_weights(args.file.name, data)}}}")
    return 0


def _cmd_submit(args) -> int:
    specs = api.load_specs(args.spec, preset=args.preset, overrides=args.overrides)  # one job per seed
    for job in api.submit_all(specs, allow_long=args.allow_long):  # the seeds held to the bound together
        brief = {"job_id": job.job_id, "run_id": job.run_id, "status": str(job.status)}
        print(json.dumps(brief) if args.json else f"job {job.job_id} · run {job.run_id[:12]} · {job.status}")
    return 0


def _describe(job: api.Job) -> str:
    return f"job {job.job_id} · run {job.run_id[:12]} · attempt {job.attempts} · {api.describe_job(job)}"


def _cmd_status(args) -> int:
    job = api.job(args.job_id)
    print(json.dumps(job.as_dict(), indent=2) if args.json else _describe(job))
    return 0


def _cmd_cancel(args) -> int:
    print(_describe(api.cancel(args.job_id)))
    return 0


def _cmd_jobs(args) -> int:
    jobs = api.jobs()
    if args.json:
        print(json.dumps([job.as_dict() for job in jobs], indent=2))
    elif not jobs:
        print("the queue is empty")
    else:
        for job in jobs:
            print(_describe(job))
    return 0


def _cmd_worker(args) -> int:
    root = api.open_store().root
    if args.child:
        worker.serve_child(root, args.lease, args.parent_pid, args.threads)
    elif args.exit_when_idle:
        count = worker.Worker(api.open_store(), lease_seconds=args.lease).serve(exit_when_idle=True)
        print(f"ran {count} jobs; the queue is empty")
    else:
        worker.supervise(root, max(1, args.procs), args.lease, args.parent_pid)
    return 0


def _cmd_sweep(args) -> int:
    results = api.run_sweep(Path(args.sweep), args.executor, args.ray_address, allow_long=args.allow_long)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for row in results:
            print(f"{row['run_id'][:12]}  {row['status']:<9} {row['label']}")
    return 0 if all(r["status"] == api.RunStatus.DONE for r in results) else 1


def _cmd_papers(args) -> int:
    from engine.store.estimate import duration  # noqa: PLC0415  formatting only

    for name, preset in api.paper_presets().items():
        cold = f"≈{preset.cold_seconds / 60:.0f} min cold" if preset.cold_seconds else "cold time not measured"
        print(f"{name:<10} {preset.title} ({cold})\n{'':<10} claim: {preset.claim}")
        print(f"{'':<10} {api.paper_judged_by(name)}")
        if preset.paper_scale is not None:
            scale = api.paper_scale(name)
            print(f"{'':<10} paper scale: {scale['runs']} runs, ≈ {duration(scale['seconds'])} on this machine")
    return 0


def _print_verdict(verdict, as_json: bool, seconds: float | None = None) -> int:
    """A verdict as JSON, or its headline, one line per finding and the table of numbers."""
    if as_json:
        print(json.dumps(verdict.as_dict() | ({"seconds": round(seconds, 1)} if seconds is not None else {}), indent=2))
    else:
        if seconds is not None:
            print(f"ran in {seconds:.0f} s")
        print(verdict.headline)
        for finding in verdict.findings:
            print(f"  [{finding.status}] {finding.claim}: {finding.numbers}")
            if finding.to_decide:
                print(f"      to decide: {finding.to_decide}")
        for note in verdict.notes:
            print(f"  [reported] {note}")
        for table in (verdict.table, verdict.reference):
            if not table.empty:
                print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0 if verdict.status != Decision.INCOMPLETE else 1


def _cmd_run_paper(args) -> int:
    paper = args.scale == "paper"
    if paper and not args.allow_long:
        from engine.store.estimate import duration  # noqa: PLC0415  formatting only

        scale = api.paper_scale(args.name)
        raise SpecError(
            [
                f"{args.name} at paper scale: {scale['runs']} runs, {scale['passes']:,} example-passes, ≈ "
                f"{duration(scale['seconds'])} on this machine; add --allow-long to run it (a GPU or --executor ray)"
            ]
        )
    seconds = api.run_paper(
        args.name, reduced=args.reduced, executor=args.executor, progress=not args.json, paper=paper
    )
    return _print_verdict(api.paper_verdict(args.name, reduced=args.reduced, paper=paper), args.json, seconds)


def _checkpoint(text: str) -> tuple[str, int]:
    run, _, step = text.rpartition(":")
    if not run or not step.isdigit():
        raise SpecError([f"checkpoint {text!r}: write RUN:STEP, a run id prefix and a step number (abc123:3)"])
    return run, int(step)


def _cmd_decide(args) -> int:
    from engine.report.tables import difference_sentence  # noqa: PLC0415  pandas: only for this command

    first, second = _checkpoint(args.first), _checkpoint(args.second)
    before = api.decision(first, second, args.attack, args.eps, args.margin)
    after = api.grow_decision(first, second, args.attack, args.eps, args.margin, progress=not args.json)
    if args.json:
        print(json.dumps({when: _outcome(o) for when, o in (("before", before), ("after", after))}, indent=2))
        return 0
    for when, outcome in (("before", before), ("after", after)):
        what = f"{when}: {outcome['verdict']}"
        print(difference_sentence(outcome["difference"], what))
    if after["verdict"] == Decision.INCONCLUSIVE:
        print("the test split is spent: these checkpoints cannot be told apart on this data set at this ε")
    return 0


def _outcome(outcome: dict) -> dict:
    return {"verdict": outcome["verdict"], **outcome["difference"].as_dict()}


def _cmd_check_preset(args) -> int:
    if args.decide:
        if args.scale == "paper":
            raise SpecError(["check-preset --decide grows the laptop-scale runs (the paper scale sets its own images)"])
        return _print_verdict(api.decide_paper(args.name, reduced=args.reduced, progress=not args.json), args.json)
    return _print_verdict(api.paper_verdict(args.name, reduced=args.reduced, paper=args.scale == "paper"), args.json)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and run one command; exit 2 for a bad spec, 1 for other errors."""
    args = _parser().parse_args(argv)
    if args.cache_dir:
        os.environ["AER_CACHE_DIR"] = str(Path(args.cache_dir).resolve())
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.handler(args)
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


def cli() -> None:
    """The `aer` console script (and `python -m engine`): run `main` and exit with its status."""
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `... | head` ends quietly, as other CLI tools do
    sys.exit(main())


if __name__ == "__main__":
    cli()

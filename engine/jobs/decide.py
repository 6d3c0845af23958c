"""Evaluate until decided: grow a comparison's images chunk by chunk until its interval decides.

A question is two checkpoints scored on the same images, one attack, one ε and a margin: "is
first ≥ second − margin?" (margin 0: "do they differ?"). While the paired interval straddles −margin,
the next chunk of the test split (engine/pipeline.eval_chunk) is attacked on both checkpoints — the
whole ε grid of the attack, as the run itself walks it, so every ε of the curve keeps one n — and the
interval is read again: anytime-valid once images were added (engine/report/sequential.py). Each
chunk commits per checkpoint in one transaction, so a kill loses at most the chunk in flight, and the
numbers are those an uninterrupted run gives (per-image random streams, a seed per chunk).
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from engine.errors import SpecError
from engine.report import sequential
from engine.report.stats import Difference, decide
from engine.spec.attack_options import NoiseOptions, options_model
from engine.status import Decision
from engine.store import extended
from engine.store.db import Fence, Store
from engine.store.frames import compare, same_images

DECIDE_KEY = "decide"
"""The key of a decide job's JSON (a run job's JSON is a spec)."""


@dataclass(frozen=True)
class Question:
    """Is checkpoint `first` (run id, step) at least as robust as `second` − margin under one attack at ε?"""

    first: tuple[str, int]
    second: tuple[str, int]
    attack: str
    eps: float
    margin: float = 0.0

    def as_json(self) -> str:
        """The job's JSON: {"decide": {...}}, keys sorted (the same question, the same job)."""
        return json.dumps({DECIDE_KEY: asdict(self)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | dict[str, Any]) -> "Question":
        """The question of a decide job's JSON."""
        body = (json.loads(text) if isinstance(text, str) else text)[DECIDE_KEY]
        return cls(tuple(body["first"]), tuple(body["second"]), body["attack"], float(body["eps"]), body["margin"])

    def job_key(self) -> str:
        """The jobs table's key of this question (one live job per question)."""
        return "decide:" + hashlib.sha256(self.as_json().encode()).hexdigest()[:20]


GROW_KEY = "grow"
"""The key of a growth job's JSON: a fixed number of chunks for a set of checkpoints (a claim's look)."""


@dataclass(frozen=True)
class Growth:
    """Grow one attack on these checkpoints (run id, step), all scored on the same images, to `chunks`
    further chunks of the test split: a paper claim's next planned look (engine/report/sequential.py)."""

    checkpoints: tuple[tuple[str, int], ...]
    attack: str
    chunks: int
    label: str = ""  # what it decides, in words, for the jobs list

    def as_json(self) -> str:
        """The job's JSON: {"grow": {...}}, keys sorted (the same growth, the same job)."""
        return json.dumps({GROW_KEY: asdict(self)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | dict[str, Any]) -> "Growth":
        """The growth of a growth job's JSON."""
        body = (json.loads(text) if isinstance(text, str) else text)[GROW_KEY]
        checkpoints = tuple((str(run), int(step)) for run, step in body["checkpoints"])
        return cls(checkpoints, body["attack"], int(body["chunks"]), body.get("label", ""))

    def job_key(self) -> str:
        """The jobs table's key of this growth (one live job per growth)."""
        return "grow:" + hashlib.sha256(self.as_json().encode()).hexdigest()[:20]


@dataclass(frozen=True)
class Outcome:
    """Where a question stands: its difference and verdict, and whether the test split is spent."""

    difference: Difference
    verdict: Decision
    exhausted: bool


def is_decide_job(spec_json: str) -> bool:
    """Does a job's JSON hold a question or a growth (rather than a run's spec)?"""
    return spec_json.lstrip().startswith("{") and bool({DECIDE_KEY, GROW_KEY} & set(json.loads(spec_json)))


def is_growth_job(spec_json: str) -> bool:
    """Does a job's JSON hold a growth to a fixed number of chunks?"""
    return is_decide_job(spec_json) and GROW_KEY in json.loads(spec_json)


def standing(store: Store, question: Question) -> Outcome:
    """The question's difference and verdict on the images evaluated so far."""
    difference = compare(question.first, question.second, question.attack, question.eps, store)
    return Outcome(difference, decide(difference.low, difference.high, question.margin), False)


def check_question(store: Store, question: Question) -> None:
    """SpecError naming what makes a question impossible to grow: unpaired checkpoints, an attack that is
    a certificate, or one the runs attack differently."""
    if issubclass(options_model(question.attack), NoiseOptions):
        raise SpecError([f"decide: {question.attack} draws noise per image (a certificate or a smoothed classifier); "
                         "only attacks grow"])  # fmt: skip
    if not same_images(question.first[0], question.second[0], store):
        raise SpecError(["decide: the two runs were scored on different images (dataset, n_samples or seed differ)"])
    attacks = [_attack_spec(store, run, question.attack) for run, _ in (question.first, question.second)]
    if attacks[0] != attacks[1]:
        raise SpecError([f"decide: the two runs attack with different {question.attack} settings; fork one alike"])
    standing(store, question)  # raises SpecError when a checkpoint lacks the result


def _attack_spec(store: Store, run_id: str, attack: str) -> dict[str, Any]:
    spec = json.loads(store.run(run_id)["spec_json"])
    for entry in spec["eval"]["attacks"]:
        if entry["name"] == attack:
            return entry
    raise SpecError([f"decide: run {run_id[:12]} has no attack {attack}"])


def chunk_seed(seed: int, chunk: int) -> int:
    """The random streams of a chunk's images: their own, the same on every attempt."""
    return zlib.crc32(f"{seed}|chunk|{chunk}".encode())


def grow(
    store: Store,
    question: Question,
    fence: Fence | None = None,
    on_chunk: Callable[[int, int, int], None] | None = None,
    max_chunks: int | None = None,
    to_the_end: bool = False,
) -> Outcome:
    """Add chunks to both checkpoints until the question is decided, the split is spent, or `max_chunks`
    more were evaluated; `on_chunk(chunk, checkpoint index, chunks the split holds)` before each
    checkpoint's chunk. `to_the_end` grows to the end of the split whatever the interval says (a plan
    fixed in advance: the whole test split)."""
    check_question(store, question)
    grower = _Grower(store, (question.first, question.second), question.attack, fence)
    added = 0
    while (outcome := standing(store, question)).verdict == Decision.INCONCLUSIVE or to_the_end:
        if max_chunks is not None and added >= max_chunks:
            return outcome
        if not grower.add(grower.done() + 1, on_chunk):
            return Outcome(outcome.difference, outcome.verdict, True)
        added += 1
    return outcome


def grow_to(
    store: Store, growth: Growth, fence: Fence | None = None, on_chunk: Callable[[int, int, int], None] | None = None
) -> bool:
    """Add chunks to every checkpoint of a growth until each has `growth.chunks` (those stored stand);
    False when the test split ran out first. `on_chunk` as for `grow`."""
    check_growth(store, growth)
    grower = _Grower(store, growth.checkpoints, growth.attack, fence)
    return all(grower.add(chunk, on_chunk) for chunk in range(grower.done() + 1, growth.chunks + 1))


def check_growth(store: Store, growth: Growth) -> None:
    """SpecError naming what makes a growth impossible: no checkpoints, runs scored on different images,
    or attacked with different settings, or a checkpoint without the attack."""
    if not growth.checkpoints:
        raise SpecError(["grow: no checkpoints to grow"])
    runs = list(dict.fromkeys(run for run, _ in growth.checkpoints))
    if not all(same_images(runs[0], run, store) for run in runs[1:]):
        raise SpecError(["grow: the runs were scored on different images (dataset, n_samples or seed differ)"])
    if len({json.dumps(_attack_spec(store, run, growth.attack), sort_keys=True) for run in runs}) > 1:
        raise SpecError([f"grow: the runs attack with different {growth.attack} settings"])


class _Grower:
    """Evaluates further chunks of the test split for one attack on a set of checkpoints of runs scored
    on the same images, each chunk of each checkpoint committed in its own transaction."""

    def __init__(self, store: Store, checkpoints, attack: str, fence: Fence | None) -> None:
        from engine.science.catalog import validate  # noqa: PLC0415  torch: only in the process that grows
        from engine.science.data import data_of  # noqa: PLC0415  torch: only in the process that grows

        self.store, self.checkpoints, self.attack, self.fence = store, tuple(checkpoints), attack, fence
        self.specs = {run: validate(json.loads(store.run(run)["spec_json"])) for run, _ in self.checkpoints}
        self.data = data_of(next(iter(self.specs.values())).dataset)
        own = min(next(iter(self.specs.values())).eval.n_samples, len(self.data.x_test))
        self.possible = -(-(len(self.data.x_test) - own) // sequential.CHUNK)

    def done(self) -> int:
        """Chunks every checkpoint has."""
        return min(_chunks(self.store, run, step, self.attack) for run, step in self.checkpoints)

    def add(self, chunk: int, on_chunk: Callable[[int, int, int], None] | None) -> bool:
        """Evaluate chunk `chunk` on every checkpoint lacking it; False when the split holds no such chunk."""
        from engine.pipeline import checkpoint_model, eval_chunk  # noqa: PLC0415  torch: only in the process that grows
        from engine.science.evaluate import robust_curve  # noqa: PLC0415  torch: only in the process that grows

        for index, (run, step) in enumerate(self.checkpoints):
            if _chunks(self.store, run, step, self.attack) >= chunk:
                continue
            spec = self.specs[run]
            x, y = eval_chunk(self.data, spec, chunk)
            if len(x) == 0:
                return False
            if on_chunk is not None:
                on_chunk(chunk, index, self.possible)
            attack = next(a for a in spec.eval.attacks if a.name == self.attack)
            model = checkpoint_model(spec, self.store, step, self.data)
            points = robust_curve(
                model, x, y, attack, batch_size=spec.eval.batch_size, seed=chunk_seed(spec.seed, chunk)
            )
            with self.store.atomic() as db:
                if self.fence:
                    self.fence.check(db)
                extended.put_chunk(db, run, step, self.attack, chunk, points)
        return True


def _chunks(store: Store, run_id: str, step: int, attack: str) -> int:
    return extended.chunks_done(store.db, run_id, step, attack)


@dataclass(frozen=True)
class Cost:
    """What growing a question may take: images it may add, seconds per chunk (both checkpoints), and a
    rough count of images that would decide it (None when the gap is zero or unknown)."""

    images_left: int
    seconds_per_chunk: float | None
    images_to_decide: int | None


SEQUENTIAL_PRICE = 3.0
"""How many more images the anytime-valid interval needs than the fixed-n one for the same decision: its
width is 1.5–2.2× Tango's at the same n (500–10,000 images, 4–30 % discordant), so 2–5× the images."""


def cost(store: Store, question: Question, n_test: int) -> Cost:
    """The cost estimate shown beside "Decide this": from the attack's measured seconds per image on the
    run's own images, and the paired sample size at the observed gap and discordance (McNemar, Connor 1987)."""
    from engine.report.stats import images_to_decide  # noqa: PLC0415  scipy: only when a cost is shown

    difference = standing(store, question).difference
    rows = [
        r
        for r in store.robust([question.first[0], question.second[0]])
        if r["attack"] == question.attack
        and r["eps"] == question.eps
        and (r["run_id"], r["step"]) in (question.first, question.second)
    ]
    per_image = [r["seconds"] / r["n_own"] for r in rows if r.get("seconds") and r.get("n_own")]
    seconds = 2 * sequential.CHUNK * max(per_image) if per_image else None
    gap = difference.diff + question.margin
    needed = images_to_decide(gap, difference.discordant / max(difference.n, 1)) if difference.n else None
    return Cost(max(n_test - difference.n, 0), seconds, int(needed * SEQUENTIAL_PRICE) if needed else None)

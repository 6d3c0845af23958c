"""Decide a paper claim its images cannot: grow its evaluation to the next look of a plan fixed before the
first (engine/report/sequential.py: the runs' own n, doubled at each look, up to the whole test split;
every look judged at the Bonferroni level over the looks), until the claim is decided or the split is
spent.

Every checkpoint the claim's attack scored, in every run of the preset, grows by the same images, so
the claim's paired bootstrap stays paired; engine/papers/presets.judge reads the grown rows at their last
complete look. The workers grow one look per job (engine/jobs/decide.Growth); the CLI's
`check-preset NAME --decide` and `decide_claim` walk the looks here and now.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from engine.errors import SpecError
from engine.jobs.decide import Growth, grow_to
from engine.papers.claims import Verdict
from engine.papers.presets import UNGROWABLE, check, collect, load_paper
from engine.report import sequential
from engine.status import Decision
from engine.store.db import Store
from engine.store.estimate import duration


@dataclass(frozen=True)
class ClaimGrowth:
    """Where growing a preset's claim stands: the images its attack's checkpoints share now (`n`, of which
    `n_own` the runs' own), the planned looks, the next one with the growth that reaches it (None once
    the split is spent), and the seconds that growth should take here."""

    n: int
    n_own: int
    n_test: int
    looks: list[int]
    next_look: int | None
    growth: Growth | None
    seconds: float | None

    @property
    def look(self) -> int:
        """The last complete look (1-based)."""
        return self.looks.index(sequential.last_look(self.n, self.n_own, self.n_test)) + 1

    def line(self) -> str:
        """The plan and the next step, in words, for the button's caption and the CLI."""
        plan = (
            f"look {self.look} of {len(self.looks)} planned ({' → '.join(f'{n:,}' for n in self.looks)} images, every "
            f"interval at {100 * sequential.plan_level(self.n_own, self.n_test):.4g} %, Bonferroni over the looks)"
        )
        if self.next_look is None or self.growth is None:
            return f"{plan}; the test split is spent"
        cost = f", about {duration(self.seconds)} here" if self.seconds else ""
        return (
            f"{plan}; the next look attacks {self.next_look - self.n:,} more images on "
            f"{len(self.growth.checkpoints)} checkpoints{cost}"
        )


def claim_growth(name: str, store: Store, reduced: bool = False) -> ClaimGrowth:
    """The growth plan of a preset's claim (SpecError naming why it cannot grow: several seeds, a check on
    transferred examples, runs unfinished, or results without per-image records)."""
    preset = load_paper(name)
    attack = preset.options.get("attack")
    if len(preset.seeds) > 1:
        raise SpecError([f"{name}: a claim judged over several seeds grows by more seeds, not more images"])
    if preset.check in UNGROWABLE or not attack:
        raise SpecError([f"{name}: its claim cannot grow: {UNGROWABLE.get(preset.check, 'it names no attack')}"])
    results = collect(preset, store, reduced)
    if results.missing():
        raise SpecError([f"{name}: runs not finished yet: {', '.join(results.missing())}"])
    rows = results.robust[results.robust["attack"] == attack]
    if rows.empty or rows["n"].isna().any() or rows["correct"].map(lambda c: not isinstance(c, bytes)).any():
        raise SpecError([f"{name}: some {attack} results predate per-image records; re-run them to grow"])
    n, n_own = int(rows["n"].min()), int(rows["n_own"].max())
    last = sequential.last_look(n, n_own, results.n_test)
    following = sequential.next_look(last, n_own, results.n_test)
    checkpoints = tuple(dict.fromkeys((str(r), int(s)) for r, s in zip(rows["run_id"], rows["step"])))
    growth = seconds = None
    if following is not None:
        chunks = math.ceil((following - n_own) / sequential.CHUNK)
        growth = Growth(checkpoints, attack, chunks, f"{name}: {following:,} images")
        seconds = _seconds(store, checkpoints, attack, following - n)
    looks = sequential.claim_looks(n_own, results.n_test)
    return ClaimGrowth(n, n_own, results.n_test, looks, following, growth, seconds)


def _seconds(store: Store, checkpoints: tuple[tuple[str, int], ...], attack: str, images: int) -> float | None:
    """Seconds to attack `images` more on every checkpoint, from each curve's measured seconds per image."""
    rows = store.robust(list(dict.fromkeys(run for run, _ in checkpoints)))
    per_image = {
        (r["run_id"], r["step"]): r["seconds"] / r["n_own"]
        for r in rows
        if r["attack"] == attack and r.get("seconds") and r.get("n_own")
    }
    known = [per_image[c] for c in checkpoints if c in per_image]
    return images * sum(known) * len(checkpoints) / len(known) if known else None


def decide_claim(
    name: str,
    store: Store,
    reduced: bool = False,
    on_look: Callable[[ClaimGrowth], None] | None = None,
    on_chunk: Callable[[int, int, int], None] | None = None,
) -> Verdict:
    """Grow a preset's claim look by look while it is inconclusive and the split has images left (the
    CLI's `check-preset NAME --decide`); `on_look` before each look's growth. Returns the last verdict."""
    verdict = check(name, store, reduced)
    while verdict.status == Decision.INCONCLUSIVE:
        plan = claim_growth(name, store, reduced)
        if plan.growth is None:
            break
        if on_look is not None:
            on_look(plan)
        grow_to(store, plan.growth, on_chunk=on_chunk)
        verdict = check(name, store, reduced)
    return verdict

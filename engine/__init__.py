"""AER Lab engine: specs, training, pruning, attacks, evaluation and the run store.

Importing the package is cheap (no torch); heavy modules load when first used.
"""

import os

ENGINE_VERSION = "0.8.0"
"""Bumped whenever a change alters numbers or what a run stores; it is part of every run id.
0.8.0: AutoAttack and its parts run Croce & Hein's own code (pyautoattack), not torchattacks'."""

# torch's OpenMP (libgomp) lets a thread waiting at a barrier spin 300,000 times before it sleeps.
# On 2 cores shared with a browser or another process those spins take the core a working thread
# needs. The teaching demo clicked in Chromium beside one busy core took 200.6 s by default (3.41× its
# quiet time) and 85.8 s with 8,000 spins (1.49×), quiet 57.5 s; 2,000 spins cost the quiet run 5-9 %
# (bench/teaching.py, 2026-11-27). Waiting changes no arithmetic: the weights are bit-identical
# (tests/test_threads.py). libgomp reads this when torch loads it, so it is set here, before any torch
# import; a value the user set is kept.
os.environ.setdefault("GOMP_SPINCOUNT", "8000")

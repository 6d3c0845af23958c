"""AER Lab engine: specs, training, pruning, attacks, evaluation and the run store.

Importing the package is cheap (no torch); heavy modules load when first used.
"""

ENGINE_VERSION = "0.6.0"
"""Bumped whenever a change alters numbers or what a run stores; it is part of every run id."""

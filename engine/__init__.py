"""AER Lab engine: specs, training, pruning, attacks, evaluation and the run store.

Importing the package is cheap (no torch); heavy modules load when first used.
"""

ENGINE_VERSION = "0.5.0"
"""Bumped whenever a change alters numbers; it is part of every run id."""

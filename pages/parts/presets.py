"""Readings of the presets that every session of Home shows alike (pass them to `pages.derived`)."""

from engine import api


def estimate_line(name: str) -> str:
    """How long the preset `name` will take here, in a sentence (from this cache's earlier timings)."""
    return api.estimate(api.load_spec(preset=name)).line()


def preset_run_id(name: str) -> str:
    """The run id the preset `name` computes to."""
    return api.load_spec(preset=name).run_id()

"""Run specs: typed, frozen, validated descriptions of a run, schedules, and reading spec files.

A leaf of the engine: it imports nothing that computes (no torch).
"""

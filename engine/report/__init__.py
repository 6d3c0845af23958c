"""Reporting: pure figure builders (DataFrame in, Figure out) and summaries (AUC, sweet spots, hygiene)."""

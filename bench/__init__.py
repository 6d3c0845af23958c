"""AER Lab benchmarks: each figure printed as a ratio or a time measured in the same run."""

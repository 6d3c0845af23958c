"""Pruning: masks and scores, structured groups, HYDRA, robustness sensitivity (MRS), shrinking
filter-pruned models, and the registry of methods built from them.
"""

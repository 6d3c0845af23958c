"""The science: data, models, training and its losses, attacks, pruning, evaluation and efficiency.

Pure computation on tensors; it reads specs and never touches the store.
"""

"""Storage: the SQLite run store, verified checkpoints, portable run bundles, and the frames read from them."""

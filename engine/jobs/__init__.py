"""Background jobs: the queue in the SQLite store and the workers that drain it."""

"""Use cases. Services take ports as arguments and hold the rules; no I/O of their own."""

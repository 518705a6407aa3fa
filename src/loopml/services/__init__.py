"""Use cases. Services take ports as constructor arguments and hold the rules; no I/O of their own."""

"""Adapters: the implementations of the ports (SQL, files, memory, model libraries, git)."""

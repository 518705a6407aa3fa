"""Artifact storage adapters: content-addressed blobs on a local directory or an object store."""

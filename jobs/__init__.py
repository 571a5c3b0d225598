"""Thin entrypoints, one per pipeline stage (``python -m jobs.<stage> --config recipes/...``)."""

"""Benchmarks: run times of the flows against plain scripts doing the same work."""

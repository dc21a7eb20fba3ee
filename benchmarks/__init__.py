"""Benchmarks: each figure next to its reference, measured in the same run (`make bench`)."""

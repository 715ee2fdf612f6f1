"""Benchmarks (`make bench`): every figure a ratio of two measurements taken in the same run."""

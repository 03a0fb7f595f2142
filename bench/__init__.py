"""Benchmarks: `make bench`, `make bench-copyright`, `make bench-e2e`. They print ratios against
a reference and measured figures; tests run small, bounded forms of each."""

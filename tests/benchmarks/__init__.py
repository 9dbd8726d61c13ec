"""Stand-alone benchmarks (not collected by pytest; see README.md in this folder)."""

"""statusdb's benchmarks: `make bench` (small scale) and `make bench-large` (full scale).

Run with `python -m bench --scale small|large`. See bench/README.md for the cases, the plans
that serve them and the measured numbers.
"""

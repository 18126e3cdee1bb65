"""Benchmarks (DESIGN §10): each measures our code beside a named peer in the same run and reports ratios.

Run them all with `make bench` (`.venv/bin/python -m bench`); figures go to `bench/RESULTS.md`.
"""

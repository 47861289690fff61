"""Hotline benchmarks: one module per figure (``bench_*.py``), never collected by pytest.

Run all with ``python -m benchmarks`` or one with ``python -m benchmarks.bench_replay``.
Each prints the machine, input size, the figure and the ratio against the naive
baseline measured in the same run, and writes JSON to ``benchmarks/results/``.
"""

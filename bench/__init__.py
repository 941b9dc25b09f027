"""rnnkit's benchmarks (``python -m bench.speed``, or ``rnnkit bench``)."""

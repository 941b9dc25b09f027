"""rnnkit's speed benchmark, shipped in the package so that ``rnnkit bench`` works from an
installed wheel: ``python -m rnnkit.bench [--quick] [--json PATH] ...`` (the same as
``rnnkit bench ...``); see :mod:`rnnkit.bench.speed`. The saved reports behind the README's
tables stay in the repository's ``bench/`` folder (``results-*.json``)."""

from .speed import main, run

__all__ = ["main", "run"]

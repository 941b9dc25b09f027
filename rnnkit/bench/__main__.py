"""``python -m rnnkit.bench``: the same as ``rnnkit bench``."""

from rnnkit.bench.speed import main

if __name__ == "__main__":
    main()

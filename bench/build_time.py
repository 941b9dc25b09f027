"""The first build of rnnkit's C++ kernels: its wall time and CPU time, and each file's.

    PYTHONPATH=. python bench/build_time.py [--files] [--repeat N]

Each run builds the kernels as a new user's first run does (``compiled.load()`` in a fresh
Python process) into a new temporary ``TORCH_EXTENSIONS_DIR``, and prints its wall time and the
CPU seconds (user + system) of everything it ran: Python, ninja, the compiler, the linker.
``--files`` then compiles each translation unit again, one at a time, with the command line of
the build's own ``build.ninja``, and prints each one's CPU seconds, the costliest first: with
two cores the wall time is at least the larger of the costliest file and half the total.

CPU seconds hardly depend on what else the machine runs; wall seconds do: the load average
(start and end) is printed with them, and a wall time is a measurement only on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_BUILD = "import rnnkit._kernels.compiled as c; c.load()"


def _cpu_of(command: list[str] | str, **kwargs) -> float:  # type: ignore[no-untyped-def]
    """User + system seconds of ``command`` and its children (run to completion)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command, check=True, **kwargs)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def build(root: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of a first build into ``root``."""
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(root)}
    env.pop("RNNKIT_NO_EXTENSION", None)
    start = time.perf_counter()
    cpu = _cpu_of([sys.executable, "-c", _BUILD], env=env, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start, cpu


def files(root: Path) -> list[tuple[str, float]]:
    """Each translation unit's CPU seconds, compiled alone with the build's command line."""
    (folder,) = [p for p in root.iterdir() if p.is_dir() and p.name.startswith("rnnkit_cpu_")]
    ninja = (folder / "build.ninja").read_text()
    variables = dict(re.findall(r"^(\w+) = (.*)$", ninja, re.MULTILINE))
    rule = re.search(r"^rule compile\n  command = (.*)$", ninja, re.MULTILINE)
    assert rule is not None, "no compile rule in build.ninja"
    costs = []
    with tempfile.TemporaryDirectory() as scratch:
        for obj, source in re.findall(r"^build (\S+\.o): compile (\S+)$", ninja, re.MULTILINE):
            if not Path(source).exists():  # a unit written in the build's folder before its rename
                source = str(folder / Path(source).name)
            command = rule.group(1).replace("$in", source).replace("$out", f"{scratch}/{obj}")
            command = re.sub(r"\$(\w+)", lambda m: variables.get(m.group(1), ""), command)
            costs.append((Path(source).name, _cpu_of(shlex.split(command))))
    return sorted(costs, key=lambda item: -item[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", action="store_true", help="each file's CPU seconds too")
    parser.add_argument("--repeat", type=int, default=1, help="builds to run (default 1)")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{cores} cores; {sys.executable}")
    for run in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="rnnkit-build-") as root:
            load = os.getloadavg()[0]
            wall, cpu = build(Path(root))
            print(f"build {run + 1}: {wall:.1f} s wall, {cpu:.1f} CPU-seconds "
                  f"(load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end)",
                  flush=True)
            if args.files and run == args.repeat - 1:
                costs = files(Path(root))
                for name, seconds in costs:
                    print(f"  {name:<16} {seconds:5.1f} CPU-seconds")
                print(f"  {'all files':<16} {sum(s for _, s in costs):5.1f} CPU-seconds "
                      "(compiled one at a time)")


if __name__ == "__main__":
    main()

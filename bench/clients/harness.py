"""rnnkit under three forecasting libraries, unmodified: their tests, a fit, their predictions.

Each library lives in its own virtual environment (with rnnkit installed editable); this
script runs in any Python and starts the library's interpreter for every measurement, once
with rnnkit's acceleration off and once on. Acceleration is switched on from outside the
library, by ``RNNKIT_ACCELERATE=1`` in the environment the process starts with (see
``accelerated``), never by editing the library. Commands (README.md beside this file has the
whole recipe)::

    harness.py source darts --python VENV/bin/python --repo MIRROR --dest SRC
    harness.py tests  darts --python VENV/bin/python --src SRC --out results/darts-tests.json
    harness.py fit    darts --python VENV/bin/python --out results/darts-fit.json
    harness.py table  results/*.json

``source`` extracts the library's repository at the tag of the installed version (its test
files are not in its wheel); ``tests`` runs the recurrent-model test files there;
``fit`` runs ``workloads.py`` at one thread and at the default thread count; ``table`` prints
the markdown table from the saved reports.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


@dataclass(frozen=True)
class Library:
    distribution: str  # the name pip knows it by
    tag_prefixes: tuple[str, ...]  # its repository tags a release as PREFIX + version
    tests: tuple[str, ...]  # its recurrent-model test files, relative to the repository
    paths: tuple[str, ...]  # what of its repository they need (the package, tests, data)
    # pytest options: its configuration's coverage options dropped (pytest-cov is not needed)
    pytest_options: tuple[str, ...] = ()
    # files of its repository that its tests read and would otherwise download:
    # repository path -> path to copy it to
    test_data: dict[str, str] = field(default_factory=dict)


LIBRARIES = {
    "darts": Library(
        "darts", ("",),
        ("darts/tests/models/forecasting/test_RNN.py",
         "darts/tests/models/forecasting/test_block_RNN.py"),
        ("darts", "pyproject.toml")),
    "neuralforecast": Library(
        "neuralforecast", ("v", ""),
        ("tests/test_models/test_lstm.py", "tests/test_models/test_gru.py",
         "tests/test_models/test_rnn.py", "tests/test_models/test_dilated_rnn.py",
         "tests/test_models/test_dummy_recurrent.py"),
        ("neuralforecast", "tests", "pyproject.toml"),
        ("-o", "addopts=")),
    "pytorch-forecasting": Library(
        "pytorch-forecasting", ("v", ""),
        ("tests/test_models/test_nn/test_rnn.py", "tests/test_models/test_rnn_model.py",
         "tests/test_models/test_deepar.py",
         "tests/test_models/test_temporal_fusion_transformer.py"),
        ("pytorch_forecasting", "tests", "examples/data", "pyproject.toml"),
        ("-o", "addopts=-rsxX"),
        {"examples/data/stallion.parquet": "pytorch_forecasting/data/stallion.parquet"}),
}

# printed by the library's interpreter: whether torch.nn's recurrent modules run on rnnkit
PROBE = "import torch, rnnkit; print(rnnkit.is_accelerated())"


def accelerated(on: bool, library: str) -> dict[str, str]:
    """The environment of a library process: rnnkit's acceleration on or off.

    ``RNNKIT_ACCELERATE=1`` turns ``rnnkit.accelerate()`` on at ``import torch`` (through the
    ``torch.backends`` entry point of the installed rnnkit), so the library's code is untouched.
    """
    env = dict(os.environ)
    env["RNNKIT_ACCELERATE"] = "1" if on else "0"
    # one kernel cache per environment: a cache built by another interpreter is rebuilt inside
    # the first forward pass, which would be timed
    env["TORCH_EXTENSIONS_DIR"] = str(Path(tempfile.gettempdir()) / f"rnnkit-ext-{library}")
    env.pop("PYTHONPATH", None)  # the library's environment, not the caller's checkout
    env.pop("TORCH_DEVICE_BACKEND_AUTOLOAD", None)  # 0 there would keep the switch from working
    return env


def installed_version(python: str, library: Library) -> str:
    return subprocess.run(
        [python, "-c",
         f"import importlib.metadata as m; print(m.version({library.distribution!r}))"],
        check=True, capture_output=True, text=True).stdout.strip()


def probe(python: str, name: str, on: bool) -> str:
    """Whether the library's interpreter runs torch.nn.LSTM on rnnkit (and build its kernels)."""
    warm = "import rnnkit.nn, torch; rnnkit.nn.LSTM(2, 3)(torch.zeros(1, 1, 2));"
    return subprocess.run([python, "-c", warm + PROBE], check=True, capture_output=True,
                          text=True, env=accelerated(on, name)).stdout.strip()


def check_switch(python: str, name: str) -> None:
    """Stop unless the library's interpreter runs torch.nn on rnnkit exactly when asked."""
    states = {on: probe(python, name, on) for on in (False, True)}
    if states != {False: "False", True: "True"}:
        sys.exit(f"{python}: rnnkit.is_accelerated() is {states[False]} with "
                 f"RNNKIT_ACCELERATE=0 and {states[True]} with RNNKIT_ACCELERATE=1; is rnnkit "
                 "installed in that environment (pip install -e), with its entry point?")


def source(args: argparse.Namespace) -> None:
    library = LIBRARIES[args.library]
    version = installed_version(args.python, library)
    tags = subprocess.run(["git", "-C", args.repo, "tag"], check=True, capture_output=True,
                          text=True).stdout.split()
    tag = next((p + version for p in library.tag_prefixes if p + version in tags), None)
    if tag is None:
        sys.exit(f"{args.repo} has no tag for {library.distribution} {version} "
                 f"(tried {[p + version for p in library.tag_prefixes]})")
    dest = Path(args.dest)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    # only the paths the tests need, through a private index: a snapshot of the repository
    # may lack its largest files (data sets), which `git archive` of the whole tag stops on
    env = {**os.environ, "GIT_INDEX_FILE": str(dest / ".index")}
    git = ["git", "--git-dir", args.repo]
    subprocess.run([*git, "read-tree", tag], check=True, env=env)
    files = subprocess.run([*git, "ls-files", "-z", "--", *library.paths], check=True,
                           env=env, capture_output=True).stdout
    subprocess.run([*git, "checkout-index", "-z", "--stdin", f"--prefix={dest}/"], input=files,
                   check=True, env=env)
    (dest / ".index").unlink()
    for origin, target in library.test_data.items():
        shutil.copyfile(dest / origin, dest / target)
    print(f"{library.distribution} {version}: {args.repo} at {tag} -> {dest}")


def junit_counts(path: Path) -> dict[str, object]:
    cases = ElementTree.parse(path).getroot().iter("testcase")
    outcome: dict[str, str] = {}
    for case in cases:
        kinds = {child.tag for child in case} & {"failure", "error", "skipped"}
        name = f"{case.get('classname')}::{case.get('name')}"
        outcome[name] = "failed" if kinds & {"failure", "error"} else (
            "skipped" if kinds else "passed")
    counts = {k: sum(v == k for v in outcome.values()) for k in ("passed", "failed", "skipped")}
    return {**counts, "not_passed": sorted(k for k, v in outcome.items() if v == "failed")}


def tests(args: argparse.Namespace) -> None:
    library = LIBRARIES[args.library]
    report: dict[str, object] = {"library": args.library,
                                 "version": installed_version(args.python, library),
                                 "test_files": args.files or list(library.tests)}
    files = report["test_files"]
    check_switch(args.python, args.library)
    for mode in ("off", "on"):
        on = mode == "on"
        junit = Path(tempfile.mkdtemp()) / "junit.xml"
        start = time.perf_counter()
        done = subprocess.run(
            [args.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
             f"--junitxml={junit}", *library.pytest_options, *files],
            cwd=args.src, env=accelerated(on, args.library), capture_output=True, text=True)
        if not junit.exists():
            sys.exit(f"pytest ran no test (exit {done.returncode}):\n{done.stdout[-3000:]}"
                     f"{done.stderr[-3000:]}")
        report[f"tests_{mode}"] = {**junit_counts(junit), "seconds": time.perf_counter() - start,
                                   "exit": done.returncode,
                                   "tail": done.stdout.splitlines()[-3:]}
        print(mode, report[f"tests_{mode}"], flush=True)
    Path(args.out).write_text(json.dumps(report, indent=1))


def fit(args: argparse.Namespace) -> None:
    library = LIBRARIES[args.library]
    report: dict[str, object] = {"library": args.library,
                                 "version": installed_version(args.python, library),
                                 "runs": []}
    work = Path(tempfile.mkdtemp(prefix="rnnkit-clients-"))
    check_switch(args.python, args.library)
    runs: list[dict[str, object]] = report["runs"]  # type: ignore[assignment]
    for threads in args.threads:
        for mode in ("off", "on"):  # interleaved, so a change in the machine's load hits both
            stem = work / f"{args.library}-{threads}-{mode}"
            env = accelerated(mode == "on", args.library)
            if threads:
                env["OMP_NUM_THREADS"] = str(threads)
            subprocess.run([args.python, str(HERE / "workloads.py"), args.library,
                            "--threads", str(threads), "--out", f"{stem}.json",
                            "--predictions", f"{stem}.npy", *(["--quick"] if args.quick else [])],
                           check=True, env=env)
            run = json.loads(Path(f"{stem}.json").read_text())
            run.update(mode=mode, requested_threads=threads)
            runs.append(run)
            print(run, flush=True)
        off, on = (_load(work / f"{args.library}-{threads}-{m}.npy") for m in ("off", "on"))
        report.setdefault("max_abs_prediction_difference", {})[str(threads)] = float(
            abs(off - on).max())
        report.setdefault("prediction_scale", {})[str(threads)] = float(abs(off).max())
    Path(args.out).write_text(json.dumps(report, indent=1))


def _load(path: Path):  # type: ignore[no-untyped-def]
    import numpy

    return numpy.load(path)


def table(args: argparse.Namespace) -> None:
    reports: dict[str, dict[str, Any]] = {}
    for path in args.reports:
        report = json.loads(Path(path).read_text())
        merged = reports.setdefault(report["library"], {})
        for key, value in report.items():  # fit reports at other thread counts add up
            if key == "runs":
                merged.setdefault(key, []).extend(value)
            elif isinstance(value, dict) and key.startswith(("max_abs", "prediction_scale")):
                merged.setdefault(key, {}).update(value)
            else:
                merged[key] = value
    print("| library | version | tests off / on | threads | recurrence s off / on (x) "
          "| fit wall s off / on (x) | max pred. diff |")
    print("|---|---|---|---|---|---|---|")
    for name, report in reports.items():
        counts = "-"
        if "tests_off" in report:
            counts = " / ".join("{passed}p {failed}f {skipped}s".format(**report[f"tests_{m}"])
                                for m in ("off", "on"))
        runs = report.get("runs", [])
        for threads in sorted({r["requested_threads"] for r in runs}) or [None]:
            pair = {r["mode"]: r for r in runs if r["requested_threads"] == threads}
            cells = ["-"] * 4
            if len(pair) == 2:
                difference = report["max_abs_prediction_difference"][str(threads)]
                cells = [f"{threads or 'default'} ({pair['off']['threads']})",
                         _pair(pair, "recurrence_s"), _pair(pair, "fit_s"), f"{difference:.2g}"]
            print(f"| {name} | {report['version']} | {counts} | " + " | ".join(cells) + " |")


def _pair(pair: dict[str, dict[str, float]], key: str) -> str:
    off, on = pair["off"][key], pair["on"][key]
    return f"{off:.1f} / {on:.1f} ({off / on:.2f}x)"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, handler in (("source", source), ("tests", tests), ("fit", fit)):
        command = commands.add_parser(name)
        command.set_defaults(handler=handler)
        command.add_argument("library", choices=sorted(LIBRARIES))
        command.add_argument("--python", required=True,
                             help="the interpreter of the library's environment")
        if name == "source":
            command.add_argument("--repo", required=True, help="a clone of its repository")
            command.add_argument("--dest", required=True)
        if name == "tests":
            command.add_argument("--src", required=True, help="`source`'s --dest")
            command.add_argument("--files", nargs="+",
                                 help="these of its test files (default: all those listed)")
        if name in ("tests", "fit"):
            command.add_argument("--out", required=True, help="JSON report")
        if name == "fit":
            command.add_argument("--threads", type=int, nargs="+", default=[1, 0],
                                 help="thread counts (0: torch's default)")
            command.add_argument("--quick", action="store_true",
                                 help="a few training steps: checks the pipeline only")
    command = commands.add_parser("table")
    command.set_defaults(handler=table)
    command.add_argument("reports", nargs="+")
    args = parser.parse_args(argv)
    args.handler(args)


if __name__ == "__main__":
    main()

"""csrc/vmath.h's vectorised exp, sigmoid and tanh against float64, on every instruction set
this CPU runs (AVX-512, AVX2, portable): the error bounds its header states, NaN kept, +-inf
taken to the limits. The check is a small C++ program (vmath_check.cpp) built with g++ here."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

CSRC = Path(__file__).parents[2] / "rnnkit" / "_kernels" / "csrc"
CHECK = Path(__file__).with_name("vmath_check.cpp")

# (max absolute error, max relative error): the bounds stated in vmath.h, float32 results.
BOUNDS = {"exp": (None, 1.5e-7), "sigmoid": (1e-7, 2e-7), "tanh": (1e-7, 2e-7)}


@pytest.fixture(scope="module")
def errors(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], tuple[float, float]]:
    compiler = shutil.which("g++")
    if compiler is None:
        pytest.skip("no g++ to build the check")
    binary = tmp_path_factory.mktemp("vmath") / "vmath_check"
    subprocess.run([compiler, "-O2", "-std=c++17", f"-I{CSRC}", str(CHECK), "-o", str(binary)],
                   check=True, capture_output=True)
    lines = subprocess.run([str(binary)], check=True, capture_output=True,
                           text=True).stdout.split("\n")
    result = {}
    for line in filter(None, lines):
        isa, name, max_abs, max_rel = line.split()
        result[isa, name] = (float(max_abs), float(max_rel))
    return result


def test_every_function_on_every_instruction_set_within_its_bound(
        errors: dict[tuple[str, str], tuple[float, float]]) -> None:
    isas = {isa for isa, _ in errors}
    assert "portable" in isas
    for (isa, name), (max_abs, max_rel) in errors.items():
        abs_bound, rel_bound = BOUNDS[name]
        assert max_rel <= rel_bound, (isa, name, max_rel)  # NaN (a failed special) fails too
        if abs_bound is not None:
            assert max_abs <= abs_bound, (isa, name, max_abs)
        else:
            assert max_abs == max_abs, (isa, name)  # not NaN: NaN in, NaN out; limits at +-inf
    assert len(errors) == 3 * len(isas)


def test_instruction_sets_agree_with_the_portable_path(
        errors: dict[tuple[str, str], tuple[float, float]]) -> None:
    """Same algorithm everywhere: the vector paths' errors are the portable path's up to the
    rounding of fused multiply-adds (never, say, a lower-degree polynomial on one of them)."""
    for (isa, name), (_, max_rel) in errors.items():
        portable = errors["portable", name][1]
        assert max_rel <= 1.25 * portable + 1e-8, (isa, name, max_rel, portable)

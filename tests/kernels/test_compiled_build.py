"""The kernel build's life cycle: a build killed at any point (SIGKILL, SIGTERM, Ctrl-C) leaves
the next process able to build and run; a process that finds a live build waits for it and uses
its library; the build folder's name changes with whatever makes a build different.

The kill tests run ``compiled._build_library`` (the real lock, partial folder and rename) on a
one-function stand-in source, compiled through a wrapper of the C++ compiler that marks each
stage and, when asked, sleeps in it, so a signal lands inside the stage it names.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from rnnkit._kernels import compiled

pytestmark = pytest.mark.skipif(not hasattr(os, "killpg") or shutil.which("c++") is None,
                                reason="needs POSIX signals and a C++ compiler")

_SOURCE = 'extern "C" int rnnkit_standin() { return 42; }\n'
_WRAPPER = """#!/bin/sh
# marks the stage it runs (compile or link); in the stage named by $STANDIN_HOLD it waits until
# the file $STANDIN_MARKS/go exists; then it compiles
case " $* " in
  *" -c "*) stage=compile ;;
  *" -shared "*) stage=link ;;
  *) stage=other ;;
esac
touch "$STANDIN_MARKS/$stage"
if [ "$stage" = "$STANDIN_HOLD" ]; then
  while [ ! -e "$STANDIN_MARKS/go" ]; do sleep 0.05; done
fi
exec c++ "$@"
"""
_SCRIPT = """
import ctypes, sys
from pathlib import Path
from rnnkit._kernels import compiled
root, source = Path(sys.argv[1]), Path(sys.argv[2])
library = compiled._build_library("standin", [source], ["-O0"], root, sys.stderr)
print(ctypes.CDLL(library).rnnkit_standin())
"""


def _restore_sigint() -> None:
    # the suite may run with SIGINT ignored (a background job): a child inherits that, and
    # Python then installs no KeyboardInterrupt handler; Ctrl-C must reach it as in a terminal
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def standin(tmp_path: Path):
    """(start, wait): start a build of the stand-in in a subprocess, in its own session so the
    whole group (Python, ninja, the compilers) can be signalled; every group is killed after."""
    bin_dir, marks, root = tmp_path / "bin", tmp_path / "marks", tmp_path / "extensions"
    for folder in (bin_dir, marks, root):
        folder.mkdir()
    wrapper = bin_dir / "g++"  # torch checks the compiler's name
    wrapper.write_text(_WRAPPER)
    wrapper.chmod(0o755)
    source = tmp_path / "standin.cpp"
    source.write_text(_SOURCE)
    groups: list[subprocess.Popen] = []

    def start(hold: str = "") -> subprocess.Popen:
        env = {**os.environ, "CXX": str(wrapper), "STANDIN_MARKS": str(marks),
               "STANDIN_HOLD": hold, "PYTHONWARNINGS": "error"}
        process = subprocess.Popen([sys.executable, "-c", _SCRIPT, str(root), str(source)],
                                   env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, start_new_session=True, preexec_fn=_restore_sigint)
        groups.append(process)
        return process

    start.marks, start.root = marks, root  # type: ignore[attr-defined]
    yield start
    # ninja starts each compiler in a process group of its own, out of reach of killpg: a
    # stand-in held in its stage is released, so it finishes instead of waiting forever
    (marks / "go").touch()
    for process in groups:
        try:
            os.killpg(process.pid, signal.SIGKILL)  # orphaned ninja and compilers too
        except ProcessLookupError:
            pass
        process.communicate()


def _wait_for(condition, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _finishes(process: subprocess.Popen) -> tuple[str, str]:
    out, err = process.communicate(timeout=180)
    assert process.returncode == 0, err[-3000:]
    return out, err


@pytest.mark.parametrize("stage", ["locked", "compile", "link"])
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_a_killed_build_leaves_the_next_one_able_to_build(standin, stage: str,
                                                          signum: int) -> None:
    # "locked": the lock is held and the partial folder made, the compiler not yet started
    first = standin(hold="compile" if stage == "locked" else stage)
    if stage == "locked":
        _wait_for(lambda: any(standin.root.glob("standin.partial-*")), "the build to start")
    else:
        _wait_for(lambda: (standin.marks / stage).exists(), f"the {stage} stage")
    if signum == signal.SIGINT:
        os.killpg(first.pid, signum)  # Ctrl-C reaches the terminal's whole process group
    else:
        os.kill(first.pid, signum)  # kill -9 / kill $pid: Python only; ninja is orphaned
    _, err = first.communicate(timeout=60)
    assert first.returncode != 0
    assert not (standin.root / "standin").exists()  # no half-built library where one is looked for
    assert "done" not in err
    if signum == signal.SIGINT:
        assert "] interrupted" in err  # the progress line says how it ended

    out, err = _finishes(standin())
    assert out.strip() == "42"
    assert "waiting for process" not in err  # the dead builder holds nothing
    assert err.rstrip().splitlines()[-1].split("] ")[-1].startswith("done in ")
    assert (standin.root / "standin" / "standin.so").is_file()


def test_a_second_process_waits_for_a_live_build_and_uses_it(standin) -> None:
    first = standin(hold="compile")
    _wait_for(lambda: (standin.marks / "compile").exists(), "the compile stage")
    second = standin()
    line = second.stderr.readline()  # blocks until it says something
    assert f"waiting for process {first.pid}, which is building the C++ kernels" in line
    (standin.marks / "go").touch()
    out, err = _finishes(second)
    assert out.strip() == "42"
    assert "building the C++ kernels (" not in err  # it did not build a second time
    assert _finishes(first)[0].strip() == "42"
    _, err = _finishes(standin())  # a later process loads it without a word
    assert err == ""


def test_a_failed_build_says_failed_and_leaves_nothing(standin, tmp_path: Path) -> None:
    (tmp_path / "standin.cpp").write_text("this is not C++\n")
    _, err = standin().communicate(timeout=180)
    assert "] failed" in err and "done" not in err
    assert list(standin.root.iterdir()) == [standin.root / "standin.lock"]


def test_the_build_folder_is_keyed_by_the_torch_installation_and_the_compiler(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    flags = compiled._flags()
    here = compiled._module_name(flags)
    assert compiled._module_name(flags) == here  # the same environment: the same folder
    # another virtual environment with the same torch version: another folder
    monkeypatch.setattr(torch, "__file__", str(tmp_path / "venv2" / "torch" / "__init__.py"))
    elsewhere = compiled._module_name(flags)
    assert elsewhere != here
    monkeypatch.undo()
    assert compiled._module_name(flags) == here
    # another compiler
    other = tmp_path / "g++"
    other.write_text("#!/bin/sh\nexec c++ \"$@\"\n")
    other.chmod(0o755)
    monkeypatch.setenv("CXX", str(other))
    assert compiled._module_name(flags) not in (here, elsewhere)
    monkeypatch.delenv("CXX")
    # the flags and the sources
    assert compiled._module_name([*flags, "-O2"]) != here
    source = tmp_path / "a.cpp"
    source.write_text("int f() { return 1; }\n")
    one = compiled._module_name(flags, (source,))
    source.write_text("int f() { return 2; }\n")
    assert compiled._module_name(flags, (source,)) != one


def test_the_lock_dies_with_its_holder_even_when_a_forked_child_lives(tmp_path: Path) -> None:
    """A builder that forked (a data-loader worker, say) and then died holds nothing: the lock
    is the process's own, not shared with its children."""
    import io
    import threading

    lock_path = tmp_path / "x.lock"
    script = """
import os, sys, time
from pathlib import Path
from rnnkit._kernels import compiled
compiled._BuildLock(Path(sys.argv[1]), sys.stderr).__enter__()
if os.fork() == 0:
    time.sleep(300)
    os._exit(0)
print("held", flush=True)
time.sleep(300)
"""
    holder = subprocess.Popen([sys.executable, "-c", script, str(lock_path)],
                              stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        stream = io.StringIO()
        lock = compiled._BuildLock(lock_path, stream)
        waiter = threading.Thread(target=lock.__enter__)
        waiter.start()
        waiter.join(2)
        assert waiter.is_alive()  # held by a live process: it waits, and says for whom
        assert f"waiting for process {holder.pid}" in stream.getvalue()
        os.kill(holder.pid, signal.SIGKILL)  # the forked child lives on
        waiter.join(30)
        assert not waiter.is_alive()
        lock.__exit__()
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.communicate()


def test_the_speed_flags_leave_the_object_file_unchanged(tmp_path: Path) -> None:
    """The build-only flags (not part of the folder's name) must not change what GCC emits:
    a loop that -O2 or -ffast-math, say, would compile differently compiles to the same bytes."""
    from torch.utils.cpp_extension import check_compiler_is_gcc, get_cxx_compiler

    compiler = get_cxx_compiler()
    if not check_compiler_is_gcc(compiler):
        pytest.skip("the speed flags are GCC's")
    speed = compiled._speed_flags(compiler)
    assert speed  # GCC gets them
    source = tmp_path / "loop.cpp"
    source.write_text("#include <vector>\n#include <cmath>\n"
                      "float f(const std::vector<float>& v) { float s = 0;\n"
                      "  for (float x : v) s += std::exp(x) * x; return s; }\n")
    objects = []
    for extra in ([], speed):
        out = tmp_path / f"loop{len(objects)}.o"
        subprocess.run([compiler, "-c", "-fPIC", *compiled._flags(), *extra, str(source), "-o",
                        str(out)], check=True)
        objects.append(out.read_bytes())
    assert objects[0] == objects[1]

"""The compiled CPU time loops (``csrc/``): built on first use, cached, optional.

The C++ sources are compiled with ``torch.utils.cpp_extension.load`` the first time a kernel
is needed, into torch's per-user extension cache (``$TORCH_EXTENSIONS_DIR``, by default
``~/.cache/torch_extensions``); later processes load the cached library in milliseconds. The
library is a plain shared object (no Python module, no pybind11): loading it registers the CPU
kernels of the ``rnnkit`` operators (each cell's file, ``csrc/cell.h``; schemas in :mod:`._ops`). Its folder's
name carries a digest of everything that makes one build differ from another (the sources,
the flags, which torch installation, its version and ABI, which compiler), so an edited
source, another CPU, another virtual environment or another compiler gets its own build instead
of a stale one or a rebuild of another's. A build runs in a folder of its own and is renamed
into place when complete, under a lock that dies with its holder (:func:`_build_library`):
killing a build at any point leaves the next process able to build. The translation units
build in parallel (ninja) and a build says on stderr what it compiles, how long it has taken
and how it ended.

Nothing here is required: without a compiler (or with ``RNNKIT_NO_EXTENSION=1``) the
operators run their composite implementation; the switch is read once, when a kernel is first
needed.
``backend="auto"`` falls back silently when the extension was switched off on purpose and with
one :class:`ExtensionWarning` when building it failed; ``backend="compiled"`` raises
:class:`ExtensionUnavailable` with the reason.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import sys
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import torch

__all__ = ["ENV_DISABLE", "ExtensionUnavailable", "ExtensionWarning", "available", "load",
           "needs_build", "on_load"]

ENV_DISABLE = "RNNKIT_NO_EXTENSION"
_CSRC = Path(__file__).parent / "csrc"
# every source in csrc/ (a cell's file registers its own kernels, csrc/cell.h)
_SOURCES = tuple(sorted(p.name for p in _CSRC.glob("*.cpp")))
# The sources compile as two translation units, each a generated file that includes its group's
# sources: the dispatcher's glue (torch's dispatcher and autograd headers) and everything else
# (the cells, loop.h and the micro-kernels). A unit parses torch's headers, and instantiates
# the templates its files share, once instead of once per file: measured with
# bench/build_time.py on the 2-core Intel Xeon, 30 CPU-seconds for the two units against 62 for
# the nine files one at a time, and 18 s wall against 50-54. So names at file scope (anonymous
# namespaces included) must be unique across the files of a group. The dispatcher's unit, the
# costlier, starts first: the last to start bounds the wall time.
_DISPATCH = ("autograd.cpp", "fma_limit.cpp", "ops.cpp", "threads.cpp")
_HEADERS = tuple(sorted(p.name for p in _CSRC.glob("*.h")))
# what a first build costs with GCC 12 (user + system, both units and the link), measured with
# bench/build_time.py on the 2-core Intel Xeon at a load average of 1.2: 32 CPU-seconds, 18 s
# wall
_BUILD_TIME = "about 30 CPU-seconds: under 20 s on two free cores, a minute or more on a busy machine"


class ExtensionUnavailable(RuntimeError):
    """The compiled kernels were demanded (``backend="compiled"``) but cannot be loaded."""


class ExtensionWarning(UserWarning):
    """Building the compiled kernels failed; rnnkit runs the composite implementation."""


_lock = threading.Lock()
_module: str | None = None  # the loaded library's path
_error: str | None = None
_warned = False
_on_load: list[Callable[[], None]] = []


def _flags() -> list[str]:
    # -fno-trapping-math (as torch itself is built) lets GCC turn the branch-free selects of the
    # float activations into vector blends: without it none of the elementwise loops vectorise.
    flags = ["-O3", "-fopenmp", "-fno-math-errno", "-fno-trapping-math"]
    # Vector instructions only where torch itself found them on this CPU, so the cached build
    # never carries instructions the machine lacks; the capability is part of the module name.
    capability = torch.backends.cpu.get_cpu_capability()
    if capability in ("AVX2", "AVX512"):
        flags += ["-mavx2", "-mfma"]
    return flags


def _speed_flags(compiler: str) -> list[str]:
    """Flags that make GCC compile faster without changing its output (the same object files,
    byte for byte), so they are not part of the build's name: a garbage collector that runs
    when the heap has doubled and not before 512 MB (the defaults, 30% of a heap sized from
    the machine's memory, collect about ten times in a file including torch's headers and
    cost 5-10% of the build), for at most about 1.3 GB per compiler."""
    from torch.utils import cpp_extension

    is_gcc = getattr(cpp_extension, "check_compiler_is_gcc", None)
    try:
        gcc = is_gcc is not None and is_gcc(compiler)
    except Exception:  # a compiler that does not answer -v the usual way: no extra flags
        gcc = False
    return ["--param=ggc-min-expand=100", "--param=ggc-min-heapsize=524288"] if gcc else []


def _environment() -> list[str]:
    """What besides the sources and flags makes one build differ from another: which torch
    (its folder, so two virtual environments never share a build whose ninja file names the
    other's include paths; its version, C++ ABI and library), which Python, which compiler."""
    from torch.utils.cpp_extension import get_cxx_compiler

    torch_dir = Path(torch.__file__).resolve().parent
    parts = [str(torch_dir), torch.__version__, f"cxx11abi={torch._C._GLIBCXX_USE_CXX11_ABI}",
             sys.implementation.cache_tag, _file_identity(torch_dir / "lib" / "libtorch_cpu.so")]
    compiler = get_cxx_compiler()
    found = shutil.which(compiler)
    # the compiler's resolved file, its size and time: another compiler or another version of
    # it (an upgrade replaces the file) is another build, found without running it
    parts.append(f"{compiler}: " + (_file_identity(Path(found).resolve()) if found else "absent"))
    return parts


def _file_identity(path: Path) -> str:
    try:
        stat = path.stat()
    except OSError:
        return f"{path} (absent)"
    return f"{path} {stat.st_size} {stat.st_mtime_ns}"


def _module_name(flags: list[str], sources: tuple[Path, ...] = ()) -> str:
    digest = hashlib.sha256()
    for path in sources or tuple(_CSRC / name for name in (*_SOURCES, *_HEADERS)):
        digest.update(path.read_bytes())
    digest.update(repr(_DISPATCH).encode())  # how the sources group into units
    digest.update(" ".join(flags).encode())
    for part in _environment():
        digest.update(part.encode() + b"\0")
    return f"rnnkit_cpu_{digest.hexdigest()[:12]}"


def _root() -> Path:
    """torch's extension cache (``$TORCH_EXTENSIONS_DIR`` or its per-user default)."""
    from torch.utils import cpp_extension

    return Path(cpp_extension._get_build_directory("", verbose=False))


def _build() -> str:
    flags = _flags()
    return _build_library(_module_name(flags), [_CSRC / s for s in _SOURCES], flags, _root(),
                          sys.stderr)


def _build_library(name: str, sources: list[Path], flags: list[str], root: Path,
                   stream: TextIO) -> str:
    """``root/name/name.so``, built if absent, loaded into this process.

    A folder named ``name`` is complete: it appears only by an atomic rename of the folder a
    build ran in (``name.partial-<pid>``), so a build killed at any point leaves no half-built
    library where a later process looks. Builders take turns by a lock on ``name.lock``, which
    the kernel releases when its holder dies however it dies (SIGKILL included): a later
    process never waits on a dead one, and the lock's holder clears the folders of builds that
    died. Without ``fcntl`` (Windows) builders do not wait for each other; the rename still keeps
    the folder whole."""
    library = root / name / f"{name}.so"
    if not library.is_file():
        with _BuildLock(root / f"{name}.lock", stream):
            if not library.is_file():  # another process may have built it while we waited
                _compile(name, sources, flags, root, stream)  # loads it
                return str(library)
    torch.ops.load_library(str(library))
    return str(library)


def _compile(name: str, sources: list[Path], flags: list[str], root: Path,
             stream: TextIO) -> None:
    from torch.utils import cpp_extension

    for stale in root.glob(f"{glob.escape(name)}.partial-*"):
        shutil.rmtree(stale, ignore_errors=True)  # a build that died (we hold the lock)
    partial = root / f"{name}.partial-{os.getpid()}"
    partial.mkdir(parents=True)
    sources = _units(sources, partial)
    progress = _Progress(partial, stream, [s.name for s in sources], root)
    outcome = "failed"
    try:
        with warnings.catch_warnings():
            # cpp_extension warns about compiler versions and ABI details; a build that
            # succeeds is all that matters here, and a failing one raises.
            warnings.simplefilter("ignore")
            cpp_extension.load(
                name=name,
                sources=[str(s) for s in sources],
                extra_cflags=flags + _speed_flags(cpp_extension.get_cxx_compiler()),
                extra_ldflags=["-fopenmp"],
                build_directory=str(partial),
                is_python_module=False,  # loads it with torch.ops.load_library
                verbose=False,
            )
        try:  # the loaded library stays mapped; its folder becomes the one later processes load
            os.rename(partial, root / name)
        except OSError:
            if not (root / name / f"{name}.so").is_file():
                raise
            # no lock on this system and another builder came first: ours stays, loaded
        outcome = "done"
    except KeyboardInterrupt:
        outcome = "interrupted"
        raise
    finally:
        progress.stop(outcome)
        if outcome != "done":
            shutil.rmtree(partial, ignore_errors=True)


def _units(sources: list[Path], folder: Path) -> list[Path]:
    """The translation units of a build, written into its folder: ``dispatch.cpp`` including
    the sources named in ``_DISPATCH``, ``kernels.cpp`` including the others (see
    ``_DISPATCH``), the dispatcher's first; a group without sources has no unit."""
    groups = {"dispatch": [s for s in sources if s.name in _DISPATCH],
              "kernels": [s for s in sources if s.name not in _DISPATCH]}
    units = []
    for unit, members in groups.items():
        if members:
            path = folder / f"{unit}.cpp"
            path.write_text("// generated by rnnkit._kernels.compiled: one translation unit\n"
                            + "".join(f'#include "{m.resolve()}"\n' for m in members))
            units.append(path)
    return units


class _BuildLock:
    """An exclusive POSIX lock (``lockf``) on ``path`` for the time of a build, saying on
    ``stream`` whom it waits for (the holder writes its pid into the file). The kernel releases
    it when the holder dies, and unlike ``flock`` a child forked during the build does not
    inherit it."""

    def __init__(self, path: Path, stream: TextIO) -> None:
        self._path, self._stream, self._fd = path, stream, -1

    def __enter__(self) -> _BuildLock:
        try:
            import fcntl
        except ImportError:
            return self
        self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        start = note = time.monotonic()
        while True:
            try:
                fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except (BlockingIOError, PermissionError):  # EAGAIN or EACCES: held
                pass
            except OSError:  # a file system without locks: build unlocked, the rename still holds
                return self
            if time.monotonic() >= note:
                holder = os.pread(self._fd, 32, 0).decode(errors="replace").strip() or "?"
                self._stream.write(
                    f"[{time.monotonic() - start:5.1f} s] rnnkit: waiting for process {holder}, "
                    f"which is building the C++ kernels (lock {self._path})\n")
                self._stream.flush()
                note = time.monotonic() + 10
            time.sleep(0.2)
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, str(os.getpid()).encode(), 0)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # releases the lock; the file stays (removing it would race)
            self._fd = -1


class _Progress:
    """One line on ``stream`` as each translation unit of a build finishes, with the time
    taken, one every 10 s while the compiler runs, and how the build ended: a first build is
    not a silent hang, and an interrupted one does not say "done"."""

    def __init__(self, directory: Path, stream: TextIO, sources: list[str],
                 cache: Path | None = None) -> None:
        self._directory, self._stream, self._sources = directory, stream, sources
        self._start = time.monotonic()
        self._done = threading.Event()
        self._say(f"rnnkit: building the C++ kernels ({len(sources)} files, once per torch "
                  f"installation and compiler; {_BUILD_TIME}; cached in "
                  f"{cache or directory.parent})")
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _say(self, text: str) -> None:
        self._stream.write(f"[{time.monotonic() - self._start:5.1f} s] {text}\n")
        self._stream.flush()

    def _watch(self) -> None:
        finished: set[str] = set()
        last = time.monotonic()
        while not self._done.wait(0.5):
            objects = {p.stem for p in self._directory.glob("*.o")}
            new = sorted(objects - finished)
            if new:
                finished |= objects
                self._say(f"compiled {', '.join(n + '.cpp' for n in new)} "
                          f"({len(finished)}/{len(self._sources)})")
                last = time.monotonic()
            elif time.monotonic() - last >= 10:
                pending = [s for s in self._sources if Path(s).stem not in finished]
                self._say(f"still compiling {', '.join(pending)}" if pending else "linking")
                last = time.monotonic()

    def stop(self, outcome: str = "done") -> None:
        """``outcome``: "done", "failed" or "interrupted"."""
        self._done.set()
        self._thread.join()
        self._say(outcome if outcome != "done" else
                  f"done in {time.monotonic() - self._start:.0f} s")


def needs_build() -> bool:
    """Whether the first use would compile the kernels (nothing cached for these sources, and
    the extension is not switched off): callers can tell the user before the wait."""
    if _module is not None or _error is not None:
        return False
    if os.environ.get(ENV_DISABLE, "") not in ("", "0"):
        return False
    try:
        name = _module_name(_flags())
        return not (_root() / name / f"{name}.so").is_file()
    except Exception:  # a torch without that helper: assume a build, the message is harmless
        return True


def load() -> str:
    """The compiled library (its path), building and loading it on first use;
    :class:`ExtensionUnavailable` if it cannot be had (switched off by ``RNNKIT_NO_EXTENSION``,
    no compiler, a failed build)."""
    global _module, _error
    if _module is not None:
        return _module  # the common case, on every call: the switch is read before the load
    if os.environ.get(ENV_DISABLE, "") not in ("", "0"):
        raise ExtensionUnavailable(
            f"rnnkit's compiled kernels are switched off by {ENV_DISABLE}="
            f"{os.environ[ENV_DISABLE]!r}; unset it, or use backend='auto' (the composite "
            "implementation)"
        )
    with _lock:
        if _module is None and _error is None:
            try:
                _module = _build()
            except Exception as e:  # no compiler, no ninja, a compile error: all mean "absent"
                first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
                _error = f"{type(e).__name__}: {first_line}"
            else:
                for callback in _on_load:
                    callback()
    if _module is None:
        raise ExtensionUnavailable(
            f"rnnkit's compiled kernels could not be built ({_error}); they need a C++ compiler "
            "and ninja (pip install ninja). Use backend='auto' to run without them"
        )
    return _module


def on_load(callback: Callable[[], None]) -> None:
    """Call ``callback`` once the library is loaded (now, if it already is)."""
    _on_load.append(callback)
    if _module is not None:
        callback()


def available() -> bool:
    """Whether the compiled kernels can run here. Builds them on first call. Warns once (an
    :class:`ExtensionWarning`) when the build failed; says nothing when switched off on purpose."""
    global _warned
    if _module is not None:
        return True
    try:
        load()
    except ExtensionUnavailable as e:
        if os.environ.get(ENV_DISABLE, "") in ("", "0") and not _warned:
            _warned = True
            warnings.warn(f"{e}; running the composite implementation", ExtensionWarning,
                          stacklevel=3)
        return False
    return True


def _reset_for_tests() -> None:
    """Forget the loaded module and any error, so tests can exercise the loading logic."""
    global _module, _error, _warned
    with _lock:
        _module, _error, _warned = None, None, False

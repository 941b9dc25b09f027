"""The compiled CPU time loops (``csrc/``): built on first use, cached, optional.

The C++ sources are compiled with ``torch.utils.cpp_extension.load`` the first time a kernel
is needed, into torch's per-user extension cache (``$TORCH_EXTENSIONS_DIR``, by default
``~/.cache/torch_extensions``); later processes load the cached library in milliseconds. The
library is a plain shared object (no Python module, no pybind11): loading it registers the CPU
kernels of the ``rnnkit`` operators (each cell's file, ``csrc/cell.h``; schemas in
:mod:`._ops`). Its name carries a digest of the sources and flags, so an edited source or another CPU gets its own
build instead of a stale one. The translation units build in parallel (ninja, one job per
core) and a build says on stderr what it compiles and how long it has taken.

Nothing here is required: without a compiler (or with ``RNNKIT_NO_EXTENSION=1``) the
operators run their composite implementation; the switch is read once, when a kernel is first
needed.
``backend="auto"`` falls back silently when the extension was switched off on purpose and with
one :class:`ExtensionWarning` when building it failed; ``backend="compiled"`` raises
:class:`ExtensionUnavailable` with the reason.
"""

from __future__ import annotations

import hashlib
import os
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
# every source in csrc/ (a cell's file registers its own kernels, csrc/cell.h), the longest
# first: ninja starts them in this order
_SOURCES = tuple(sorted((p.name for p in _CSRC.glob("*.cpp")),
                        key=lambda name: (-(_CSRC / name).stat().st_size, name)))
_HEADERS = tuple(sorted(p.name for p in _CSRC.glob("*.h")))


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


def _module_name(flags: list[str]) -> str:
    digest = hashlib.sha256()
    for name in (*_SOURCES, *_HEADERS):
        digest.update((_CSRC / name).read_bytes())
    digest.update(" ".join(flags).encode())
    digest.update(torch.__version__.encode())
    return f"rnnkit_cpu_{digest.hexdigest()[:12]}"


def _build() -> str:
    from torch.utils import cpp_extension

    flags = _flags()
    name = _module_name(flags)
    directory = Path(cpp_extension._get_build_directory(name, verbose=False))
    library = directory / f"{name}.so"
    progress = None if library.is_file() else _Progress(directory, sys.stderr)
    try:
        with warnings.catch_warnings():
            # cpp_extension warns about compiler versions and ABI details; a build that
            # succeeds is all that matters here, and a failing one raises.
            warnings.simplefilter("ignore")
            cpp_extension.load(
                name=name,
                sources=[str(_CSRC / source) for source in _SOURCES],
                extra_cflags=flags,
                extra_ldflags=["-fopenmp"],
                is_python_module=False,  # loads it with torch.ops.load_library
                verbose=False,
            )
    finally:
        if progress is not None:
            progress.stop()
    return str(library)


class _Progress:
    """One line on ``stream`` as each translation unit of a build finishes, with the time
    taken, and one every 10 s while nothing changes: a first build is not a silent hang."""

    def __init__(self, directory: Path, stream: TextIO) -> None:
        self._directory, self._stream = directory, stream
        self._start = time.monotonic()
        self._done = threading.Event()
        self._say(f"rnnkit: building the C++ kernels ({len(_SOURCES)} files, once per "
                  f"version; cached in {directory.parent})")
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
                          f"({len(finished)}/{len(_SOURCES)})")
                last = time.monotonic()
            elif time.monotonic() - last >= 10:
                pending = [s for s in _SOURCES if Path(s).stem not in finished]
                self._say(f"still compiling {', '.join(pending) or 'and linking'}")
                last = time.monotonic()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()
        self._say("done")


def needs_build() -> bool:
    """Whether the first use would compile the kernels (nothing cached for these sources, and
    the extension is not switched off): callers can tell the user before the wait."""
    if _module is not None or _error is not None:
        return False
    if os.environ.get(ENV_DISABLE, "") not in ("", "0"):
        return False
    try:
        from torch.utils.cpp_extension import _get_build_directory

        name = _module_name(_flags())
        return not (Path(_get_build_directory(name, verbose=False)) / f"{name}.so").is_file()
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

"""The compiled CPU time loops (``csrc/``): built on first use, cached, optional.

The C++ sources are compiled with ``torch.utils.cpp_extension.load`` the first time a compiled
kernel is asked for, into torch's per-user extension cache (``$TORCH_EXTENSIONS_DIR``, by
default ``~/.cache/torch_extensions``); later processes load the cached library in
milliseconds. The module name carries a digest of the sources and flags, so an edited source or
another CPU gets its own build instead of a stale one.

Nothing here is required: without a compiler (or with ``RNNKIT_NO_EXTENSION=1``) the kernels
run on the pure-PyTorch fused path; the switch is read once, when a kernel is first needed.
``backend="auto"`` falls back silently when the extension was switched off on purpose and with
one :class:`ExtensionWarning` when building it failed; ``backend="compiled"`` raises
:class:`ExtensionUnavailable` with the reason.
"""

from __future__ import annotations

import hashlib
import os
import threading
import warnings
from pathlib import Path
from types import ModuleType

import torch

__all__ = ["ENV_DISABLE", "ExtensionUnavailable", "ExtensionWarning", "available", "load",
           "needs_build"]

ENV_DISABLE = "RNNKIT_NO_EXTENSION"
_SOURCES = ("bindings.cpp", "shared.cpp", "gemm.cpp", "elman.cpp", "gru.cpp", "lstm.cpp")
_HEADERS = ("common.h",)
_CSRC = Path(__file__).parent / "csrc"


class ExtensionUnavailable(RuntimeError):
    """The compiled kernels were demanded (``backend="compiled"``) but cannot be loaded."""


class ExtensionWarning(UserWarning):
    """Building the compiled kernels failed; rnnkit runs on the pure-PyTorch fused path."""


_lock = threading.Lock()
_module: ModuleType | None = None
_error: str | None = None
_warned = False


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


def _build() -> ModuleType:
    from torch.utils import cpp_extension

    flags = _flags()
    with warnings.catch_warnings():
        # cpp_extension warns about compiler versions and ABI details; a build that succeeds is
        # all that matters here, and a failing one raises.
        warnings.simplefilter("ignore")
        return cpp_extension.load(
            name=_module_name(flags),
            sources=[str(_CSRC / name) for name in _SOURCES],
            extra_cflags=flags,
            extra_ldflags=["-fopenmp"],
            verbose=False,
        )


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


def load() -> ModuleType:
    """The compiled module, building it on first use; :class:`ExtensionUnavailable` if it
    cannot be had (switched off by ``RNNKIT_NO_EXTENSION``, no compiler, a failed build)."""
    global _module, _error
    if _module is not None:
        return _module  # the common case, on every call: the switch is read before the load
    if os.environ.get(ENV_DISABLE, "") not in ("", "0"):
        raise ExtensionUnavailable(
            f"rnnkit's compiled kernels are switched off by {ENV_DISABLE}="
            f"{os.environ[ENV_DISABLE]!r}; unset it, or use backend='fused'"
        )
    with _lock:
        if _module is None and _error is None:
            try:
                _module = _build()
            except Exception as e:  # no compiler, no ninja, a compile error: all mean "absent"
                first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
                _error = f"{type(e).__name__}: {first_line}"
    if _module is None:
        raise ExtensionUnavailable(
            f"rnnkit's compiled kernels could not be built ({_error}); they need a C++ compiler "
            "and ninja (pip install ninja). Use backend='fused' to run without them"
        )
    return _module


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
            warnings.warn(f"{e}; running on the pure-PyTorch fused path", ExtensionWarning,
                          stacklevel=3)
        return False
    return True


def _reset_for_tests() -> None:
    """Forget the loaded module and any error, so tests can exercise the loading logic."""
    global _module, _error, _warned
    with _lock:
        _module, _error, _warned = None, None, False

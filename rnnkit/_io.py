"""The one way rnnkit writes a file: atomically, durably, with the user's permissions.

``atomic_write(path, data)`` writes ``data`` to a new temporary file in ``path``'s own folder
(``.NAME.<random>.tmp``: a rename across file systems would not be atomic), flushes and
``fsync``s it, then renames it over ``path`` (``os.replace``, atomic on POSIX and Windows) and
syncs the folder so the rename survives a power cut. A reader, or a process killed at any
moment, sees the previous file or the complete new one, never a part; a failed write removes
its temporary file and leaves the previous file as it was. The file gets the mode an ordinary
``open(path, "w")`` would give (``0o666`` less the umask), not ``mkstemp``'s ``0o600``.

JSON goes through :func:`json_text`: always valid JSON. A non-finite number (NaN, infinity)
has no JSON form, so it is written as ``null`` with a :class:`NonFiniteWarning` naming where it
was; ``allow_nan=False`` stays on underneath, so nothing else can slip through.

Every file rnnkit writes goes through here: models and weights (``models/saving.py``), the
training backup (``training/backup.py``), everything in a RUN_DIR (``cli/run_dir.py``), plots,
diagnostics, ONNX exports and benchmark reports.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from . import _faults

__all__ = ["NonFiniteWarning", "atomic_write", "json_text", "safetensors_bytes",
           "temporary_names", "write_json", "write_text"]


class NonFiniteWarning(RuntimeWarning):
    """A NaN or infinite number was written to JSON as null."""


def _write_all(handle: IO[bytes], data: bytes) -> None:
    handle.write(data)


def temporary_names(path: str | os.PathLike[str]) -> str:
    """The glob pattern of :func:`atomic_write`'s temporary files for ``path`` (in its folder):
    a process killed mid-write leaves one behind, which a later run may remove."""
    return f".{Path(path).name}.*.tmp"


def atomic_write(path: str | os.PathLike[str], data: bytes, *, parents: bool = False,
                 write: Callable[[IO[bytes], bytes], None] | None = None) -> None:
    """Replace ``path`` by a file holding ``data``, atomically (see the module notes).

    ``parents``: create missing folders (else a missing folder is a FileNotFoundError naming
    it). ``write(handle, chunk)`` writes a chunk to the open temporary file (default: all of it).
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if parents:
        directory.mkdir(parents=True, exist_ok=True)
    elif not directory.is_dir():
        raise FileNotFoundError(f"Cannot save to {str(path)!r}: directory "
                                f"{str(directory.resolve())!r} does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"Cannot save to {str(path)!r}: it is a directory")
    write = write or _write_all
    tmp = directory / f".{path.name}.{secrets.token_hex(4)}.tmp"
    # O_EXCL: a fresh file; mode 0o666 is reduced by the umask, as open(path, "w") would do.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            half = len(data) // 2
            write(handle, data[:half])
            handle.flush()
            _faults.point(f"write:{path.name}:partial")
            write(handle, data[half:])
            handle.flush()
            os.fsync(handle.fileno())
        _faults.point(f"write:{path.name}:synced")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _sync_folder(directory)
    _faults.point(f"write:{path.name}:renamed")


def _sync_folder(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # Windows cannot open a folder; its rename is durable on its own
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_text(path: str | os.PathLike[str], text: str, *, parents: bool = False) -> None:
    """:func:`atomic_write` of ``text`` as UTF-8."""
    atomic_write(path, text.encode("utf-8"), parents=parents)


def safetensors_bytes(tensors: dict[str, Any], metadata: dict[str, str]) -> bytes:
    """``safetensors.torch.save`` with a canonical header: the same tensors and metadata give
    the same bytes in every process (safetensors writes its metadata map in hash order). The
    one safetensors serializer of models (``models/saving.py``) and the training backup."""
    import struct

    import safetensors.torch  # imports torch: not at module level (the CLI's --help)

    data = safetensors.torch.save(tensors, metadata=metadata)
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + size])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the tensor data stays 8-byte aligned, as safetensors has it
    return struct.pack("<Q", len(text)) + text + data[8 + size:]


def check_not_keras_name(path: str, weights_only: bool = False) -> None:
    """Refuse to write rnnkit's own format (safetensors) under a Keras file name: Keras could
    not read it and :func:`rnnkit.models.load_keras` would refuse it. Model files take any
    other name (``.rnnkit`` by convention), weights files too (``.safetensors``)."""
    stem, suffix = os.path.splitext(path)
    if suffix.lower() not in (".keras", ".h5"):
        return
    right = stem.removesuffix(".weights") + (".safetensors" if weights_only else ".rnnkit")
    raise ValueError(
        f"{path!r}: rnnkit writes {'weights' if weights_only else 'models'} in its own format, "
        f"which Keras cannot read, so not under Keras' {suffix} extension; save as {right!r} "
        f"(read back by {'model.load_weights' if weights_only else 'rnnkit.models.load_model'}). "
        "rnnkit reads Keras files (rnnkit.models.load_keras) but does not write them"
    )


def json_text(data: Any, *, indent: int | None = 2, source: str = "JSON") -> str:
    """``data`` as JSON text; NaN and infinities become null, each with a NonFiniteWarning
    naming its place (``source``, then the keys and indexes down to it)."""
    return json.dumps(_finite(data, source), indent=indent, allow_nan=False) + "\n"


def write_json(path: str | os.PathLike[str], data: Any, *, parents: bool = False) -> None:
    """:func:`atomic_write` of :func:`json_text` (always valid JSON)."""
    write_text(path, json_text(data, source=Path(path).name), parents=parents)


def _finite(value: Any, where: str) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        warnings.warn(f"{where} is {value}, which JSON cannot hold: written as null",
                      NonFiniteWarning, stacklevel=4)
        return None
    if isinstance(value, dict):
        return {k: _finite(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if hasattr(value, "item") and hasattr(value, "dtype") and getattr(value, "ndim", 1) == 0:
        return _finite(value.item(), where)  # NumPy / torch scalars
    return value

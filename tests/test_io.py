"""rnnkit._io: the one atomic writer and always-valid JSON."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from rnnkit import _io


def test_the_file_gets_the_umask_s_mode_not_mkstemp_s(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        _io.write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o640


def test_the_temporary_file_is_in_the_same_folder_and_removed_on_failure(tmp_path: Path) -> None:
    seen = []

    def crash(handle, chunk):
        seen.extend(p for p in tmp_path.iterdir() if p.name != "a.txt")
        handle.write(chunk[:1])
        raise OSError("No space left on device")

    _io.write_text(tmp_path / "a.txt", "old")
    with pytest.raises(OSError, match="No space"):
        _io.atomic_write(tmp_path / "a.txt", b"new contents", write=crash)
    assert seen[0].parent == tmp_path and seen[0].match(_io.temporary_names("a.txt"))
    assert (tmp_path / "a.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_a_missing_folder_is_an_error_unless_asked_to_create_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        _io.write_text(tmp_path / "no" / "a.txt", "x")
    _io.write_text(tmp_path / "no" / "a.txt", "x", parents=True)
    assert (tmp_path / "no" / "a.txt").read_text() == "x"


def test_non_finite_numbers_become_null_with_a_warning(tmp_path: Path) -> None:
    import numpy as np

    path = tmp_path / "m.json"
    with pytest.warns(_io.NonFiniteWarning, match=r"m.json\['loss'\]\[1\] is nan"):
        _io.write_json(path, {"loss": [1.0, float("nan")], "mae": np.float64(2.5)})
    assert json.loads(path.read_text()) == {"loss": [1.0, None], "mae": 2.5}
    with pytest.warns(_io.NonFiniteWarning, match="is inf"):
        assert json.loads(_io.json_text({"x": np.float32("inf")})) == {"x": None}

"""The README's Python blocks each run as written, on their own: every fenced ``python`` block
is a file run by a fresh interpreter in an empty folder (warnings are errors), so a reader who
copies one block gets what it says. The Keras-file block reads the file the README's ``cp``
command gives. A block's checks (below) run after it, in the same file.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"),
                    flags=re.S)


def test_the_readme_has_its_two_commands_first() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    first = re.search(r"```bash\n(.*?)```", text, flags=re.S)
    assert first is not None
    install, tests = first.group(1).strip().splitlines()
    assert install.startswith("pip install torch==2.13.0") and install.endswith("rnnkit train")
    assert "pytest" in tests
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert tests.split("&& ")[-1] in ci  # CI calls the README's test command


# what a block must have done, run after it: (a line only that block has, the checks);
# seeded, so a flaky fit cannot pass
CHECKS = [
    # the regression learned the ramp: predictions rise with the inputs
    ("print(model.predict(X))", "predictions = model.predict(X, verbose=0)[:, 0]\n"
                                "assert np.all(np.diff(predictions) > 0), predictions"),
    ("lengths=torch.tensor([10, 4, 7]))",
     "assert tuple(out.shape) == (3, 10, 16) and tuple(h_n.shape) == (4, 3, 8)\n"
     "assert (out[1, 4:] == 0).all() and (out[1, :4] != 0).any()"),
    ("reference.simple_rnn(", "assert states.shape == (1, 10, 8)"),
    ("translator = rk.Model(", "import torch\n"
                               "assert translator([torch.ones(2, 7, dtype=torch.long),"
                               " torch.ones(2, 5, dtype=torch.long)]).shape == (2, 5, 14)"),
    ('rk.export.onnx(model, "model.onnx"', "import os\nassert os.path.getsize('model.onnx') > 0"),
]
KERAS_COPY = "cp tests/keras_fixtures/files/simplernn_dense.keras\nmodel.keras"


def test_every_check_finds_its_block() -> None:
    assert len(BLOCKS) >= 6
    for marker, _ in CHECKS:
        assert sum(marker in block for block in BLOCKS) == 1, marker
    assert KERAS_COPY in (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_each_python_block_runs_on_its_own(tmp_path: Path, index: int) -> None:
    block = BLOCKS[index]
    if "load_keras" in block:
        pytest.importorskip("h5py")
        pytest.importorskip("onnx")
        # the README's command, from the repository's root
        shutil.copy(ROOT / KERAS_COPY.split()[1], tmp_path / "model.keras")
    script = tmp_path / f"readme_block_{index}.py"
    check = "\n".join(code for marker, code in CHECKS if marker in block)
    script.write_text("import torch as _torch\n_torch.manual_seed(0)\n" + block + "\n" + check
                      + "\n", encoding="utf-8")
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    done = subprocess.run([sys.executable, "-W", "error", script.name], cwd=tmp_path,
                          env=environment, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"README block {index + 1}:\n{block}\n{done.stderr[-3000:]}"

"""The recurrent matrices of a model and the two numbers that bound how a state's gradient
changes from one step to the previous one.

For ``h_t = tanh(x_t K + h_{t-1} R + b)`` (Keras' row-vector convention)::

    dh_t/dh_{t-1} = R diag(1 - h_t^2)       so     ||dL/dh_{t-1}|| <= sigma_max(R) ||dL/dh_t||

as ``|tanh'| <= 1``. With the largest singular value ``sigma_max(R) < 1`` the gradient *must*
vanish geometrically; the spectral radius ``rho(R) = max |eigenvalue|`` (<= sigma_max) is the
rate over many steps of the linearised recurrence: ``rho < 1`` vanishes, ``rho > 1`` can explode.
A gated cell's blocks (GRU z, r, h; LSTM i, f, c, o) are reported one by one; for them the
gates, not these numbers, decide how much gradient gets through.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch

from .._kernels._cell_spec import CELLS
from ..layers import GRUCell, LSTMCell, SimpleRNNCell
from ..layers.rnn import RNN

__all__ = ["RecurrentMatrix", "largest_singular_value", "recurrent_matrices", "spectral_radius"]

# Gate blocks of the recurrent matrix, in the order of the parameter's layout.
_LAYER_BLOCKS: dict[type, tuple[str, ...]] = {
    SimpleRNNCell: ("h",), GRUCell: ("z", "r", "h"), LSTMCell: ("i", "f", "c", "o")}
_NN_BLOCKS = {cell.nn_class: cell.torch_gates for cell in CELLS.values()}
_NN_WEIGHT = re.compile(r"^weight_hh_l(\d+)(_reverse)?$")


def _matrix(matrix: object) -> np.ndarray:
    if isinstance(matrix, torch.Tensor):
        matrix = matrix.detach().cpu().double().numpy()
    array = np.asarray(matrix, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"expected a 2-D matrix, got shape {array.shape}")
    return array


def spectral_radius(matrix: object) -> float:
    """``max |lambda|`` over the eigenvalues of a square matrix (a tensor or array).

    Example::

        >>> spectral_radius([[0.0, 2.0], [0.5, 0.0]])  # eigenvalues +-1
        1.0
    """
    array = _matrix(matrix)
    if array.shape[0] != array.shape[1]:
        raise ValueError(f"the spectral radius needs a square matrix, got shape {array.shape}")
    return float(np.abs(np.linalg.eigvals(array)).max())


def largest_singular_value(matrix: object) -> float:
    """The operator 2-norm ``sigma_max`` of a matrix: the most it can stretch a vector.

    Example::

        >>> largest_singular_value([[3.0, 0.0], [0.0, -4.0]])
        4.0
    """
    return float(np.linalg.norm(_matrix(matrix), 2))


@dataclass(frozen=True)
class RecurrentMatrix:
    """One gate block of a recurrent weight matrix and its spectral numbers.

    ``layer`` is the rnnkit layer's name (or the ``rnnkit.nn`` module's parameter name, e.g.
    ``weight_hh_l1_reverse``); ``cell`` is ``"SimpleRNN"``, ``"GRU"`` or ``"LSTM"`` (``"RNN"``
    for an ``rnnkit.nn.RNN``); ``gate`` the block (``"h"`` for SimpleRNN; GRU ``z, r, h``;
    LSTM ``i, f, c, o``; ``rnnkit.nn`` uses torch's ``r, z, n`` / ``i, f, g, o``).
    ``spectral_radius`` is NaN for a non-square block (an LSTM with ``proj_size``).
    """

    layer: str
    cell: str
    gate: str
    matrix: np.ndarray
    spectral_radius: float
    largest_singular_value: float

    @classmethod
    def of(cls, layer: str, cell: str, gate: str, matrix: object) -> RecurrentMatrix:
        array = _matrix(matrix)
        radius = spectral_radius(array) if array.shape[0] == array.shape[1] else float("nan")
        return cls(layer, cell, gate, array, radius, largest_singular_value(array))


def recurrent_matrices(model: torch.nn.Module) -> list[RecurrentMatrix]:
    """Every recurrent weight block of ``model`` with its spectral radius and ``sigma_max``.

    Works on models built from rnnkit.layers (each built SimpleRNN/GRU/LSTM cell's
    ``recurrent_kernel`` (U, G*U), split into its G gate blocks) and on ``rnnkit.nn``
    (or ``torch.nn``) RNN/GRU/LSTM modules (``weight_hh_l{k}[_reverse]`` (G*H, H), split by rows).

    Example::

        >>> import rnnkit as rk
        >>> layer = rk.layers.GRU(3)
        >>> layer.build((None, 5, 2))
        >>> [m.gate for m in recurrent_matrices(layer)]
        ['z', 'r', 'h']
    """
    found: list[RecurrentMatrix] = []
    for module in model.modules():
        if isinstance(module, RNN):
            cell = module.cell
            blocks = next((b for kind, b in _LAYER_BLOCKS.items() if isinstance(cell, kind)), None)
            kernel = getattr(cell, "recurrent_kernel", None)
            if blocks is None or kernel is None:
                continue
            for gate, block in zip(blocks, kernel.split(cell.units, dim=1)):
                kind = type(cell).__name__[: -len("Cell")]
                found.append(RecurrentMatrix.of(module.name, kind, gate, block))
        elif isinstance(module, torch.nn.RNNBase) or type(module).__name__ in _NN_BLOCKS:
            kind, blocks = _nn_blocks(module)
            if blocks is None:
                continue
            for name, weight in module.named_parameters(recurse=False):
                if _NN_WEIGHT.match(name):
                    hidden = weight.shape[0] // len(blocks)
                    for gate, block in zip(blocks, weight.split(hidden, dim=0)):
                        found.append(RecurrentMatrix.of(name, kind, gate, block))
    return found


def _nn_blocks(module: torch.nn.Module) -> tuple[str, tuple[str, ...] | None]:
    """The kind and gate blocks of a torch.nn-style module (torch's ``mode`` or class name)."""
    mode = getattr(module, "mode", None)
    kind = "RNN" if isinstance(mode, str) and mode.startswith("RNN_") else \
        mode if mode in _NN_BLOCKS else type(module).__name__
    return str(kind), _NN_BLOCKS.get(str(kind))

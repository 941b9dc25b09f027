"""The cell equations, written once, and one time step of each cell in PyTorch's layout.

The equations (:func:`rnn_equation`, :func:`gru_equation`, :func:`lstm_equation`) start from
projections already formed: each gate's input part and recurrent part, (B, H) each, with their
biases. The caller forms them in its own weight layout and gate order, with its own matmuls and
dropout masks; the activations are arguments (Keras' ``activation`` and ``recurrent_activation``),
tanh and sigmoid by default. Two layouts feed them:

- PyTorch's, here: ``w_ih`` is ``(gates*H, D)``, ``w_hh`` is ``(gates*H, H)``, GRU gates are
  ordered ``r, z, n`` and LSTM gates ``i, f, g, o``. Each ``*_step`` takes the input projection
  ``gi = x W_ih^T + b_ih`` already formed (the composite implementation, :mod:`.composite`,
  forms it for all steps in one product) and also returns what the backward pass of the
  compiled kernels keeps (the activated gates); each ``*_cell`` is the step from ``x`` itself,
  as the autograd loop (:func:`rnnkit._kernels.scan`), the ``rnnkit.nn`` cells and the tests
  run it.
- Keras', in ``rnnkit.layers``: ``SimpleRNNCell``, ``GRUCell`` and ``LSTMCell`` keep ``kernel``
  (D, G*U) and ``recurrent_kernel`` (U, G*U), GRU gates ``z, r, h``, LSTM ``i, f, c, o``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

Activation = Callable[[Tensor], Tensor]


def rnn_equation(i: Tensor, h: Tensor, activation: Activation = torch.tanh) -> Tensor:
    """h' = activation(i + h), from the input projection i and the recurrent projection h."""
    return activation(i + h)


def gru_equation(
    i_r: Tensor,
    i_z: Tensor,
    i_n: Tensor,
    h_r: Tensor,
    h_z: Tensor,
    h_n: Tensor,
    h: Tensor,
    activation: Activation = torch.tanh,
    recurrent_activation: Activation = torch.sigmoid,
    *,
    reset_before: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The GRU from its gates' input parts ``i_*`` and recurrent parts ``h_*``; h the state::

        r = recurrent_activation(i_r + h_r)
        z = recurrent_activation(i_z + h_z)
        n = activation(i_n + r * h_n)             h_n = h W_hn + b_hn: reset after the product
        h' = (1 - z) * n + z * h                  (computed as n + z * (h - n))

    ``reset_before=W_hn`` is Keras' ``reset_after=False``: the reset gate multiplies the state
    before the product, ``n = activation(i_n + (r * h_n) W_hn)``, and h_n is then the state that
    product takes (h, or its dropped-out copy). Returns (h', r, z, n).
    """
    r = recurrent_activation(i_r + h_r)
    z = recurrent_activation(i_z + h_z)
    reset = r * h_n if reset_before is None else (r * h_n) @ reset_before
    n = activation(i_n + reset)
    return n + z * (h - n), r, z, n


def lstm_equation(
    i: Tensor,
    f: Tensor,
    g: Tensor,
    o: Tensor,
    c: Tensor,
    activation: Activation = torch.tanh,
    recurrent_activation: Activation = torch.sigmoid,
) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor, Tensor, Tensor]]:
    """The LSTM from its gates' pre-activations i, f, g, o (input plus recurrent projection)::

        c' = recurrent_activation(f) * c + recurrent_activation(i) * activation(g)
        h' = recurrent_activation(o) * activation(c')

    Returns (h', c', the activated gates (i, f, g, o))."""
    i, f, o = recurrent_activation(i), recurrent_activation(f), recurrent_activation(o)
    g = activation(g)
    c_new = f * c + i * g
    return o * activation(c_new), c_new, (i, f, g, o)


def _linear(x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    return torch.nn.functional.linear(x, w, b)


def rnn_step(gi: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor | None,
               activation: Activation = torch.tanh) -> Tensor:
    """h' = activation(gi + h W_hh^T + b_hh)."""
    return rnn_equation(gi, _linear(h, w_hh, b_hh), activation)


def gru_step(gi: Tensor, h: Tensor, w_hh: Tensor,
             b_hh: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    """PyTorch's GRU (:func:`gru_equation` with h_n = W_hn h + b_hn, blocks r, z, n).

    Returns (h', (r, z, n) as (B, 3H), W_hn h + b_hn).
    """
    gh = _linear(h, w_hh, b_hh)  # (B, 3H)
    i_r, i_z, i_n = gi.chunk(3, dim=-1)
    h_r, h_z, h_n = gh.chunk(3, dim=-1)
    h_new, r, z, n = gru_equation(i_r, i_z, i_n, h_r, h_z, h_n, h)
    return h_new, torch.cat([r, z, n], dim=-1), h_n


def lstm_step(gi: Tensor, h: Tensor, c: Tensor, w_hh: Tensor,
              b_hh: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`lstm_equation` of gi + h W_hh^T + b_hh split into i, f, g, o.
    Returns (h', c', activated gates (B, 4H))."""
    gates = gi + _linear(h, w_hh, b_hh)  # (B, 4H)
    h_new, c_new, activated = lstm_equation(*gates.chunk(4, dim=-1), c)
    return h_new, c_new, torch.cat(activated, dim=-1)


def rnn_cell(
    x: Tensor,
    h: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
    nonlinearity: str = "tanh",
) -> Tensor:
    """h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh), act ``"tanh"`` or ``"relu"``."""
    activation = torch.tanh if nonlinearity == "tanh" else torch.relu
    return rnn_step(_linear(x, w_ih, b_ih), h, w_hh, b_hh, activation)


def gru_cell(
    x: Tensor,
    h: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
) -> Tensor:
    """PyTorch's GRU step from x (see :func:`gru_step`)."""
    return gru_step(_linear(x, w_ih, b_ih), h, w_hh, b_hh)[0]


def lstm_cell(
    x: Tensor,
    h: Tensor,
    c: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """The LSTM step from x (see :func:`lstm_step`). Returns (h', c')."""
    h_new, c_new, _ = lstm_step(_linear(x, w_ih, b_ih), h, c, w_hh, b_hh)
    return h_new, c_new

"""SimpleRNN, GRU and LSTM as plain NumPy loops: the textbook math, used as the test oracle.

Each function is a loop over time whose body reads like the equations. It computes in float64
whatever the input dtype, imports no torch, and takes no shortcuts: the project's tests check
the PyTorch kernels in ``rnnkit._kernels`` against it.

Weights use Keras' layout, so a Keras layer's ``get_weights()`` plugs in directly. With D input
features, U units and G gates (SimpleRNN 1; GRU 3, blocks ``z, r, h``; LSTM 4, ``i, f, c, o``):

    ====================  ==========  =================================================
    weight                shape       note
    ====================  ==========  =================================================
    ``kernel``            (D, G*U)    applied as ``x_t @ kernel``
    ``recurrent_kernel``  (U, G*U)    applied as ``h @ recurrent_kernel``
    ``bias``              (G*U,)      GRU with ``reset_after=True``: (2, 3U), row 0 the
                                      input bias, row 1 the recurrent bias
    ====================  ==========  =================================================

Inputs are batch first: ``x`` is (B, T, D), ``h0``/``c0`` (B, U), ``mask`` (B, T), and the
states come back as (B, T, U). A single sequence works too: ``x`` (T, D), ``h0`` (U,),
``mask`` (T,), states (T, U). ``bias=None`` means no bias, ``h0=None`` a zero initial state.

Masks and direction follow Keras' ``RNN`` layer:

- ``mask``: where it is False the step is skipped and the state is *held*, carried over
  unchanged. These functions return that held state at masked steps. What a *layer* emits there
  is the layer's business (Keras: the previous output, or zeros with ``zero_output_for_mask``).
- ``go_backwards=True`` processes time from T-1 down to 0 and returns the states in processing
  order, as Keras 3 does with ``return_sequences=True``: ``out[:, k]`` is the state after step
  ``T-1-k``, and ``out[:, -1]`` the final state (Keras' ``Bidirectional`` flips the backward
  sequence back). ``rnnkit._kernels`` with ``reverse=True`` returns time order instead, which is
  ``out[:, ::-1]``. With a prefix mask the backward pass starts at each sequence's last real step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray

Array = NDArray[np.float64]
Activation = Union[str, Callable[[Array], Array]]

__all__ = ["gru", "layer_norm_gru", "layer_norm_lstm", "lstm", "mingru", "minlstm",
           "peephole_lstm", "sigmoid", "simple_rnn", "simple_rnn_backward"]


def sigmoid(a: Array) -> Array:
    """The logistic function 1 / (1 + exp(-a)), as Keras' "sigmoid"."""
    # The exact identity via tanh: no overflow warning for large |a|, as exp(-a) would give.
    return 0.5 * (1.0 + np.tanh(0.5 * a))


# name: (activation, its derivative written in terms of the activation's output)
_ACTIVATIONS: dict[str, tuple[Callable[[Array], Array], Callable[[Array], Array]]] = {
    "tanh": (np.tanh, lambda h: 1.0 - h * h),
    "relu": (lambda a: np.maximum(a, 0.0), lambda h: (h > 0).astype(np.float64)),
    "sigmoid": (sigmoid, lambda h: h * (1.0 - h)),
    "linear": (lambda a: a, np.ones_like),
}


def simple_rnn(
    x: ArrayLike,
    kernel: ArrayLike,
    recurrent_kernel: ArrayLike,
    bias: ArrayLike | None = None,
    h0: ArrayLike | None = None,
    activation: Activation = "tanh",
    mask: ArrayLike | None = None,
    go_backwards: bool = False,
) -> Array:
    """Keras' SimpleRNN: every state of h_t = act(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias).

    ``activation`` is "tanh", "relu", "sigmoid", "linear" or a function of an array.

    >>> x = np.array([[1.0], [2.0]])  # one sequence: 2 steps, 1 feature
    >>> simple_rnn(x, [[0.5]], [[2.0]], [0.25], activation="linear")[:, 0]
    array([0.75, 2.75])
    """
    name = "simple_rnn"
    x, unbatched = _sequences(x, name)
    kernel, rk, units = _weights(kernel, recurrent_kernel, x.shape[-1], 1, name)
    b = np.zeros(units) if bias is None else _shaped(bias, (units,), "bias", name)
    act = _activation(activation, name)[0]
    batch, steps = x.shape[:2]
    h = _initial(h0, batch, units, unbatched, "h0", name)
    keep = _mask(mask, batch, steps, unbatched, name)

    def step(x_t: Array, state: tuple[Array, ...]) -> tuple[Array, ...]:
        (h_prev,) = state
        return (act(x_t @ kernel + h_prev @ rk + b),)

    (states,) = _scan(step, x, (h,), keep, go_backwards)
    return states[0] if unbatched else states


def simple_rnn_backward(
    x: ArrayLike,
    kernel: ArrayLike,
    recurrent_kernel: ArrayLike,
    bias: ArrayLike | None,
    h0: ArrayLike | None,
    states: ArrayLike,
    d_states: ArrayLike,
    activation: str = "tanh",
    *,
    mask: ArrayLike | None = None,
    go_backwards: bool = False,
) -> dict[str, Array | None]:
    """Backpropagation through time for :func:`simple_rnn`, given d_states = dL/d(states).

    ``states`` is what ``simple_rnn`` returned for the same arguments and ``d_states`` (same
    shape) the loss's gradient with respect to it. With a_t = x_t K + h_{t-1} R + b and
    h_t = act(a_t), walking back from the last step with dh_t = d_states_t + (what step t+1
    sent back):

        da_t = dh_t * act'(a_t)          act' in terms of h_t: 1 - h_t**2 for tanh
        dK += x_t^T da_t    dR += h_{t-1}^T da_t    db += sum over the batch of da_t
        dx_t = da_t K^T     sent back to step t-1: da_t R^T     dh0 = what step 0 sends back

    At a masked step h_t = h_{t-1}: dh_t goes straight back to step t-1 and nothing else moves.
    Returns {"x", "kernel", "recurrent_kernel", "bias", "h0"}, each shaped like its argument;
    "bias" is None when ``bias`` is, and "h0" is the gradient for the zero state when h0 is None.
    """
    name = "simple_rnn_backward"
    x, unbatched = _sequences(x, name)
    kernel, rk, units = _weights(kernel, recurrent_kernel, x.shape[-1], 1, name)
    b = np.zeros(units) if bias is None else _shaped(bias, (units,), "bias", name)
    act_grad = _activation(activation, name)[1]
    if act_grad is None:
        raise ValueError(
            f"{name}: activation must be one of {sorted(_ACTIVATIONS)}, got a callable "
            "(its derivative is unknown)"
        )
    batch, steps = x.shape[:2]
    h0 = _initial(h0, batch, units, unbatched, "h0", name)
    keep = _mask(mask, batch, steps, unbatched, name)
    shape = (batch, steps, units)
    hs = _shaped(states, shape, "states", name, unbatched)
    d_hs = _shaped(d_states, shape, "d_states", name, unbatched)
    if go_backwards:  # states are in processing order already; put x and mask in it too
        x = x[:, ::-1]
        keep = None if keep is None else keep[:, ::-1]

    dx, dK, dR, db = np.zeros_like(x), np.zeros_like(kernel), np.zeros_like(rk), np.zeros_like(b)
    dh_next = np.zeros((batch, units))  # dL/dh_t arriving from step t+1
    for t in reversed(range(steps)):
        h_prev = hs[:, t - 1] if t > 0 else h0
        dh = d_hs[:, t] + dh_next
        da = dh * act_grad(hs[:, t])  # (B, U)
        if keep is not None:
            da = np.where(keep[:, t, None], da, 0.0)
        dK += x[:, t].T @ da
        dR += h_prev.T @ da
        db += da.sum(axis=0)
        dx[:, t] = da @ kernel.T
        dh_next = da @ rk.T
        if keep is not None:  # a held state passes its gradient through untouched
            dh_next += np.where(keep[:, t, None], 0.0, dh)

    if go_backwards:
        dx = dx[:, ::-1]
    return {
        "x": dx[0] if unbatched else dx,
        "kernel": dK,
        "recurrent_kernel": dR,
        "bias": None if bias is None else db,
        "h0": dh_next[0] if unbatched else dh_next,
    }


def gru(
    x: ArrayLike,
    kernel: ArrayLike,
    recurrent_kernel: ArrayLike,
    bias: ArrayLike | None = None,
    h0: ArrayLike | None = None,
    reset_after: bool = True,
    mask: ArrayLike | None = None,
    go_backwards: bool = False,
) -> Array:
    """Keras 3's GRU (gate blocks z, r, h); every state. With b the input bias, rb the recurrent
    bias (``reset_after=True`` only) and K, R the blocks of kernel and recurrent_kernel:

        z  = sigmoid(x_t K_z + b_z + h R_z + rb_z)
        r  = sigmoid(x_t K_r + b_r + h R_r + rb_r)
        hh = tanh(x_t K_h + b_h + r * (h R_h + rb_h))    reset_after=True, bias (2, 3U) = [b, rb]
        hh = tanh(x_t K_h + b_h + (r * h) R_h)           reset_after=False, bias (3U,) = b
        h_t = z * h + (1 - z) * hh

    ``reset_after=True`` is PyTorch's GRU with its gates reordered (torch: r, z, n).
    """
    name = "gru"
    x, unbatched = _sequences(x, name)
    kernel, rk, units = _weights(kernel, recurrent_kernel, x.shape[-1], 3, name)
    b, rb = np.zeros(3 * units), np.zeros(3 * units)
    if bias is not None and reset_after:
        b, rb = _shaped(bias, (2, 3 * units), "bias (reset_after=True)", name)
    elif bias is not None:
        b = _shaped(bias, (3 * units,), "bias (reset_after=False)", name)
    batch, steps = x.shape[:2]
    h = _initial(h0, batch, units, unbatched, "h0", name)
    keep = _mask(mask, batch, steps, unbatched, name)
    K_z, K_r, K_h = np.split(kernel, 3, axis=1)
    R_z, R_r, R_h = np.split(rk, 3, axis=1)
    b_z, b_r, b_h = np.split(b, 3)
    rb_z, rb_r, rb_h = np.split(rb, 3)

    def step(x_t: Array, state: tuple[Array, ...]) -> tuple[Array, ...]:
        (h,) = state
        z = sigmoid(x_t @ K_z + b_z + h @ R_z + rb_z)
        r = sigmoid(x_t @ K_r + b_r + h @ R_r + rb_r)
        if reset_after:
            hh = np.tanh(x_t @ K_h + b_h + r * (h @ R_h + rb_h))
        else:
            hh = np.tanh(x_t @ K_h + b_h + (r * h) @ R_h)
        return (z * h + (1 - z) * hh,)

    (states,) = _scan(step, x, (h,), keep, go_backwards)
    return states[0] if unbatched else states


def lstm(
    x: ArrayLike,
    kernel: ArrayLike,
    recurrent_kernel: ArrayLike,
    bias: ArrayLike | None = None,
    h0: ArrayLike | None = None,
    c0: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    go_backwards: bool = False,
) -> tuple[Array, Array]:
    """Keras' LSTM (gate blocks i, f, c, o); every hidden state and every cell state:

        i = sigmoid(x_t K_i + h R_i + b_i)      f = sigmoid(x_t K_f + h R_f + b_f)
        g = tanh(x_t K_c + h R_c + b_c)         o = sigmoid(x_t K_o + h R_o + b_o)
        c_t = f * c + i * g                     h_t = o * tanh(c_t)

    The gate order is PyTorch's (i, f, g, o), so torch's weights are the transposes.
    """
    name = "lstm"
    x, unbatched = _sequences(x, name)
    kernel, rk, units = _weights(kernel, recurrent_kernel, x.shape[-1], 4, name)
    b = np.zeros(4 * units) if bias is None else _shaped(bias, (4 * units,), "bias", name)
    batch, steps = x.shape[:2]
    h = _initial(h0, batch, units, unbatched, "h0", name)
    c = _initial(c0, batch, units, unbatched, "c0", name)
    keep = _mask(mask, batch, steps, unbatched, name)
    K_i, K_f, K_c, K_o = np.split(kernel, 4, axis=1)
    R_i, R_f, R_c, R_o = np.split(rk, 4, axis=1)
    b_i, b_f, b_c, b_o = np.split(b, 4)

    def step(x_t: Array, state: tuple[Array, ...]) -> tuple[Array, ...]:
        h, c = state
        i = sigmoid(x_t @ K_i + h @ R_i + b_i)
        f = sigmoid(x_t @ K_f + h @ R_f + b_f)
        g = np.tanh(x_t @ K_c + h @ R_c + b_c)
        o = sigmoid(x_t @ K_o + h @ R_o + b_o)
        c_t = f * c + i * g
        return (o * np.tanh(c_t), c_t)

    hs, cs = _scan(step, x, (h, c), keep, go_backwards)
    return (hs[0], cs[0]) if unbatched else (hs, cs)


def _min_rnn(name: str, gates: int, x: ArrayLike, kernel: ArrayLike, bias: ArrayLike | None,
             h0: ArrayLike | None, mask: ArrayLike | None, go_backwards: bool,
             update: Callable[[list[Array], Array], Array]) -> Array:
    x, unbatched = _sequences(x, name)
    k = np.asarray(kernel, dtype=np.float64)
    if k.ndim != 2 or k.shape[0] != x.shape[-1] or k.shape[1] == 0 or k.shape[1] % gates:
        raise ValueError(f"{name}: kernel must have shape (features, {gates} * units) with "
                         f"features={x.shape[-1]}, got shape {k.shape}")
    units = k.shape[1] // gates
    b = np.zeros(gates * units) if bias is None else _shaped(bias, (gates * units,), "bias", name)
    batch, steps = x.shape[:2]
    h = _initial(h0, batch, units, unbatched, "h0", name)
    keep = _mask(mask, batch, steps, unbatched, name)

    def step(x_t: Array, state: tuple[Array, ...]) -> tuple[Array, ...]:
        return (update(np.split(x_t @ k + b, gates, axis=1), state[0]),)

    (states,) = _scan(step, x, (h,), keep, go_backwards)
    return states[0] if unbatched else states


def _g(a: Array) -> Array:
    """minGRU's positive candidate: a + 0.5 for a >= 0, sigmoid(a) below."""
    return np.where(a >= 0, a + 0.5, sigmoid(a))


def mingru(x: ArrayLike, kernel: ArrayLike, bias: ArrayLike | None = None,
           h0: ArrayLike | None = None, mask: ArrayLike | None = None,
           go_backwards: bool = False) -> Array:
    """minGRU (Feng et al. 2024, the log-space variant's equations; kernel (D, 2U), blocks z, h;
    no recurrent kernel); every state::

        z   = sigmoid(x_t K_z + b_z)
        h_t = (1 - z) * h + z * g(x_t K_h + b_h)       g(a) = a + 0.5 (a >= 0), sigmoid(a)
    """
    def update(blocks: list[Array], h: Array) -> Array:
        z = sigmoid(blocks[0])
        return (1 - z) * h + z * _g(blocks[1])

    return _min_rnn("mingru", 2, x, kernel, bias, h0, mask, go_backwards, update)


def minlstm(x: ArrayLike, kernel: ArrayLike, bias: ArrayLike | None = None,
            h0: ArrayLike | None = None, mask: ArrayLike | None = None,
            go_backwards: bool = False) -> Array:
    """minLSTM (Feng et al. 2024; kernel (D, 3U), blocks f, i, h); every state::

        f, i = sigmoid(x_t K_f + b_f), sigmoid(x_t K_i + b_i)
        h_t  = f / (f + i) * h + i / (f + i) * g(x_t K_h + b_h)
    """
    def update(blocks: list[Array], h: Array) -> Array:
        f, i = sigmoid(blocks[0]), sigmoid(blocks[1])
        return f / (f + i) * h + i / (f + i) * _g(blocks[2])

    return _min_rnn("minlstm", 3, x, kernel, bias, h0, mask, go_backwards, update)


def peephole_lstm(x: ArrayLike, kernel: ArrayLike, recurrent_kernel: ArrayLike,
                  peepholes: ArrayLike, bias: ArrayLike | None = None,
                  h0: ArrayLike | None = None, c0: ArrayLike | None = None,
                  mask: ArrayLike | None = None, go_backwards: bool = False) -> tuple[Array, Array]:
    """The peephole LSTM (Gers & Schmidhuber 2000, placed as TensorFlow's ``use_peepholes``;
    blocks i, f, c, o; ``peepholes`` (3, U) = [p_i, p_f, p_o]); every (h, c)::

        i  = sigmoid(x_t K_i + h R_i + p_i * c + b_i)
        f  = sigmoid(x_t K_f + h R_f + p_f * c + b_f)
        c' = f * c + i * tanh(x_t K_c + h R_c + b_c)
        o  = sigmoid(x_t K_o + h R_o + p_o * c' + b_o)
        h' = o * tanh(c')
    """
    name = "peephole_lstm"
    x, unbatched = _sequences(x, name)
    kernel, rk, units = _weights(kernel, recurrent_kernel, x.shape[-1], 4, name)
    p_i, p_f, p_o = _shaped(peepholes, (3, units), "peepholes", name)
    b = np.zeros(4 * units) if bias is None else _shaped(bias, (4 * units,), "bias", name)
    batch, steps = x.shape[:2]
    h = _initial(h0, batch, units, unbatched, "h0", name)
    c = _initial(c0, batch, units, unbatched, "c0", name)
    keep = _mask(mask, batch, steps, unbatched, name)

    def step(x_t: Array, state: tuple[Array, ...]) -> tuple[Array, ...]:
        h, c = state
        a_i, a_f, a_c, a_o = np.split(x_t @ kernel + h @ rk + b, 4, axis=1)
        i = sigmoid(a_i + p_i * c)
        f = sigmoid(a_f + p_f * c)
        c = f * c + i * np.tanh(a_c)
        o = sigmoid(a_o + p_o * c)
        return o * np.tanh(c), c

    hs, cs = _scan(step, x, (h, c), keep, go_backwards)
    return (hs[0], cs[0]) if unbatched else (hs, cs)


def _layer_norm(v: Array, gain: Array, shift: Array, eps: float = 1e-5) -> Array:
    mean = v.mean(axis=-1, keepdims=True)
    var = ((v - mean) ** 2).mean(axis=-1, keepdims=True)
    return gain * (v - mean) / np.sqrt(var + eps) + shift


def layer_norm_lstm(x: ArrayLike, kernel: ArrayLike, recurrent_kernel: ArrayLike,
                    ln_x: tuple[ArrayLike, ArrayLike], ln_h: tuple[ArrayLike, ArrayLike],
                    ln_c: tuple[ArrayLike, ArrayLike], bias: ArrayLike | None = None,
                    h0: ArrayLike | None = None, c0: ArrayLike | None = None,
                    mask: ArrayLike | None = None, go_backwards: bool = False
                    ) -> tuple[Array, Array]:
    """The layer-normalised LSTM of Ba et al. 2016 (blocks i, f, c, o; each ``ln_*`` a (gain,
    shift) pair, 4U wide for x and h, U for c; eps 1e-5); every (h, c)::

        [i, f, c~, o] = LN(x_t K; ln_x) + LN(h R; ln_h) + b
        c' = sigmoid(f) * c + sigmoid(i) * tanh(c~)
        h' = sigmoid(o) * tanh(LN(c'; ln_c))
    """
    name = "layer_norm_lstm"
    x, unbatched = _sequences(x, name)
    kernel, rk, units = _weights(kernel, recurrent_kernel, x.shape[-1], 4, name)
    gx, sx = (_shaped(v, (4 * units,), "ln_x", name) for v in ln_x)
    gh, sh = (_shaped(v, (4 * units,), "ln_h", name) for v in ln_h)
    gc, sc = (_shaped(v, (units,), "ln_c", name) for v in ln_c)
    b = np.zeros(4 * units) if bias is None else _shaped(bias, (4 * units,), "bias", name)
    batch, steps = x.shape[:2]
    h = _initial(h0, batch, units, unbatched, "h0", name)
    c = _initial(c0, batch, units, unbatched, "c0", name)
    keep = _mask(mask, batch, steps, unbatched, name)

    def step(x_t: Array, state: tuple[Array, ...]) -> tuple[Array, ...]:
        h, c = state
        a = _layer_norm(x_t @ kernel, gx, sx) + _layer_norm(h @ rk, gh, sh) + b
        a_i, a_f, a_c, a_o = np.split(a, 4, axis=1)
        c = sigmoid(a_f) * c + sigmoid(a_i) * np.tanh(a_c)
        return sigmoid(a_o) * np.tanh(_layer_norm(c, gc, sc)), c

    hs, cs = _scan(step, x, (h, c), keep, go_backwards)
    return (hs[0], cs[0]) if unbatched else (hs, cs)


def layer_norm_gru(x: ArrayLike, kernel: ArrayLike, recurrent_kernel: ArrayLike,
                   ln_x: tuple[ArrayLike, ArrayLike], ln_h: tuple[ArrayLike, ArrayLike],
                   bias: ArrayLike | None = None, h0: ArrayLike | None = None,
                   mask: ArrayLike | None = None, go_backwards: bool = False) -> Array:
    """The layer-normalised GRU of Ba et al. 2016 (the authors' ``lngru_layer``; blocks z, r, h
    as :func:`gru` with ``reset_after=True``; ``bias`` (2, 3U) = [b, rb]; each ``ln_*`` a
    (gain, shift) pair 3U wide, normalising the [z, r] blocks together and the h block alone;
    eps 1e-5); every state::

        [z, r] = sigmoid(LN(x_t K_zr; ln_x) + b_zr + LN(h R_zr; ln_h) + rb_zr)
        hh  = tanh(LN(x_t K_h; ln_x) + b_h + r * (LN(h R_h; ln_h) + rb_h))
        h_t = z * h + (1 - z) * hh
    """
    name = "layer_norm_gru"
    x, unbatched = _sequences(x, name)
    kernel, rk, units = _weights(kernel, recurrent_kernel, x.shape[-1], 3, name)
    gx, sx = (_shaped(v, (3 * units,), "ln_x", name) for v in ln_x)
    gh, sh = (_shaped(v, (3 * units,), "ln_h", name) for v in ln_h)
    b, rb = (np.zeros((2, 3 * units)) if bias is None
             else _shaped(bias, (2, 3 * units), "bias", name))
    batch, steps = x.shape[:2]
    h = _initial(h0, batch, units, unbatched, "h0", name)
    keep = _mask(mask, batch, steps, unbatched, name)
    U2 = 2 * units

    def norm(v: Array, gain: Array, shift: Array) -> Array:
        return np.concatenate([_layer_norm(v[:, :U2], gain[:U2], shift[:U2]),
                               _layer_norm(v[:, U2:], gain[U2:], shift[U2:])], axis=1)

    def step(x_t: Array, state: tuple[Array, ...]) -> tuple[Array, ...]:
        (h,) = state
        a_x = norm(x_t @ kernel, gx, sx) + b
        a_h = norm(h @ rk, gh, sh) + rb
        z = sigmoid(a_x[:, :units] + a_h[:, :units])
        r = sigmoid(a_x[:, units:U2] + a_h[:, units:U2])
        hh = np.tanh(a_x[:, U2:] + r * a_h[:, U2:])
        return (z * h + (1 - z) * hh,)

    (states,) = _scan(step, x, (h,), keep, go_backwards)
    return states[0] if unbatched else states


# ---------------------------------------------------------------------------------------------
# The loop shared by every recurrence, and argument checking.


def _scan(
    step: Callable[[Array, tuple[Array, ...]], tuple[Array, ...]],
    x: Array,
    state: tuple[Array, ...],
    keep: NDArray[np.bool_] | None,
    go_backwards: bool,
) -> tuple[Array, ...]:
    """Run ``state = step(x_t, state)`` over time; every state after every step, (B, T, U) each,
    in processing order. Where ``keep[:, t]`` is False the state is held."""
    batch, steps = x.shape[:2]
    order = range(steps - 1, -1, -1) if go_backwards else range(steps)
    history = tuple(np.empty((batch, steps, s.shape[-1])) for s in state)
    for k, t in enumerate(order):
        new = step(x[:, t], state)
        if keep is not None:
            new = tuple(np.where(keep[:, t, None], n, s) for n, s in zip(new, state))
        state = new
        for states, s in zip(history, state):
            states[:, k] = s
    return history


def _sequences(x: ArrayLike, name: str) -> tuple[Array, bool]:
    """x as (B, T, D) float64, and whether it was a single (T, D) sequence."""
    array = np.asarray(x, dtype=np.float64)
    if array.ndim not in (2, 3):
        raise ValueError(
            f"{name}: x must have shape (batch, time, features) or (time, features), "
            f"got shape {array.shape}"
        )
    return (array[None], True) if array.ndim == 2 else (array, False)


def _shaped(
    value: Any, shape: tuple[int, ...], what: str, name: str, unbatched: bool = False
) -> Array:
    """value as float64 of exactly ``shape`` (without its batch axis when unbatched)."""
    expected = shape[1:] if unbatched else shape
    array = np.asarray(value, dtype=np.float64)
    if array.shape != expected:
        raise ValueError(f"{name}: {what} must have shape {expected}, got shape {array.shape}")
    return array.reshape(shape)


def _weights(
    kernel: ArrayLike, recurrent_kernel: ArrayLike, features: int, gates: int, name: str
) -> tuple[Array, Array, int]:
    """Checked (kernel, recurrent_kernel, units) for ``gates`` gate blocks."""
    k = np.asarray(kernel, dtype=np.float64)
    if k.ndim != 2 or k.shape[0] != features or k.shape[1] == 0 or k.shape[1] % gates:
        raise ValueError(
            f"{name}: kernel must have shape (features, {gates} * units) with features={features} "
            f"(the input's last axis), got shape {k.shape}"
        )
    units = k.shape[1] // gates
    rk = _shaped(recurrent_kernel, (units, gates * units), "recurrent_kernel", name)
    return k, rk, units


def _initial(
    value: ArrayLike | None, batch: int, units: int, unbatched: bool, what: str, name: str
) -> Array:
    """An initial state as (B, U): zeros when None."""
    if value is None:
        return np.zeros((batch, units))
    return _shaped(value, (batch, units), what, name, unbatched)


def _mask(
    mask: ArrayLike | None, batch: int, steps: int, unbatched: bool, name: str
) -> NDArray[np.bool_] | None:
    if mask is None:
        return None
    array = np.asarray(mask)
    expected = (steps,) if unbatched else (batch, steps)
    if array.shape != expected:
        raise ValueError(f"{name}: mask must have shape {expected}, got shape {array.shape}")
    return array.astype(bool).reshape(batch, steps)


def _activation(
    activation: Activation, name: str
) -> tuple[Callable[[Array], Array], Callable[[Array], Array] | None]:
    """(activation, derivative in terms of its output or None for a user's function)."""
    if callable(activation):
        return activation, None
    if not isinstance(activation, str) or activation not in _ACTIVATIONS:
        raise ValueError(
            f"{name}: activation must be one of {sorted(_ACTIVATIONS)} or a function, "
            f"got {activation!r}"
        )
    return _ACTIVATIONS[activation]

"""Keras' LSTM and GRU with :mod:`rnnkit._keras_adapter` against Keras' own computation.

The same layer (same weights) is called with the adapter installed and without it (Keras 3's
own torch backend: its projected loop, or its generic per-step loop with masks); values and
gradients (inputs and every trainable variable) must agree, and the adapter must have run the
kernel (a spy counts the calls), or fallen back where it should.
"""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest
import torch

import keras  # noqa: E402  (the conftest chose the torch backend)
from rnnkit import _keras_adapter
from rnnkit.layers import gru as rk_gru
from rnnkit.layers import lstm as rk_lstm

pytestmark = pytest.mark.adapter_managed

TOL = {torch.float32: dict(rtol=2e-5, atol=2e-6), torch.float64: dict(rtol=1e-10, atol=1e-12)}
# Keras' generic per-step loop (the one its layers run with a mask) is itself ~2e-8 away from
# Keras' own projected loop in float64, so float64 with a mask is compared at this tolerance
LOOSE64 = dict(rtol=1e-6, atol=1e-7)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the rnnkit kernels the adapter ran."""
    calls: list[str] = []
    for name, module in (("lstm", rk_lstm), ("gru", rk_gru)):
        real = module.fused_states

        def counted(*args, _real=real, _name=name, **kwargs):
            calls.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(module, "fused_states", counted)
    return calls


@pytest.fixture(autouse=True)
def _clean() -> None:
    yield
    _keras_adapter.uninstall()


def _mask(kind: str, batch: int, steps: int) -> np.ndarray | None:
    if kind == "none":
        return None
    lengths = np.array([steps, 1, steps - 2, 3][:batch])
    right = np.arange(steps)[None, :] < lengths[:, None]  # (B, T)
    if kind == "right":
        return right
    if kind == "left":
        return right[:, ::-1].copy()
    mixed = np.random.default_rng(1).random((batch, steps)) > 0.4  # holes anywhere, and
    mixed[1] = False  # one sequence with no real step at all
    return mixed


def _run(layer, x: np.ndarray, mask: np.ndarray | None, dtype: torch.dtype,
         initial_state: list[np.ndarray] | None = None, calls: int = 1):
    """Outputs and gradients (inputs, then the layer's trainable variables) of ``calls``
    calls (the last one differentiated: stateful layers carry their states across)."""
    for _ in range(calls - 1):
        layer(torch.as_tensor(x, dtype=dtype))
    xt = torch.tensor(x, dtype=dtype, requires_grad=True)
    kwargs = {}
    if mask is not None:
        kwargs["mask"] = torch.as_tensor(mask)
    if initial_state is not None:
        kwargs["initial_state"] = [torch.tensor(s, dtype=dtype) for s in initial_state]
    outputs = layer(xt, **kwargs)
    outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    weights = [torch.linspace(-1, 1, o.numel(), dtype=dtype).view(o.shape) for o in outputs]
    loss = sum((o * w).sum() for o, w in zip(outputs, weights))
    variables = [v.value for v in layer.trainable_variables]
    grads = torch.autograd.grad(loss, [xt, *variables], allow_unused=True)
    return [o.detach() for o in outputs], [g if g is None else g.detach() for g in grads]


def _compare(make, x, mask, dtype, spy, expect_kernel, tol=None, keras_loop=False, **run):
    """``keras_loop``: compare with Keras' generic per-step loop (use_cudnn=False), not with
    whatever Keras' backend would run."""
    keras.utils.set_random_seed(0)
    on_layer, off_layer = make(), make()
    if keras_loop:
        off_layer.use_cudnn = False
    on_layer.build(x.shape)
    off_layer.build(x.shape)
    off_layer.set_weights(on_layer.get_weights())
    assert _keras_adapter.install()
    on = _run(on_layer, x, mask, dtype, **run)
    kernel_calls = len(spy)
    _keras_adapter.uninstall()
    off = _run(off_layer, x, mask, dtype, **run)
    assert len(spy) == kernel_calls  # uninstalled: Keras' own code ran
    if expect_kernel:
        assert kernel_calls > 0, "the adapter did not run rnnkit's kernel"
    else:
        assert kernel_calls == 0, "the adapter ran a configuration it must leave to Keras"
    for got, want in zip(on[0] + on[1], off[0] + off[1]):
        if want is None:
            assert got is None
            continue
        torch.testing.assert_close(got, want, **(tol or TOL[dtype]))


GRID = list(itertools.product(
    ["lstm", "gru", "gru_reset_before"],
    ["none", "right", "left", "mixed"],
    [False, True],  # go_backwards
    [False, True],  # return_sequences
))


@pytest.mark.parametrize("cell,mask,go_backwards,return_sequences", GRID)
def test_layer_matches_keras(spy, cell, mask, go_backwards, return_sequences):
    batch, steps, features, units = 4, 6, 3, 5
    x = np.random.default_rng(0).normal(size=(batch, steps, features)).astype("float32")

    def make():
        kwargs = dict(return_sequences=return_sequences, return_state=True,
                      go_backwards=go_backwards)
        if cell == "lstm":
            return keras.layers.LSTM(units, **kwargs)
        return keras.layers.GRU(units, reset_after=cell == "gru", **kwargs)

    _compare(make, x, _mask(mask, batch, steps), torch.float32, spy,
             expect_kernel=cell != "gru_reset_before")


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("mask", ["none", "mixed"])
def test_float64_initial_state_and_no_bias(spy, cell, mask):
    keras.config.set_floatx("float64")
    try:
        batch, steps, features, units = 4, 5, 2, 3
        rng = np.random.default_rng(2)
        x = rng.normal(size=(batch, steps, features))
        states = [rng.normal(size=(batch, units)) for _ in range(2 if cell == "lstm" else 1)]
        layer = keras.layers.LSTM if cell == "lstm" else keras.layers.GRU
        _compare(lambda: layer(units, use_bias=False, return_sequences=True, dtype="float64"),
                 x, _mask(mask, batch, steps), torch.float64, spy, expect_kernel=True,
                 tol=None if mask == "none" else LOOSE64, initial_state=states)
    finally:
        keras.config.set_floatx("float32")


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_stateful_layer_carries_states(spy, cell):
    # against Keras' generic loop: Keras' own torch fast path cannot differentiate a stateful
    # call (it assigns the new states into the variables its backward pass still needs)
    x = np.random.default_rng(3).normal(size=(2, 4, 3)).astype("float32")
    layer = keras.layers.LSTM if cell == "lstm" else keras.layers.GRU
    _compare(lambda: layer(4, stateful=True, return_sequences=True), x, None, torch.float32,
             spy, expect_kernel=True, keras_loop=True, calls=3)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("mask", ["none", "right", "mixed"])
def test_bidirectional_wrapper(spy, cell, return_sequences, mask):
    # Bidirectional sets zero_output_for_mask = return_sequences on both layers
    x = np.random.default_rng(4).normal(size=(4, 6, 3)).astype("float32")
    layer = keras.layers.LSTM if cell == "lstm" else keras.layers.GRU
    _compare(lambda: keras.layers.Bidirectional(layer(4, return_sequences=return_sequences)),
             x, _mask(mask, 4, 6), torch.float32, spy, expect_kernel=True)


@pytest.mark.parametrize("kwargs", [dict(activation="relu"), dict(recurrent_activation="tanh"),
                                    dict(recurrent_dropout=0.3)])
def test_what_the_kernel_cannot_run_is_left_to_keras(spy, kwargs):
    x = np.random.default_rng(5).normal(size=(3, 4, 2)).astype("float32")
    _compare(lambda: keras.layers.LSTM(3, return_sequences=True, **kwargs), x, None,
             torch.float32, spy, expect_kernel=False)


def test_input_dropout_in_training_reaches_the_kernel(spy):
    # Keras draws the input dropout mask before offering the call; the same seed gives the
    # same mask with and without the adapter
    x = np.ones((3, 4, 2), dtype="float32")
    outputs = []
    for install in (True, False):
        if install:
            assert _keras_adapter.install()
        keras.utils.set_random_seed(7)
        layer = keras.layers.GRU(3, dropout=0.5, seed=1, return_sequences=True)
        outputs.append(layer(torch.as_tensor(x), training=True).detach())
        _keras_adapter.uninstall()
    assert spy == ["gru"]
    torch.testing.assert_close(outputs[0], outputs[1], **TOL[torch.float32])


def test_fit_through_keras_trainer_trains_the_same_weights(spy):
    # Keras' torch trainer: gradients reach Keras' variables through the kernel
    rng = np.random.default_rng(6)
    x = rng.integers(1, 50, size=(64, 12))
    x[:, 9:] = 0  # padding, masked by the Embedding
    y = rng.integers(0, 2, size=(64, 1)).astype("float32")
    weights = []
    for install in (True, False):
        if install:
            assert _keras_adapter.install()
        keras.utils.set_random_seed(0)
        model = keras.Sequential([
            keras.Input((12,), dtype="int32"),
            keras.layers.Embedding(50, 8, mask_zero=True),
            keras.layers.Bidirectional(keras.layers.LSTM(6, return_sequences=True)),
            keras.layers.GRU(5),
            keras.layers.Dense(1, activation="sigmoid"),
        ])
        model.compile(optimizer="adam", loss="binary_crossentropy")
        model.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False)
        weights.append(model.get_weights())
        _keras_adapter.uninstall()
    assert set(spy) == {"lstm", "gru"}
    assert any(not np.allclose(w, 0) for w in weights[0])
    for got, want in zip(*weights):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_install_and_uninstall_swap_keras_functions_back():
    from keras.src import backend

    keras_lstm = backend.lstm
    assert _keras_adapter.install() and _keras_adapter.installed()
    assert backend.lstm is not keras_lstm and backend.lstm.__wrapped__ is keras_lstm
    assert _keras_adapter.install()  # idempotent: wrapped once
    assert backend.lstm.__wrapped__ is keras_lstm
    _keras_adapter.uninstall()
    assert backend.lstm is keras_lstm and not _keras_adapter.installed()


def _python(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**__import__("os").environ, "KERAS_BACKEND": "torch"})
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_keras_imported_after_install_is_patched_on_import():
    out = _python(
        "import sys, rnnkit, rnnkit._keras_adapter as a\n"
        "assert 'keras' not in sys.modules\n"
        "print(a.install())\n"
        "import keras\n"
        "from keras.src import backend\n"
        "print(a.installed(), backend.lstm.__module__)\n"
    )
    assert out.splitlines() == ["False", "True rnnkit._keras_adapter"]


def test_importing_rnnkit_imports_no_keras():
    assert _python("import sys, rnnkit, rnnkit._keras_adapter\n"
                   "print('keras' in sys.modules)") == "False"


def test_rnnkit_accelerate_switches_the_adapter():
    import rnnkit
    from keras.src import backend

    keras_lstm = backend.lstm
    with rnnkit.accelerate():
        assert _keras_adapter.installed() and backend.lstm.__wrapped__ is keras_lstm
        with rnnkit.accelerate(False):
            assert backend.lstm is keras_lstm
        assert backend.lstm.__wrapped__ is keras_lstm
    assert not _keras_adapter.installed() and backend.lstm is keras_lstm


def test_accelerate_before_keras_is_imported():
    out = _python("import rnnkit\nrnnkit.accelerate()\nimport keras\n"
                  "from keras.src import backend\nprint(backend.gru.__module__)\n"
                  "rnnkit.accelerate(False)\nprint(backend.gru.__module__)")
    assert out.splitlines() == ["rnnkit._keras_adapter", "keras.src.backend.torch.rnn"]

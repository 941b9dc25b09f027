"""Where "auto" hands a call to PyTorch's own kernels (the dense float32 LSTM at larger sizes,
dense GRU inference at large sizes): the same values and gradients as the autograd loop, in
both directions, with two, one or no biases; masked calls, small sizes and GRU training stay
on rnnkit's kernels. Float32: rtol/atol 1e-5."""

from __future__ import annotations

import pytest
import torch

from rnnkit import _kernels as K

T, B, D, H = 7, 16, 5, 64  # B * H = 1024: the torch path


def _inputs(bias: str, batch: int = B) -> list[torch.Tensor | None]:
    g = torch.Generator().manual_seed(0)

    def r(*shape: int) -> torch.Tensor:
        return (torch.rand(*shape, generator=g) - 0.5).requires_grad_()

    b_ih = r(4 * H) if bias in ("both", "one") else None
    b_hh = r(4 * H) if bias == "both" else None
    return [r(T, batch, D), r(batch, H), r(batch, H), r(4 * H, D), r(4 * H, H), b_ih, b_hh]


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("bias", ["both", "one", "none"])
def test_torch_path_matches_the_loop(reverse: bool, bias: str) -> None:
    args = _inputs(bias)
    assert K._prefers_torch_lstm(args[0], args[4], None)
    fast = K.lstm(*args, reverse=reverse)
    slow = K.lstm(*args, reverse=reverse, backend="loop")
    for a, b in zip(fast, slow):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    leaves = [a for a in args if a is not None]
    weights = [torch.randn_like(o) for o in fast]
    grads_fast = torch.autograd.grad(fast, leaves, weights)
    grads_slow = torch.autograd.grad(slow, leaves, weights)
    for a, b in zip(grads_fast, grads_slow):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_without_grad_the_torch_path_gives_the_same_values() -> None:
    args = _inputs("both")
    with torch.no_grad():
        fast = K.lstm(*args)
        slow = K.lstm(*args, backend="loop")
    for a, b in zip(fast, slow):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_masks_small_sizes_and_float64_stay_on_rnnkit_kernels() -> None:
    x, h0, c0, w_ih, w_hh, *_ = _inputs("both")
    assert not K._prefers_torch_lstm(x, w_hh, torch.ones(T, B, dtype=torch.bool))
    assert not K._prefers_torch_lstm(x[:, :4], w_hh, None)  # 4 x 64 < 1024
    assert not K._prefers_torch_lstm(x.double(), w_hh.double(), None)


@pytest.mark.parametrize("reverse", [False, True])
def test_large_dense_gru_inference_on_torch_matches_the_loop(reverse: bool) -> None:
    batch, hidden = 64, 256  # 16384: the torch path for inference
    g = torch.Generator().manual_seed(1)

    def r(*shape: int) -> torch.Tensor:
        return (torch.rand(*shape, generator=g) - 0.5) * 0.2

    args = [r(5, batch, 3), r(batch, hidden), r(3 * hidden, 3), r(3 * hidden, hidden),
            r(3 * hidden), r(3 * hidden)]
    with torch.no_grad():
        assert K._prefers_torch_gru(args[0], args[3], None, *args)
        fast = K.gru(*args, reverse=reverse)
        slow = K.gru(*args, reverse=reverse, backend="loop")
    for a, b in zip(fast, slow):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    # training (a gradient to compute) and masks stay on rnnkit's kernels
    weight = args[2].clone().requires_grad_()
    assert not K._prefers_torch_gru(args[0], args[3], None, weight)
    assert not K._prefers_torch_gru(args[0], args[3], torch.ones(5, batch, dtype=torch.bool))

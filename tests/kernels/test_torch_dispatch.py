"""Where "auto" hands a call to PyTorch's own kernel (dense float32 LSTM inference from batch x
hidden = 16384 on AVX2; training where a measurement or a rule says so; the rule itself:
test_route.py): the same values as the autograd loop, in both directions, with two, one or no biases; training,
masks, float64 and smaller sizes stay on rnnkit's kernels. Float32: rtol/atol 1e-5."""

from __future__ import annotations

import pytest
import torch

from rnnkit import _kernels as K
from rnnkit._kernels import _route
from rnnkit._kernels._route import prefers_torch_lstm

T, B, D, H = 5, 64, 3, 256  # B * H = 16384: the torch path for inference


def _inputs(bias: str, batch: int = B) -> list[torch.Tensor | None]:
    g = torch.Generator().manual_seed(0)

    def r(*shape: int) -> torch.Tensor:
        return (torch.rand(*shape, generator=g) - 0.5) * 0.2

    b_ih = r(4 * H) if bias in ("both", "one") else None
    b_hh = r(4 * H) if bias == "both" else None
    return [r(T, batch, D), r(batch, H), r(batch, H), r(4 * H, D), r(4 * H, H), b_ih, b_hh]


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("bias", ["both", "one", "none"])
def test_torch_path_matches_the_loop(monkeypatch: pytest.MonkeyPatch, reverse: bool,
                                     bias: str) -> None:
    monkeypatch.setattr(_route, "capability", lambda: "AVX2")  # the AVX2 inference rule
    args = _inputs(bias)
    with torch.no_grad():
        assert prefers_torch_lstm(args[0], args[4], None, *args)
        fast = K.lstm(*args, reverse=reverse)
        slow = K.lstm(*args, reverse=reverse, backend="loop")
    for a, b in zip(fast, slow):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("reverse", [False, True])
def test_training_on_torch_gives_the_loops_gradients(monkeypatch: pytest.MonkeyPatch,
                                                     reverse: bool) -> None:
    """LSTM training sent to torch's kernel (by a rule, as an earlier AVX-512 one did from
    B x H = 16384, or by a measurement): values and gradients equal the autograd loop's
    (float32: 1e-5 for values, 1e-4 for the summed gradients)."""
    monkeypatch.setattr(_route, "capability", lambda: "AVX512")
    monkeypatch.setitem(_route.RULES, ("AVX512", "lstm", True), _route.Rule(16384))
    used = []
    real = _route.torch_recurrence
    monkeypatch.setattr(K, "_torch_recurrence", lambda f, *a: used.append(f) or real(f, *a))
    results = []
    for backend in ("auto", "loop"):
        args = [a.clone().requires_grad_() if a is not None else None for a in _inputs("both")]
        out = K.lstm(*args, reverse=reverse, backend=backend)
        sum((o * o).sum() for o in out).backward()
        results.append((out, [a.grad for a in args if a is not None]))
    assert used == [torch._VF.lstm]
    (fast, fast_grads), (slow, slow_grads) = results
    for a, b in zip(fast, slow):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    for a, b in zip(fast_grads, slow_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_training_masks_small_sizes_and_float64_stay_on_rnnkit_kernels(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_route, "capability", lambda: "AVX2")  # the sizes of the AVX2 rule
    args = _inputs("both")
    x, h0, c0, w_ih, w_hh, *_ = args
    weight = w_ih.clone().requires_grad_()
    assert not prefers_torch_lstm(x, w_hh, None, h0, c0, weight)  # a gradient to compute
    with torch.no_grad():
        assert prefers_torch_lstm(x, w_hh, None, weight)  # no_grad: inference
        assert not prefers_torch_lstm(x, w_hh, torch.ones(T, B, dtype=torch.bool))
        assert not prefers_torch_lstm(x[:, :32], w_hh, None)  # 32 x 256 < 16384
        assert not prefers_torch_lstm(x.double(), w_hh.double(), None)

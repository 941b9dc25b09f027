"""The decision of _kernels/_route.py (no timing asserted): which calls are candidates for
PyTorch's kernel at all, the rule per vector unit, the opt-in measurement and its cache per
shape class, calibrate() up front, and that "auto" follows the decision."""

from __future__ import annotations

import time

import pytest
import torch

from rnnkit import _kernels as K
from rnnkit._kernels import _route


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(_route.ENV_POLICY, raising=False)
    _route.set_policy(None)
    _route._forget_measurements()
    yield
    _route.set_policy(None)
    _route._forget_measurements()


def _lstm_args(steps: int, batch: int, features: int, hidden: int,
               dtype: torch.dtype = torch.float32) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)

    def r(*shape: int) -> torch.Tensor:
        return ((torch.rand(*shape, generator=g) - 0.5) * 0.2).to(dtype)

    return [r(steps, batch, features), r(batch, hidden), r(batch, hidden),
            r(4 * hidden, features), r(4 * hidden, hidden), r(4 * hidden), r(4 * hidden)]


@pytest.mark.parametrize("cap", ["AVX2", "AVX512"])
def test_rule_per_vector_unit(monkeypatch: pytest.MonkeyPatch, cap: str) -> None:
    """AVX2: LSTM inference from B x H = 16384 only (bench/results-full.json). AVX-512: never
    (rnnkit's LSTM measured faster than oneDNN's on every row, inference and training). GRU
    and RNN, never."""
    monkeypatch.setattr(_route, "capability", lambda: cap)
    avx2 = cap == "AVX2"
    assert _route.rule("lstm", False, 64, 256) is avx2    # medium
    assert _route.rule("lstm", False, 128, 512) is avx2   # large
    assert not _route.rule("lstm", False, 16, 128)        # long
    assert not _route.rule("lstm", False, 32, 64)         # small
    assert not _route.rule("lstm", False, 6, 10)          # tiny
    assert not _route.rule("gru", False, 64, 256)        # torch's GRU is no oneDNN kernel
    assert not _route.rule("lstm", True, 64, 256)         # medium training: rnnkit
    assert not _route.rule("lstm", True, 128, 512)        # large training
    assert not _route.rule("lstm", True, 16, 128)         # long training stays on rnnkit
    assert not _route.rule("lstm", True, 32, 64)          # small
    for cell in ("gru", "rnn_tanh", "rnn_relu"):
        assert not _route.rule(cell, True, 128, 512)      # training stays on rnnkit
    assert not _route.rule("rnn_tanh", False, 128, 512)


def test_unknown_capability_is_ruled_as_avx2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "DEFAULT")
    assert _route.capability() == "AVX2"
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    assert _route.capability() == "AVX512"


def test_only_dense_float32_cpu_calls_are_candidates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_route, "rule", lambda *args, **kwargs: True)  # would say torch
    x, h0, c0, w_ih, w_hh, b_ih, b_hh = _lstm_args(3, 64, 2, 256)
    with torch.no_grad():
        assert _route.prefers_torch("lstm", x, w_hh, None, h0, c0, w_ih, w_hh)
        assert not _route.prefers_torch("lstm", x, w_hh, torch.ones(3, 64, dtype=torch.bool))
        assert not _route.prefers_torch("lstm", x.double(), w_hh.double(), None)
        assert not _route.prefers_torch("lstm", x[:0], w_hh, None)  # no steps
        assert not _route.prefers_torch("lstm", x[:, :0], w_hh, None)  # empty batch


def test_training_is_told_from_inference(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    monkeypatch.setattr(_route, "rule", lambda cell, training, *a, **k: seen.append(training))
    x, h0, c0, w_ih, w_hh, *_ = _lstm_args(3, 4, 2, 8)
    weight = w_ih.clone().requires_grad_()
    _route.prefers_torch("lstm", x, w_hh, None, h0, c0, weight)
    with torch.no_grad():
        _route.prefers_torch("lstm", x, w_hh, None, h0, c0, weight)
    _route.prefers_torch("lstm", x, w_hh, None, h0, c0, w_ih)
    assert seen == [True, False, False]


def _fake_contenders(monkeypatch: pytest.MonkeyPatch, ours_s: float, theirs_s: float) -> list:
    built = []

    def contenders(cell, training, steps, batch, features, hidden):
        built.append((cell, training, steps, batch, features, hidden))
        return (lambda: time.sleep(ours_s)), (lambda: time.sleep(theirs_s))

    monkeypatch.setattr(_route, "_contenders", contenders)
    return built


@pytest.mark.parametrize("torch_faster", [True, False])
def test_measure_policy_times_once_per_shape_class(monkeypatch: pytest.MonkeyPatch,
                                                   torch_faster: bool) -> None:
    fast, slow = 0.0, 0.01
    built = _fake_contenders(monkeypatch, slow if torch_faster else fast,
                             fast if torch_faster else slow)
    monkeypatch.setenv(_route.ENV_POLICY, "measure")
    x, h0, c0, w_ih, w_hh, *_ = _lstm_args(40, 24, 3, 16)
    with torch.no_grad():
        assert _route.prefers_torch("lstm", x, w_hh, None) is torch_faster
        # same class: batch 24 -> 32, features 3 -> 4, steps capped at 16
        assert _route.prefers_torch("lstm", x[:30, :20], w_hh, None) is torch_faster
        assert built == [("lstm", False, 16, 24, 3, 16)]  # measured at most 16 steps
        _route.prefers_torch("lstm", x[:, :8], w_hh, None)  # batch 8: another class
        assert len(built) == 2
    _route.set_policy("rule")  # measurements made are kept, no new ones
    with torch.no_grad():
        assert _route.prefers_torch("lstm", x, w_hh, None) is torch_faster
        _route.prefers_torch("lstm", x[:, :2], w_hh, None)
    assert len(built) == 2


def test_rule_policy_never_measures(monkeypatch: pytest.MonkeyPatch) -> None:
    built = _fake_contenders(monkeypatch, 0.0, 0.0)
    x, h0, c0, w_ih, w_hh, *_ = _lstm_args(5, 4, 3, 16)
    with torch.no_grad():
        _route.prefers_torch("lstm", x, w_hh, None)
    assert built == []


def test_calibrate_measures_up_front_and_checks_its_arguments(
        monkeypatch: pytest.MonkeyPatch) -> None:
    built = _fake_contenders(monkeypatch, 0.01, 0.0)
    assert _route.calibrate("gru", 100, 32, 8, 64) is True
    assert built == [("gru", False, 16, 32, 8, 64)]
    x = torch.zeros(100, 32, 8)
    with torch.no_grad():  # the calibrated answer, not the rule (GRU at 32 x 64: rnnkit)
        assert _route.prefers_torch("gru", x, torch.zeros(192, 64), None)
    with pytest.raises(ValueError, match="cell must be one of"):
        _route.calibrate("lstmx", 1, 1, 1, 1)
    with pytest.raises(ValueError, match="hidden must be >= 1"):
        _route.calibrate("lstm", 1, 1, 1, 0)


def test_policy_values_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="dispatch policy must be one of"):
        _route.set_policy("fast")
    monkeypatch.setenv(_route.ENV_POLICY, "sometimes")
    x, *_, w_hh, _, _ = _lstm_args(2, 2, 2, 4)
    with torch.no_grad(), pytest.raises(ValueError, match="RNNKIT_DISPATCH must be one of"):
        _route.prefers_torch("lstm", x, w_hh, None)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh", "rnn_relu"])
@pytest.mark.parametrize("training", [False, True])
def test_real_measurement_runs_both_kernels(cell: str, training: bool) -> None:
    """The real contenders (rnnkit's compiled kernel and torch._VF's) run on a small shape and
    an answer is cached; which one wins is the machine's business."""
    pytest.importorskip("torch")
    if not K._compiled.available():
        pytest.skip("compiled kernels unavailable")
    answer = _route.calibrate(cell, 3, 2, 3, 5, training=training)
    assert isinstance(answer, bool)
    assert list(_route._measured.values()) == [answer]


def test_auto_lstm_follows_the_decision(monkeypatch: pytest.MonkeyPatch) -> None:
    """backend="auto" sends the call to torch._VF exactly when the decision says so."""
    if not K._compiled.available():
        pytest.skip("compiled kernels unavailable")
    calls = []
    real = _route.torch_recurrence

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(K, "_torch_recurrence", spy)
    args = _lstm_args(4, 3, 2, 8)
    for answer in (True, False):
        monkeypatch.setattr(_route, "rule", lambda *a, answer=answer, **k: answer)
        with torch.no_grad():
            fast = K.lstm(*args)
            slow = K.lstm(*args, backend="loop")
        for a, b in zip(fast, slow):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)  # float32
    assert calls == [1]


@pytest.mark.parametrize("nonlinearity", [None, "tanh", "relu"])
def test_auto_gru_and_rnn_follow_the_decision(monkeypatch: pytest.MonkeyPatch,
                                              nonlinearity: str | None) -> None:
    if not K._compiled.available():
        pytest.skip("compiled kernels unavailable")
    cells = []
    real = _route.torch_recurrence
    monkeypatch.setattr(K, "_torch_recurrence", lambda f, *a: cells.append(f) or real(f, *a))
    gates = 3 if nonlinearity is None else 1
    g = torch.Generator().manual_seed(0)
    args = [(torch.rand(*s, generator=g) - 0.5) * 0.2
            for s in ((4, 3, 2), (3, 8), (gates * 8, 2), (gates * 8, 8), (gates * 8,), (gates * 8,))]
    kw = {} if nonlinearity is None else {"nonlinearity": nonlinearity}
    fn = K.gru if nonlinearity is None else K.rnn
    # no rule sends these cells to torch today; pretend one does
    monkeypatch.setattr(_route, "_RULED", frozenset({"rnn", "gru", "lstm"}))
    for answer in (True, False):
        monkeypatch.setattr(_route, "rule", lambda *a, answer=answer, **k: answer)
        with torch.no_grad():
            fast, slow = fn(*args, **kw), fn(*args, backend="loop", **kw)
        for a, b in zip(fast, slow):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)  # float32
    name = "gru" if nonlinearity is None else f"rnn_{nonlinearity}"
    assert cells == [getattr(torch._VF, name)]

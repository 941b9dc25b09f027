"""Optimizers against hand-written Keras 3 update formulas (float32 NumPy), a few steps each.

Tolerance: rtol 1e-6, atol 1e-7 (same float32 arithmetic, possibly different rounding order).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit.training import optimizers

TOL = {"rtol": 1e-6, "atol": 1e-7}
f32 = np.float32


def _run(optimizer, start, grads):
    param = torch.nn.Parameter(torch.tensor(start))
    optimizer.build([param])
    for g in grads:
        param.grad = torch.tensor(g)
        optimizer.step()
    return param.detach().numpy()


@pytest.fixture
def problem():
    rng = np.random.default_rng(1)
    start = rng.normal(size=(3, 4)).astype(np.float32)
    grads = [rng.normal(size=(3, 4)).astype(np.float32) for _ in range(5)]
    return start, grads


def test_sgd_plain_momentum_nesterov(problem):
    start, grads = problem
    lr, mu = f32(0.05), f32(0.9)
    w, m, wn, mn, wp = start.copy(), np.zeros_like(start), start.copy(), np.zeros_like(start), \
        start.copy()
    for g in grads:
        wp = wp - g * lr
        m = m * mu - g * lr
        w = w + m
        mn = mn * mu - g * lr
        wn = wn + (mn * mu - g * lr)
    np.testing.assert_allclose(_run(optimizers.SGD(0.05), start, grads), wp, **TOL)
    np.testing.assert_allclose(_run(optimizers.SGD(0.05, momentum=0.9), start, grads), w, **TOL)
    np.testing.assert_allclose(
        _run(optimizers.SGD(0.05, momentum=0.9, nesterov=True), start, grads), wn, **TOL)


def test_rmsprop_formulas(problem):
    start, grads = problem
    lr, rho, eps, mu = f32(0.01), f32(0.9), f32(1e-7), f32(0.5)
    plain, centered, moment = start.copy(), start.copy(), start.copy()
    v1, v2, a2, v3, m3 = (np.zeros_like(start) for _ in range(5))
    for g in grads:
        v1 = rho * v1 + f32(1 - 0.9) * g * g
        plain = plain - (lr * g) / np.sqrt(v1 + eps)
        v2 = rho * v2 + f32(1 - 0.9) * g * g
        a2 = rho * a2 + f32(1 - 0.9) * g
        centered = centered - (lr * g) / np.sqrt(v2 - a2 * a2 + eps)
        v3 = rho * v3 + f32(1 - 0.9) * g * g
        m3 = mu * m3 + (lr * g) / np.sqrt(v3 + eps)
        moment = moment - m3
    np.testing.assert_allclose(_run(optimizers.RMSprop(0.01), start, grads), plain, **TOL)
    np.testing.assert_allclose(
        _run(optimizers.RMSprop(0.01, centered=True), start, grads), centered, **TOL)
    np.testing.assert_allclose(
        _run(optimizers.RMSprop(0.01, momentum=0.5), start, grads), moment, **TOL)


def test_rmsprop_keras_docstring_example():
    # keras.optimizers.RMSprop(learning_rate=0.1) on loss var**2 / 2 from 10.0 -> 9.683772
    var = torch.nn.Parameter(torch.tensor([10.0]))
    opt = optimizers.RMSprop(learning_rate=0.1)
    opt.build([var])
    var.grad = var.detach().clone()
    opt.step()
    assert float(var.detach()) == pytest.approx(9.683772, abs=1e-6)


def _np_adam(start, grads, lr=0.001, b1=0.9, b2=0.999, eps=1e-7, amsgrad=False, wd=None):
    w, m, v, vh = start.copy(), np.zeros_like(start), np.zeros_like(start), np.zeros_like(start)
    for t, g in enumerate(grads, start=1):
        if wd:
            w = w - w * f32(wd) * f32(lr)
        alpha = f32(lr) * np.sqrt(f32(1) - f32(b2) ** f32(t)) / (f32(1) - f32(b1) ** f32(t))
        m = m + (g - m) * f32(1 - b1)
        v = v + (g * g - v) * f32(1 - b2)
        vh = np.maximum(vh, v)
        w = w - (m * alpha) / (np.sqrt(vh if amsgrad else v) + f32(eps))
    return w


def test_adam_keras_formula(problem):
    start, grads = problem
    np.testing.assert_allclose(_run(optimizers.Adam(), start, grads),
                               _np_adam(start, grads), **TOL)
    np.testing.assert_allclose(_run(optimizers.Adam(0.01, amsgrad=True), start, grads),
                               _np_adam(start, grads, lr=0.01, amsgrad=True), **TOL)


def test_adam_epsilon_is_keras_epsilon_hat_not_torch():
    # With tiny gradients the placement of epsilon matters: Keras adds it to sqrt(v) after
    # folding the bias correction into the step; torch.optim.Adam adds it to sqrt(v_hat).
    start, grads = np.ones(3, np.float32), [np.full(3, 1e-6, np.float32)]
    ours = _run(optimizers.Adam(), start, grads)
    np.testing.assert_allclose(ours, _np_adam(start, grads), **TOL)
    param = torch.nn.Parameter(torch.ones(3))
    torch_adam = torch.optim.Adam([param], lr=0.001, eps=1e-7)
    param.grad = torch.full((3,), 1e-6)
    torch_adam.step()
    assert abs(float(param.detach()[0]) - float(ours[0])) > 1e-5


def test_adamw_decoupled_weight_decay(problem):
    start, grads = problem
    opt = optimizers.get("adamw")
    assert (opt.learning_rate, opt.weight_decay) == (pytest.approx(0.001), 0.004)
    np.testing.assert_allclose(_run(opt, start, grads),
                               _np_adam(start, grads, wd=0.004), **TOL)
    decayed = _run(optimizers.SGD(0.1, weight_decay=0.5), start, [np.zeros_like(start)])
    np.testing.assert_allclose(decayed, start - start * f32(0.5) * f32(0.1), **TOL)


def test_keras_defaults_by_name():
    adam = optimizers.get("Adam")
    assert (adam.learning_rate, adam.beta_1, adam.beta_2, adam.epsilon) == (
        pytest.approx(0.001), 0.9, 0.999, 1e-7)
    sgd = optimizers.get("sgd")
    assert (sgd.learning_rate, sgd.momentum, sgd.nesterov) == (pytest.approx(0.01), 0.0, False)
    rms = optimizers.get("RMSprop")
    assert (rms.learning_rate, rms.rho, rms.momentum, rms.epsilon, rms.centered) == (
        pytest.approx(0.001), 0.9, 0.0, 1e-7, False)
    with pytest.raises(ValueError, match="Unknown optimizer 'adamm'"):
        optimizers.get("adamm")
    with pytest.raises(TypeError, match="Could not interpret optimizer"):
        optimizers.get(0.1)


def test_clipping():
    g = np.array([3.0, 4.0], np.float32)  # norm 5
    out = _run(optimizers.SGD(1.0, clipnorm=1.0), np.zeros(2, np.float32), [g])
    np.testing.assert_allclose(out, -g / 5, **TOL)
    out = _run(optimizers.SGD(1.0, clipvalue=3.5), np.zeros(2, np.float32), [g])
    np.testing.assert_allclose(out, [-3.0, -3.5], **TOL)
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(1))
    opt = optimizers.SGD(1.0, global_clipnorm=2.5)
    opt.build([a, b])
    a.grad, b.grad = torch.tensor([3.0, 0.0]), torch.tensor([4.0])  # global norm 5
    opt.step()
    np.testing.assert_allclose(a.detach().numpy(), [-1.5, 0.0], **TOL)
    np.testing.assert_allclose(b.detach().numpy(), [-2.0], **TOL)
    with pytest.raises(ValueError, match="at most one"):
        optimizers.SGD(clipnorm=1.0, clipvalue=1.0)


def test_parameters_without_gradient_are_skipped():
    a, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    opt = optimizers.Adam(0.1)
    opt.build([a, b])
    a.grad = torch.ones(2)
    opt.step()
    assert torch.equal(b.detach(), torch.ones(2))
    assert float(a.detach()[0]) < 1.0 and opt.iterations == 1


def test_learning_rate_is_float32_and_settable():
    opt = optimizers.Adam(learning_rate=0.1)
    assert opt.learning_rate == float(np.float32(0.1))
    opt.learning_rate = 0.01
    assert opt.learning_rate == float(np.float32(0.01))
    with pytest.raises(ValueError, match="learning_rate"):
        opt.learning_rate = -1.0


def test_torch_optimizer_class_and_instance():
    param = torch.nn.Parameter(torch.ones(2))
    wrapped = optimizers.get(torch.optim.SGD)
    assert isinstance(wrapped, optimizers.TorchOptimizer) and not wrapped.built
    wrapped.learning_rate = 0.5
    wrapped.build([param])
    param.grad = torch.ones(2)
    wrapped.step()
    np.testing.assert_allclose(param.detach().numpy(), [0.5, 0.5])
    instance = torch.optim.Adam([param], lr=0.01)
    wrapped = optimizers.get(instance)
    assert wrapped.built and wrapped.learning_rate == pytest.approx(0.01)
    wrapped.learning_rate = 0.02
    assert instance.param_groups[0]["lr"] == 0.02
    config = optimizers.serialize(wrapped)
    assert config["class_name"] == "torch.optim.Adam" and config["config"]["lr"] == 0.02
    rebuilt = optimizers.deserialize(config)
    assert isinstance(rebuilt, optimizers.TorchOptimizer) and rebuilt.learning_rate == 0.02


def test_state_round_trip_and_rebinding():
    start, grads = np.ones(3, np.float32), [np.full(3, 0.5, np.float32)] * 2
    param = torch.nn.Parameter(torch.tensor(start))
    opt = optimizers.Adam(0.1)
    opt.build([param])
    param.grad = torch.tensor(grads[0])
    opt.step()
    other_param = torch.nn.Parameter(param.detach().clone())
    other = optimizers.deserialize(optimizers.serialize(opt))
    other.build([other_param])
    other.load_state_tensors(opt.state_tensors())
    for p, o in ((param, opt), (other_param, other)):
        p.grad = torch.tensor(grads[1])
        o.step()
    np.testing.assert_array_equal(param.detach().numpy(), other_param.detach().numpy())
    with pytest.raises(ValueError, match="already bound to other parameters"):
        opt.build([torch.nn.Parameter(torch.ones(3))])
    assert optimizers.get("sgd").variables[0].dtype == torch.int64


def test_bad_hyper_parameters():
    with pytest.raises(ValueError, match="beta_1"):
        optimizers.Adam(beta_1=1.0)
    with pytest.raises(ValueError, match="momentum"):
        optimizers.SGD(momentum=-0.1)
    with pytest.raises(ValueError, match="weight_decay"):
        optimizers.AdamW(weight_decay=None)
    with pytest.raises(ValueError, match="not bound"):
        optimizers.SGD().step()


# -- torch.optim citizenship ---------------------------------------------------------------------
def test_rnnkit_optimizers_are_torch_optimizers_with_keras_names():
    param = torch.nn.Parameter(torch.ones(3))
    opt = optimizers.Adam(learning_rate=0.01, beta_1=0.8)
    assert isinstance(opt, torch.optim.Optimizer) and not opt.built
    opt.build([param])
    group = opt.param_groups[0]
    assert group["params"] == [param] and group["lr"] == float(f32(0.01))
    assert group["beta_1"] == 0.8 and group["epsilon"] == 1e-7 and opt.beta_1 == 0.8
    torch_style = optimizers.Adam([param], lr=0.01, beta_1=0.8)  # torch's way: params first
    assert torch_style.built and torch_style.param_groups[0]["lr"] == group["lr"]


def test_step_lr_on_rnnkit_adam_changes_the_step_size():
    start, grads = np.ones(4, np.float32), [np.full(4, 0.5, np.float32)] * 4
    param = torch.nn.Parameter(torch.tensor(start))
    opt = optimizers.Adam([param], lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.1)
    rates = []
    for g in grads:
        rates.append(opt.learning_rate)
        param.grad = torch.tensor(g)
        opt.step()
        scheduler.step()
    np.testing.assert_allclose(rates, [f32(0.1), f32(0.1), f32(0.01), f32(0.01)], rtol=1e-6)
    # Keras' Adam with the rate read from the group at each step
    w, m, v = start.copy(), np.zeros(4, np.float32), np.zeros(4, np.float32)
    for t, (g, lr) in enumerate(zip(grads, rates), start=1):
        alpha = f32(lr) * np.sqrt(f32(1) - f32(0.999) ** t) / (f32(1) - f32(0.9) ** t)
        m = m + (g - m) * f32(1 - 0.9)
        v = v + (g * g - v) * f32(1 - 0.999)
        w = w - m * alpha / (np.sqrt(v) + f32(1e-7))
    np.testing.assert_allclose(param.detach().numpy(), w, **TOL)


def test_param_groups_have_their_own_learning_rate():
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    opt = optimizers.SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
    a.grad, b.grad = torch.ones(2), torch.ones(2)
    opt.step()
    np.testing.assert_allclose(a.detach().numpy(), [-0.1, -0.1], **TOL)
    np.testing.assert_allclose(b.detach().numpy(), [-0.5, -0.5], **TOL)


@pytest.mark.parametrize("make", [
    lambda: optimizers.Adam(0.05, amsgrad=True),
    lambda: optimizers.RMSprop(0.05, momentum=0.5, centered=True),
    lambda: optimizers.SGD(0.05, momentum=0.9, nesterov=True),
])
def test_state_dict_round_trip_resumes_exactly(make):
    rng = np.random.default_rng(3)
    grads = [rng.normal(size=(3,)).astype(np.float32) for _ in range(6)]
    start = rng.normal(size=(3,)).astype(np.float32)
    straight = torch.nn.Parameter(torch.tensor(start))
    opt = make()
    opt.build([straight])
    for g in grads:
        straight.grad = torch.tensor(g)
        opt.step()
    resumed = torch.nn.Parameter(torch.tensor(start))
    first = make()
    first.build([resumed])
    for g in grads[:3]:
        resumed.grad = torch.tensor(g)
        first.step()
    saved = first.state_dict()
    assert saved["iterations"] == 3 and saved["state"]
    second = make()
    second.build([resumed])
    second.load_state_dict(saved)
    assert second.iterations == 3
    for g in grads[3:]:
        resumed.grad = torch.tensor(g)
        second.step()
    np.testing.assert_array_equal(resumed.detach().numpy(), straight.detach().numpy())


def test_torch_optimizer_state_is_saved_in_full():
    param = torch.nn.Parameter(torch.ones(3))
    wrapped = optimizers.get(torch.optim.Adam([param], lr=0.1))
    param.grad = torch.full((3,), 0.5)
    wrapped.step()
    tensors = wrapped.state_tensors()
    assert {"iterations", "0/exp_avg", "0/exp_avg_sq", "0/step"} <= set(tensors)
    other_param = torch.nn.Parameter(param.detach().clone())
    other = optimizers.get(torch.optim.Adam([other_param], lr=0.1))
    other.load_state_tensors(tensors)
    assert other.iterations == 1
    for p, o in ((param, wrapped), (other_param, other)):
        p.grad = torch.full((3,), -0.25)
        o.step()
    np.testing.assert_array_equal(param.detach().numpy(), other_param.detach().numpy())


def test_closure_and_zero_grad_follow_torch():
    param = torch.nn.Parameter(torch.ones(2))
    opt = optimizers.SGD([param], lr=0.5)

    def closure():
        opt.zero_grad()
        loss = (param ** 2).sum()
        loss.backward()
        return loss

    assert float(opt.step(closure).detach()) == 2.0
    np.testing.assert_allclose(param.detach().numpy(), [0.0, 0.0], **TOL)
    opt.zero_grad()
    assert param.grad is None

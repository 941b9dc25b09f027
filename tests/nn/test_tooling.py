"""rnnkit.nn modules under the torch.nn tools that look inside a module: parametrizations,
pruning, weight-drop, ``_flat_weights``, pickling and copying, ``state_dict`` strictness, class
checks, ``quantize_dynamic``.

The oracle for each reparametrized module is a ``torch.nn`` module holding the weights the
reparametrization computes: rnnkit must use exactly those (float64, tight), and a training step
must move the underlying parameters.
"""

from __future__ import annotations

import copy
import io
import pickle
import warnings

import pytest
import torch
from torch.nn.utils import parametrizations, prune

import rnnkit.nn as rnn

TOL = dict(rtol=1e-10, atol=1e-12)  # float64 throughout
NAMES = ["RNN", "GRU", "LSTM"]


def _module(name: str, **kwargs) -> torch.nn.Module:
    return getattr(rnn, name)(3, 4, num_layers=2, bidirectional=True, dtype=torch.float64, **kwargs)


def _outputs(result) -> list[torch.Tensor]:
    out, state = result
    return [out, *(state if isinstance(state, tuple) else (state,))]


def _torch_twin(module: torch.nn.Module, name: str) -> torch.nn.Module:
    """A torch.nn module holding the weights ``module`` computes right now (parametrized,
    pruned or assigned), as plain parameters."""
    twin = getattr(torch.nn, name)(3, 4, num_layers=2, bidirectional=True, dtype=torch.float64)
    with torch.no_grad():
        for weight_name in twin._flat_weights_names:
            getattr(twin, weight_name).copy_(getattr(module, weight_name))
    return twin


def _check_against_twin(module: torch.nn.Module, name: str) -> None:
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    twin = _torch_twin(module, name)
    for a, b in zip(_outputs(module(x)), _outputs(twin(x))):
        torch.testing.assert_close(a, b, **TOL)


def _training_step(module: torch.nn.Module, parameter: torch.Tensor) -> None:
    """One SGD step on a loss of the module's output moves ``parameter`` (the tensor under the
    reparametrization) and lowers the loss."""
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    optimizer = torch.optim.SGD(module.parameters(), lr=0.01)
    before = parameter.detach().clone()
    losses = []
    for _ in range(2):
        optimizer.zero_grad()
        loss = sum((o * o).sum() for o in _outputs(module(x)))
        loss.backward()
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0
        optimizer.step()
        losses.append(loss.item())
    assert not torch.equal(parameter.detach(), before)
    assert losses[1] < losses[0]


@pytest.mark.parametrize("name", NAMES)
def test_weight_norm(name: str) -> None:
    module = _module(name)
    parametrizations.weight_norm(module, "weight_hh_l1_reverse")
    with torch.no_grad():  # g != ||v||, so the parametrized weight differs from the raw one
        module.parametrizations.weight_hh_l1_reverse.original0.mul_(2.5)
    _check_against_twin(module, name)
    _training_step(module, module.parametrizations.weight_hh_l1_reverse.original0)


@pytest.mark.parametrize("name", NAMES)
def test_spectral_norm_and_orthogonal(name: str) -> None:
    module = _module(name)
    parametrizations.spectral_norm(module, "weight_ih_l0")
    parametrizations.orthogonal(module, "weight_hh_l0")
    module.eval()  # spectral_norm's power iteration runs in training mode only: fixed weights
    _check_against_twin(module, name)
    module.train()
    _training_step(module, module.parametrizations.weight_ih_l0.original)


@pytest.mark.parametrize("name", NAMES)
def test_prune(name: str) -> None:
    module = _module(name)
    prune.l1_unstructured(module, "weight_hh_l0", amount=0.5)
    assert (module.weight_hh_l0 == 0).sum() > 0
    _check_against_twin(module, name)
    _training_step(module, module.weight_hh_l0_orig)
    # pruned entries get no gradient: the mask multiplies them out of the forward pass
    module.zero_grad()
    sum(o.sum() for o in _outputs(module(torch.randn(5, 2, 3, dtype=torch.float64)))).backward()
    assert (module.weight_hh_l0_orig.grad[module.weight_hh_l0_mask == 0] == 0).all()


@pytest.mark.parametrize("name", NAMES)
def test_weight_drop(name: str) -> None:
    """AWD-LSTM's weight-drop: the parameter lives under another name and a plain tensor computed
    from it (dropout on the recurrent matrix) is assigned before every forward pass."""
    module = _module(name)
    raw = module.weight_hh_l0
    del module.weight_hh_l0
    module.register_parameter("weight_hh_l0_raw", raw)

    def drop(mod, args):  # forward pre-hook; "* 1.0": a plain tensor, never the Parameter itself
        mod.weight_hh_l0 = torch.nn.functional.dropout(mod.weight_hh_l0_raw * 1.0, 0.5, mod.training)

    module.register_forward_pre_hook(drop)
    module.eval()
    module.weight_hh_l0 = raw * 1.0
    assert "weight_hh_l0" not in dict(module.named_parameters())
    _check_against_twin(module, name)
    torch.manual_seed(1)
    module.train()
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    first = module(x)[0]
    assert not torch.equal(first, module(x)[0])  # a fresh dropout mask each call
    _training_step(module, module.weight_hh_l0_raw)


@pytest.mark.parametrize("name", NAMES)
def test_flat_weights_behave_as_torch_nn(name: str) -> None:
    module = _module(name)
    reference = getattr(torch.nn, name)(3, 4, num_layers=2, bidirectional=True)
    assert module._flat_weights_names == reference._flat_weights_names
    assert module._all_weights == reference._all_weights
    assert all(a is getattr(module, n) for a, n in zip(module._flat_weights, module._flat_weights_names))
    replacement = torch.nn.Parameter(torch.zeros(4 * 0 + module.weight_hh_l0.shape[0], 4,
                                                 dtype=torch.float64))
    module.weight_hh_l0 = replacement
    assert module._flat_weights[1] is replacement
    module.float()
    assert all(w.dtype == torch.float32 for w in module._flat_weights)
    assert [[w.shape for w in layer] for layer in module.all_weights] == \
        [[w.shape for w in layer] for layer in reference.all_weights]
    module.flatten_parameters()  # a no-op on the CPU, as in torch.nn
    # a parametrization replaces the tensor forward reads: _flat_weights follows after a call
    parametrizations.weight_norm(module, "weight_ih_l0")
    module(torch.randn(5, 2, 3))
    assert torch.equal(module._flat_weights[0], module.weight_ih_l0)


@pytest.mark.parametrize("name", NAMES)
def test_pickle_deepcopy_and_torch_save(name: str) -> None:
    module = _module(name, backend="loop")
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    expected = _outputs(module(x))
    buffer = io.BytesIO()
    torch.save(module, buffer)
    buffer.seek(0)
    copies = [copy.deepcopy(module), pickle.loads(pickle.dumps(module)),
              torch.load(buffer, weights_only=False)]
    for clone in copies:
        assert type(clone) is type(module) and clone.backend == "loop"
        assert clone._flat_weights[0] is clone.weight_ih_l0  # not the original's tensors
        for a, b in zip(_outputs(clone(x)), expected):
            torch.testing.assert_close(a, b, **TOL)


@pytest.mark.parametrize("name", NAMES)
def test_load_state_dict_is_strict(name: str) -> None:
    module = _module(name)
    state = module.state_dict()
    getattr(torch.nn, name)(3, 4, num_layers=2, bidirectional=True).load_state_dict(state)
    missing = {k: v for k, v in state.items() if k != "bias_hh_l1"}
    with pytest.raises(RuntimeError, match='Missing key\\(s\\) in state_dict: "bias_hh_l1"'):
        module.load_state_dict(missing)
    with pytest.raises(RuntimeError, match='Unexpected key\\(s\\) in state_dict: "extra"'):
        module.load_state_dict({**state, "extra": torch.zeros(1)})
    with pytest.raises(RuntimeError, match="size mismatch for weight_ih_l0"):
        module.load_state_dict({**state, "weight_ih_l0": torch.zeros(1, 1)})
    result = module.load_state_dict(missing, strict=False)
    assert result.missing_keys == ["bias_hh_l1"]


def test_class_hierarchy() -> None:
    """Modules are torch.nn.RNNBase (not torch.nn.LSTM: torch.compile refuses to trace those, see
    the README); cells are torch.nn's cells."""
    for name in NAMES:
        module = getattr(rnn, name)(3, 4)
        assert isinstance(module, torch.nn.RNNBase)
        assert not isinstance(module, (torch.nn.RNN, torch.nn.GRU, torch.nn.LSTM))
    for name in ("RNNCell", "GRUCell", "LSTMCell"):
        assert isinstance(getattr(rnn, name)(3, 4), getattr(torch.nn, name))


def test_quantize_dynamic_leaves_rnnkit_modules_and_quantizes_the_torch_copy() -> None:
    """What the README says: quantize_dynamic matches exact torch.nn types, so rnnkit modules stay
    as they are; a torch.nn module loaded with their state_dict quantizes."""
    quantization = pytest.importorskip("torch.ao.quantization")
    model = torch.nn.Sequential(rnn.LSTM(3, 4), rnn.LSTMCell(3, 4))
    twin = torch.nn.Sequential(torch.nn.LSTM(3, 4), torch.nn.LSTMCell(3, 4))
    twin.load_state_dict(model.state_dict())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization is deprecated in favour of torchao
        kept = quantization.quantize_dynamic(model, dtype=torch.qint8)
        quantized = quantization.quantize_dynamic(twin, dtype=torch.qint8)
    assert type(kept[0]) is rnn.LSTM and type(kept[1]) is rnn.LSTMCell
    assert type(quantized[0]).__module__.startswith("torch.ao.nn.quantized.dynamic")
    assert type(quantized[1]).__module__.startswith("torch.ao.nn.quantized.dynamic")


@pytest.mark.parametrize("name", [*NAMES, "LSTMCell"])
def test_fullgraph_compile_accepts_the_classes(name: str) -> None:
    """torch.compile refuses to trace any torch.nn.RNN/GRU/LSTM instance (allow_rnn is off by
    default), which is why the modules subclass RNNBase only. The pure-PyTorch loop backend traces
    in one graph; the default backend's kernels are issue 12's operator work."""
    kwargs = {} if name.endswith("Cell") else {"backend": "loop", "num_layers": 2}
    module = getattr(rnn, name)(3, 4, **kwargs)
    x = torch.randn(5, 2, 3) if not name.endswith("Cell") else torch.randn(2, 3)
    torch._dynamo.reset()
    compiled = torch.compile(module, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(x), module(x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_functional_call_uses_the_given_weights(name: str) -> None:
    """torch.func.functional_call swaps tensors in as attributes: forward must read those."""
    module = _module(name)
    other = _module(name)
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    swapped = torch.func.functional_call(module, dict(other.named_parameters()), (x,))
    for a, b in zip(_outputs(swapped), _outputs(other(x))):
        torch.testing.assert_close(a, b, **TOL)
    # afterwards the module computes with its own weights again
    for a, b in zip(_outputs(module(x)), _outputs(_torch_twin(module, name)(x))):
        torch.testing.assert_close(a, b, **TOL)


@pytest.mark.parametrize("name", [*NAMES, "RNNCell", "GRUCell", "LSTMCell"])
def test_autocast_returns_what_torch_nn_returns(name: str) -> None:
    """Under CPU bfloat16 autocast each output has torch.nn's dtype (bfloat16 for RNN and LSTM,
    float32 for GRU, as torch's autocast lists decide), values within bfloat16's tolerance
    (atol 1e-2, rtol 1.6e-2: a few units of its 2**-7 epsilon on outputs of size ~1)."""
    reference = getattr(torch.nn, name)(3, 4)
    ours = getattr(rnn, name)(3, 4)
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(5, 2, 3) if not name.endswith("Cell") else torch.randn(2, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected = torch.utils._pytree.tree_flatten(reference(x))[0]
        got = torch.utils._pytree.tree_flatten(ours(x))[0]
    assert [t.dtype for t in got] == [t.dtype for t in expected]
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, atol=1e-2, rtol=1.6e-2)

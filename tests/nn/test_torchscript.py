"""rnnkit.nn under torch.jit.script and torch.load(weights_only=True).

Scripting gives torch.nn's TorchScript module sharing the rnnkit module's parameters (see
rnnkit/nn/_torchscript.py): its values equal eager rnnkit's to float32 rounding (1e-6; the two
run different kernels), it survives torch.jit.save/load, and it follows later changes to the
shared parameters. torch.load reloads a whole saved model under an allowlist of torch.nn's
classes, as pytorch/examples' word_language_model does.
"""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
import torch

import rnnkit.nn as rnn

pytestmark = pytest.mark.filterwarnings(
    "ignore:`torch.jit.script` is deprecated:DeprecationWarning",
    "ignore:`torch.jit.save` is deprecated:DeprecationWarning",
    "ignore:`torch.jit.load` is deprecated:DeprecationWarning",
    # torch.nn's own kernel, which the scripted module runs, says so of proj_size
    "ignore:LSTM with projections is not supported with oneDNN:UserWarning")

TOL = dict(rtol=1e-6, atol=1e-6)
CASES = {
    "rnn-relu": (rnn.RNN, dict(nonlinearity="relu")),
    "rnn-stacked-no-bias": (rnn.RNN, dict(num_layers=2, bias=False)),
    "gru-bi-batch-first": (rnn.GRU, dict(bidirectional=True, batch_first=True)),
    "lstm-stacked-bi": (rnn.LSTM, dict(num_layers=2, bidirectional=True)),
    "lstm-proj": (rnn.LSTM, dict(proj_size=2, batch_first=True)),
}


class _Holder(torch.nn.Module):
    """A model holding a recurrent module, calling it the torch.nn way."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.rnn = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rnn(x)[0]


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_scripted_model_gives_eager_values_and_shares_the_parameters(case: str) -> None:
    cls, options = CASES[case]
    torch.manual_seed(0)
    module = cls(3, 4, **options).eval()
    x = torch.randn(2, 5, 3)
    with torch.no_grad():
        eager = module(x)[0]
    scripted = torch.jit.script(_Holder(module))
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), eager, **TOL)
        buffer = io.BytesIO()
        torch.jit.save(scripted, buffer)
        buffer.seek(0)
        torch.testing.assert_close(torch.jit.load(buffer)(x), eager, **TOL)
        module.weight_ih_l0.mul_(2)  # the scripted model holds the same parameter
        torch.testing.assert_close(scripted(x), cls.forward(module, x)[0], **TOL)
        assert not torch.allclose(scripted(x), eager, **TOL)


def test_scripting_the_module_itself_works_as_for_torch_nn() -> None:
    """torch.nn.LSTM scripted alone compiles its forward as overloads (forward__0 takes a
    tensor); the scripted rnnkit module is that same module, with rnnkit's parameters."""
    torch.manual_seed(0)
    module = rnn.LSTM(3, 4, num_layers=2)
    scripted = torch.jit.script(module)
    assert scripted.original_name == "LSTM"
    assert dict(scripted.named_parameters()).keys() == dict(module.named_parameters()).keys()
    assert all(a is b for a, b in zip(scripted.parameters(), module.parameters()))
    x = torch.randn(5, 2, 3)
    got, want = scripted.forward__0(x), module(x)
    for a, b in zip(torch.utils._pytree.tree_leaves(got), torch.utils._pytree.tree_leaves(want)):
        torch.testing.assert_close(a, b, **TOL)


@pytest.mark.parametrize("cell,options", [(rnn.RNNCell, dict(nonlinearity="relu")),
                                          (rnn.GRUCell, dict(bias=False)), (rnn.LSTMCell, {})])
def test_scripted_cells_give_eager_values(cell: type, options: dict) -> None:
    torch.manual_seed(0)
    module = cell(3, 4, **options)
    scripted = torch.jit.script(module)
    x = torch.randn(2, 3)
    got, want = scripted(x), module(x)
    for a, b in zip(torch.utils._pytree.tree_leaves(got), torch.utils._pytree.tree_leaves(want)):
        torch.testing.assert_close(a, b, **TOL)


def test_a_parametrized_weight_is_refused_naming_what_to_use() -> None:
    module = torch.nn.utils.parametrizations.weight_norm(rnn.GRU(3, 4), "weight_hh_l0")
    with pytest.raises(TypeError, match=r"weight_hh_l0 is not a plain parameter.*"
                                        r"torch.jit.trace, torch.compile or torch.export"):
        torch.jit.script(module)


class RNNModel(torch.nn.Module):
    """word_language_model's RNNModel (model.py), its recurrent module an rnnkit one."""

    def __init__(self, rnn_type: str, ntoken: int, ninp: int, nhid: int, nlayers: int,
                 dropout: float = 0.5) -> None:
        super().__init__()
        self.drop = torch.nn.Dropout(dropout)
        self.encoder = torch.nn.Embedding(ntoken, ninp)
        self.rnn = getattr(rnn, rnn_type)(ninp, nhid, nlayers, dropout=dropout)
        self.decoder = torch.nn.Linear(nhid, ntoken)

    def forward(self, input: torch.Tensor, hidden: object) -> tuple[torch.Tensor, object]:
        output, hidden = self.rnn(self.drop(self.encoder(input)), hidden)
        return self.decoder(self.drop(output)), hidden


@pytest.mark.parametrize("rnn_type", ["LSTM", "GRU", "RNN"])
def test_word_language_model_reloads_a_saved_rnnkit_model(rnn_type: str) -> None:
    """main.py: torch.save(model, f), then torch.load(f) (weights_only, torch's default) under
    safe_globals naming torch.nn's classes, then model.rnn.flatten_parameters()."""
    torch.manual_seed(0)
    model = RNNModel(rnn_type, 10, 4, 6, 2).eval()
    data = torch.randint(0, 10, (7, 3))
    with torch.no_grad():
        want, _ = model(data, None)
    f = io.BytesIO()
    torch.save(model, f)
    f.seek(0)
    safe_globals = [
        RNNModel,
        torch.nn.modules.dropout.Dropout,
        torch.nn.modules.linear.Linear,
        torch.nn.modules.rnn.GRU,
        torch.nn.modules.rnn.LSTM,
        torch.nn.modules.rnn.RNN,
        torch.nn.modules.sparse.Embedding,
    ]
    with torch.serialization.safe_globals(safe_globals):
        loaded = torch.load(f)
    loaded.rnn.flatten_parameters()
    assert type(loaded.rnn) is getattr(rnn, rnn_type)
    with torch.no_grad():
        got, _ = loaded(data, None)
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def _safe_globals_after(imports: str) -> tuple[set[str], list[str]]:
    """The torch.load allowlist after ``imports`` in a fresh interpreter, and the torch
    modules then loaded."""
    script = f"""
import sys, torch
before = set(sys.modules)
methods = {{name: getattr(torch.nn.LSTM, name, None) for name in dir(torch.nn.LSTM)}}
{imports}
assert methods == {{name: getattr(torch.nn.LSTM, name, None) for name in dir(torch.nn.LSTM)}}
def name(g):
    g = g[0] if isinstance(g, tuple) else g
    return f"{{g.__module__}}.{{g.__qualname__}}"
print(sorted(map(name, torch.serialization.get_safe_globals())))
print(sorted(m for m in set(sys.modules) - before if m.startswith("torch.")))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    allowed, modules = done.stdout.strip().splitlines()
    return set(eval(allowed)), eval(modules)  # noqa: S307 - our own printed lists


def test_import_adds_only_rnnkits_classes_to_the_torch_load_allowlist() -> None:
    """``import rnnkit`` leaves torch.nn.LSTM's attributes as they were and adds rnnkit.nn's six
    classes to the allowlist; whatever else is added, importing the same torch modules without
    rnnkit adds too (torch registers its own classes as its modules load)."""
    with_rnnkit, modules = _safe_globals_after("import rnnkit, rnnkit.nn")
    torch_only, _ = _safe_globals_after("\n".join(f"import {m}" for m in modules))
    want = {f"rnnkit.nn.{m}.{c}" for m, c in [
        ("rnn", "RNN"), ("rnn", "GRU"), ("rnn", "LSTM"),
        ("cells", "RNNCell"), ("cells", "GRUCell"), ("cells", "LSTMCell")]}
    assert with_rnnkit - torch_only == want
    assert not hasattr(torch.nn.LSTM, "__prepare_scriptable__")

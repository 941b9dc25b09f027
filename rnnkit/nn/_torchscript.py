"""``torch.jit.script`` and ``torch.load`` for rnnkit.nn's modules.

TorchScript compiles a module's ``forward`` from its source, and rnnkit's forward passes are
Python (variable lengths, parametrized weights, the backend choice) that TorchScript cannot
compile. Before it compiles anything, ``torch.jit.script`` asks every module for
``__prepare_scriptable__()``: rnnkit's modules answer with their ``torch.nn`` namesake of the
same configuration holding the same ``Parameter`` objects (nothing copied: training either one
trains both), whose TorchScript forward is PyTorch's own. The scripted module therefore takes
``torch.nn``'s arguments (``input``, ``hx``; no ``lengths``/``mask``), gives ``torch.nn``'s
values (rnnkit's equal them to float tolerance) and runs PyTorch's kernel, not rnnkit's. Note
that ``torch.jit.script(parent)`` puts the prepared submodules into ``parent`` itself (PyTorch
replaces them in ``parent._modules``). ``torch.jit.trace``, ``torch.compile`` and
``torch.export`` record rnnkit's operators instead. A weight that is not a plain parameter
(parametrized, pruned) has no ``torch.nn`` form: scripting such a module raises a
:class:`TypeError` that names the weight and those three alternatives.

``torch.load`` with ``weights_only=True`` (its default) unpickles only allowlisted classes;
importing :mod:`rnnkit.nn` adds rnnkit.nn's own six module classes to that allowlist
(:func:`torch.serialization.add_safe_globals`), so a whole model saved with ``torch.save``
reloads under a list that names ``torch.nn``'s classes, as in pytorch/examples'
``word_language_model``. Nothing else is added and nothing of ``torch.nn`` changes.
"""

from __future__ import annotations

import warnings

import torch

_TWINS = {"RNN_TANH": torch.nn.RNN, "RNN_RELU": torch.nn.RNN, "GRU": torch.nn.GRU,
          "LSTM": torch.nn.LSTM}


def torch_nn_twin(module: torch.nn.Module) -> torch.nn.Module:
    """``module``'s torch.nn namesake, same configuration, sharing its parameters."""
    if isinstance(module, torch.nn.RNNBase):
        names = list(module._flat_weights_names)
        cls = _TWINS[module.mode]
        options = dict(input_size=module.input_size, hidden_size=module.hidden_size,
                       num_layers=module.num_layers, bias=module.bias,
                       batch_first=module.batch_first, dropout=float(module.dropout),
                       bidirectional=module.bidirectional)
        if cls is torch.nn.RNN:
            options["nonlinearity"] = "tanh" if module.mode == "RNN_TANH" else "relu"
        if cls is torch.nn.LSTM:
            options["proj_size"] = module.proj_size
    else:  # a cell
        assert isinstance(module, torch.nn.RNNCellBase)
        names = ["weight_ih", "weight_hh", *(["bias_ih", "bias_hh"] if module.bias else [])]
        cls = next(c for c in (torch.nn.RNNCell, torch.nn.GRUCell, torch.nn.LSTMCell)
                   if isinstance(module, c))
        options = dict(input_size=module.input_size, hidden_size=module.hidden_size,
                       bias=module.bias)
        if cls is torch.nn.RNNCell:
            options["nonlinearity"] = module.nonlinearity
    label = f"rnnkit.nn.{type(module).__name__}"
    for name in names:
        if not isinstance(module._parameters.get(name), torch.nn.Parameter):
            raise TypeError(
                f"torch.jit.script cannot take this {label}: TorchScript runs it as "
                f"torch.nn.{cls.__name__} with the same parameters, and its {name} is not a "
                "plain parameter (parametrized or pruned). Use torch.jit.trace, torch.compile "
                "or torch.export, which record rnnkit's operators")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the constructor's dropout warning was given already
        twin = cls(**options, device="meta")
    for name in names:
        setattr(twin, name, module._parameters[name])  # RNNBase keeps _flat_weights in step
    return twin.train(module.training)


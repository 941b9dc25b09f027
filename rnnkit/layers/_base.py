"""The contract every Keras-style layer in rnnkit follows.

A :class:`Layer` is a ``torch.nn.Module`` that behaves like a Keras 3 layer:

- it builds lazily: ``build(input_shape)`` creates its parameters on the first call (or earlier
  when ``input_shape`` / ``batch_input_shape`` was given), from the input's shape;
- ``layer(x, mask=None, training=None, **kwargs)`` accepts NumPy arrays or tensors, batch first.
  ``training`` follows Keras 3: an explicit ``training=`` wins; else the value of the enclosing
  Keras-style call (a model or layer called with ``training=True`` trains the layers it calls,
  passed on or not); else a bare call is inference, as ``model(x)`` is in Keras. Except in a
  PyTorch model: a layer or model held by a plain ``torch.nn.Module`` (a LightningModule, a
  user's module; not a ``ModuleList``) follows its torch mode in a bare call, so ``train()``
  and ``eval()`` (and Lightning, which keeps each submodule's mode) decide there, as for any
  torch module. Modules start in training mode, as torch's do. ``fit`` calls with
  ``training=True`` and ``evaluate``/``predict`` with ``training=False``;
- masks are (batch, time) bool tensors; ``compute_mask(inputs, mask)`` gives the mask the next
  layer receives (``Sequential`` threads it through);
- ``get_weights()`` / ``set_weights()`` use Keras' order and shapes (``keras_weights()`` lists
  the parameters in that order); ``count_params()`` matches Keras' count;
- ``get_config()`` returns the constructor arguments as JSON-serialisable values and
  ``from_config(config)`` rebuilds the layer, so models can be saved without pickle.

Shapes given to ``build`` and ``compute_output_shape`` are tuples with ``None`` for unknown
dimensions (the batch), as Keras prints them in ``summary()``.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .. import _registry, constraints, initializers, regularizers
from . import _symbolic

Shape = tuple[int | None, ...]

_name_counters: defaultdict[str, itertools.count[int]] = defaultdict(itertools.count)


_snake_case = _registry.snake_case


# The training value of the Keras-style call in progress, None outside any (Keras' call context).
# torch.compile cannot trace a ContextVar, so a call it traces keeps the value on a plain stack,
# which it can (the graph then holds the value as a constant, guarded).
_CALL_TRAINING: contextvars.ContextVar[bool | None] = contextvars.ContextVar(
    "rnnkit_call_training", default=None)
_TRACED_TRAINING: list[bool] = []


def call_training(training: bool | None) -> bool | None:
    """An explicit ``training=``, else the enclosing Keras-style call's; None for neither (the
    layer's own mode then decides)."""
    if training is not None:
        return bool(training)
    if torch.compiler.is_compiling():
        return _TRACED_TRAINING[-1] if _TRACED_TRAINING else None
    return _CALL_TRAINING.get()


@contextlib.contextmanager
def training_scope(training: bool | None) -> Iterator[None]:
    """The layers called inside see ``training`` as their enclosing call's (None: unchanged)."""
    if training is None:
        yield
    elif torch.compiler.is_compiling():
        _TRACED_TRAINING.append(bool(training))
        try:
            yield
        finally:
            _TRACED_TRAINING.pop()
    else:
        token = _CALL_TRAINING.set(bool(training))
        try:
            yield
        finally:
            _CALL_TRAINING.reset(token)


def _note_torch_parent(parent: torch.nn.Module, name: str, child: Any) -> None:
    """A global module registration hook: a Layer put in a plain torch module follows its
    torch mode in bare calls (the module docstring)."""
    if isinstance(child, Layer) and not isinstance(parent, _NOT_A_TORCH_MODEL):
        child.__dict__["_in_torch_module"] = True


def unique_name(base: str) -> str:
    """Keras' automatic names: ``simple_rnn``, then ``simple_rnn_1``, ``simple_rnn_2``, ..."""
    index = next(_name_counters[base])
    return base if index == 0 else f"{base}_{index}"


def as_tensor(x: Any, dtype: torch.dtype | None = None) -> Tensor:
    """NumPy arrays, lists and tensors to a tensor; floating NumPy data becomes float32 as in Keras."""
    if isinstance(x, Tensor):
        return x if dtype is None else x.to(dtype)
    array = np.asarray(x)
    if dtype is None and np.issubdtype(array.dtype, np.floating):
        dtype = torch.get_default_dtype()
    return torch.as_tensor(array, dtype=dtype)


def is_structure(x: Any) -> bool:
    """A dict of inputs, or a list/tuple of arrays or tensors (several inputs, as Keras
    passes them to ``call``), rather than one array written as nested lists of numbers."""
    if isinstance(x, dict):
        return True
    return isinstance(x, (list, tuple)) and bool(x) and all(
        isinstance(item, (np.ndarray, Tensor)) for item in x)


def map_structure(fn: Callable[[Any], Any], x: Any) -> Any:
    """``fn`` on each input of a dict/list/tuple of inputs, keeping the container."""
    if isinstance(x, dict):
        return {key: fn(value) for key, value in x.items()}
    return type(x)(fn(item) for item in x)


def first_weight(module: torch.nn.Module) -> torch.nn.Parameter | None:
    """The module's first parameter (``next(module.parameters())``), or None. Layers ask on
    every call (for the dtype and device of inputs and states), and walking the module tree is
    slow at tiny sizes, so where it was found is remembered; the lookup there stays live, so a
    replaced parameter is seen."""
    found = module.__dict__.get("_first_weight_at")
    if found is not None:
        owner, name = found
        weight = owner._parameters.get(name)
        if weight is not None:
            return weight
    for owner in module.modules():
        for name, weight in owner._parameters.items():
            if weight is not None:
                module.__dict__["_first_weight_at"] = (owner, name)  # not a submodule
                return weight
    return None


def as_mask(mask: Any, batch: int | None = None, steps: int | None = None) -> Tensor | None:
    """Validate a (batch, time) boolean mask; ``None`` passes through. Without ``batch`` and
    ``steps`` other ranks are accepted too: (batch, time, ...) for TimeDistributed, and the
    per-sample (batch * time,) mask it hands the layer it wraps."""
    if mask is None:
        return None
    mask = mask if isinstance(mask, Tensor) else torch.as_tensor(np.asarray(mask))
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must be a boolean (batch, time) tensor, got dtype {mask.dtype}")
    if mask.dim() == 0 or (mask.dim() != 2 and batch is not None):
        raise ValueError(f"mask must have shape (batch, time), got shape {tuple(mask.shape)}")
    if batch is not None and steps is not None and tuple(mask.shape) != (batch, steps):
        raise ValueError(
            f"mask shape {tuple(mask.shape)} does not match the input's (batch, time) = "
            f"({batch}, {steps})"
        )
    return mask


def collect_losses(module: torch.nn.Module) -> list[Tensor]:
    """The loss terms of ``module`` and everything in it (see :attr:`Layer.losses`)."""
    own = [loss for sub in module.modules() for loss in sub.__dict__.get("_own_losses", ())]
    penalties = [param.regularizer(param) for param in module.parameters()
                 if param.requires_grad and getattr(param, "regularizer", None) is not None]
    return own + penalties


def serialize_option(module: Any, given: Any, resolved: Any) -> Any:
    """A constructor option (activation, initializer, regularizer, constraint) as JSON: the
    name or config the user gave, else the module's serialisation of the object."""
    if given is None or isinstance(given, (str, dict)):
        return given
    if module.__name__.endswith("activations") and activation_name(resolved) is not None:
        return activation_name(resolved)
    serialize = getattr(module, "serialize", None)
    if callable(serialize):
        return serialize(given)
    raise TypeError(f"Cannot write {given!r} into a config; pass it by name instead")


def activation_name(function: Any) -> str | None:
    """"tanh", "sigmoid" or "relu" when ``function`` is one of those (the kernels' set): asked
    on every call of a recurrent layer, so one lookup by identity."""
    for fn, name in _KERNEL_ACTIVATIONS or _kernel_activations():
        if function is fn:
            return name
    return None


_KERNEL_ACTIVATIONS: tuple[tuple[Any, str], ...] = ()  # filled on first use


def _kernel_activations() -> tuple[tuple[Any, str], ...]:
    """The kernels' activations, rnnkit's own and torch's, with their names (a plain global
    rather than functools.cache, which torch.compile warns about)."""
    from .. import activations

    global _KERNEL_ACTIVATIONS
    ours = tuple((activations.get(name), name) for name in ("tanh", "sigmoid", "relu"))
    _KERNEL_ACTIVATIONS = ours + ((torch.tanh, "tanh"), (torch.sigmoid, "sigmoid"),
                                  (torch.relu, "relu"))
    return _KERNEL_ACTIVATIONS


def weight_options_config(layer: Layer) -> dict[str, Any]:
    """The regularizer and constraint arguments of ``layer`` (``_given_options``) as JSON."""
    config = {}
    for key, given in layer.__dict__.get("_given_options", {}).items():
        module = regularizers if key.endswith("_regularizer") else constraints
        config[key] = serialize_option(module, given, module.get(given))
    return config


class Layer(torch.nn.Module):
    """Base class of rnnkit's Keras-style layers (see the module docstring for the contract)."""

    supports_masking: bool = False
    # Keras 3 reads input_dim=n as input_shape=(n,); a layer over sequences (the recurrent
    # layers) reads it as (None, n): n features at each of any number of steps.
    input_dim_is_step_features: bool = False
    # True for a layer whose inputs are token ids (Embedding): no axis of them is a feature
    # axis, so a model starting with it checks only their rank.
    input_is_ids: bool = False

    def __init__(
        self,
        *,
        name: str | None = None,
        trainable: bool = True,
        input_shape: Sequence[int | None] | None = None,
        batch_input_shape: Sequence[int | None] | None = None,
        batch_size: int | None = None,
        input_dim: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        # Keras 2 style arguments users still write; everything else is a typo.
        kwargs.pop("dtype", None)
        activity_regularizer = kwargs.pop("activity_regularizer", None)
        if kwargs:
            raise TypeError(
                f"{type(self).__name__} got unexpected keyword argument(s): {sorted(kwargs)}"
            )
        self.name = name if name is not None else unique_name(_snake_case(type(self).__name__))
        self.built = False
        self._trainable = trainable
        if batch_input_shape is not None:
            self.batch_input_shape: Shape | None = tuple(batch_input_shape)
        elif input_shape is not None:
            self.batch_input_shape = (batch_size, *tuple(input_shape))
        elif input_dim is not None:
            self.batch_input_shape = ((batch_size, None, input_dim)
                                      if self.input_dim_is_step_features
                                      else (batch_size, input_dim))
        else:
            self.batch_input_shape = None
        self.activity_regularizer = regularizers.get(activity_regularizer)
        self._given_activity_regularizer = activity_regularizer
        # weight name -> (regularizer, constraint), put on the parameters once built
        self._weight_options: dict[str, tuple[Any, Any]] = {}

    # -- building -------------------------------------------------------------------------
    def build(self, input_shape: Shape) -> None:
        """Create the parameters for inputs of this shape. Subclasses call ``super().build``."""
        self.built = True
        self._attach_weight_options()
        if not self._trainable:
            self.requires_grad_(False)

    def maybe_build(self, input_shape: Shape) -> None:
        if not self.built:
            self.build(input_shape if isinstance(input_shape, dict) else tuple(input_shape))
            self.built = True
            if not self._trainable:
                self.requires_grad_(False)

    def compute_output_shape(self, input_shape: Shape) -> Shape | list[Shape]:
        return tuple(input_shape)

    def compute_mask(self, inputs: Tensor, mask: Tensor | None = None) -> Tensor | None:
        """The mask the next layer receives. Layers that do not support masking drop it."""
        return mask if self.supports_masking else None

    # -- calling --------------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # Symbolic arguments (rnnkit.Input and layer outputs) record a graph node instead of
        # computing: see rnnkit/layers/_symbolic.py and rnnkit.Model.
        if _symbolic.is_symbolic_call(args, kwargs):
            return _symbolic.symbolic_call(self, args, kwargs)
        return torch.nn.Module.__call__(self, *args, **kwargs)

    @property
    def input(self) -> Any:
        """The symbolic input of this layer's one call in a graph (as Keras' ``layer.input``)."""
        return self._only_node("input").first_argument()

    @property
    def output(self) -> Any:
        """The symbolic output(s) of this layer's one call in a graph (``layer.output``)."""
        return self._only_node("output").outputs

    def _only_node(self, what: str) -> Any:
        nodes = self.__dict__.get("_inbound_nodes", [])
        # ValueError, not AttributeError: torch.nn.Module.__getattr__ would hide the message
        if not nodes:
            raise ValueError(f"Layer '{self.name}' has never been called on symbolic "
                                 f"tensors (rnnkit.Input), so it has no defined {what}.")
        if len(nodes) > 1:
            raise ValueError(
                f"Layer '{self.name}' has been called {len(nodes)} times in a graph (a shared "
                f"layer), so `layer.{what}` is ambiguous; use the tensors each call returned."
            )
        return nodes[0]

    def call(self, inputs: Tensor, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement call()")

    def forward(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        if type(inputs) is not Tensor and is_structure(inputs):
            # a dict or list of arrays reaches call() as one (Keras)
            inputs = map_structure(self.convert_inputs, inputs)
            self.maybe_build(map_structure(lambda t: tuple(t.shape), inputs))
        else:
            inputs = self.convert_inputs(inputs)
            if not self.built:
                self.maybe_build(tuple(inputs.shape))
        return self._call_converted(inputs, args, kwargs)

    def _call_converted(self, inputs: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """The rest of :meth:`forward` once ``inputs`` are converted and the layer built:
        ``call`` inside this call's training scope, then the activity regularizer."""
        training = self._resolve_training(kwargs)
        if kwargs.get("mask") is not None:
            kwargs["mask"] = as_mask(kwargs["mask"])
        self.__dict__["_own_losses"] = []  # this call's add_loss values (Keras clears per call)
        if torch.compiler.is_compiling():
            with training_scope(training):
                outputs = self.call(inputs, *args, **kwargs)
        else:  # training_scope inlined: its generator costs more than a tiny layer's math
            token = _CALL_TRAINING.set(training)
            try:
                outputs = self.call(inputs, *args, **kwargs)
            finally:
                _CALL_TRAINING.reset(token)
        if self.__dict__.get("activity_regularizer") is not None:
            for output in outputs if isinstance(outputs, (list, tuple)) else [outputs]:
                if isinstance(output, Tensor):
                    loss = self.activity_regularizer(output)
                    if output.dim() and output.shape[0]:  # Keras: per sample of the batch
                        loss = loss / output.shape[0]
                    self.add_loss(loss)
        return outputs

    def _resolve_training(self, kwargs: dict[str, Any]) -> bool:
        """This call's ``training`` (the module docstring's rule), put in ``kwargs`` when
        ``call()`` takes it."""
        training = self.call_training(kwargs.get("training"))
        if "training" in self._call_arguments():
            kwargs["training"] = training
        return training

    def call_training(self, training: bool | None) -> bool:
        """``training`` for a call given ``training`` (None: not given): the module
        docstring's rule."""
        resolved = call_training(training)
        if resolved is not None:
            return resolved
        return self.training if self.__dict__.get("_in_torch_module", False) else False

    def convert_inputs(self, inputs: Any) -> Tensor:
        """NumPy to tensor (float32 by default). Layers with integer inputs override this."""
        tensor = as_tensor(inputs)
        first = first_weight(self)
        if first is not None and tensor.is_floating_point() and tensor.dtype != first.dtype:
            tensor = tensor.to(first.dtype)
        return tensor

    def _call_arguments(self) -> tuple[str, ...]:
        """The parameter names of this class's ``call`` (read once per class)."""
        cls = type(self)
        # a trace reads the code object: dynamo cannot read a class's __dict__ once it has
        # changed, and must not record the class's change
        compiling = torch.compiler.is_compiling()
        names = None if compiling else cls.__dict__.get("_call_argument_names")
        if names is None:
            code = cls.call.__code__
            names = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
            if not compiling:
                cls._call_argument_names = names  # this class only: a subclass may override call
        return names

    # -- weights --------------------------------------------------------------------------
    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self._trainable = bool(value)
        self.requires_grad_(self._trainable)

    def keras_weights(self) -> list[torch.nn.Parameter]:
        """Parameters in Keras' ``get_weights()`` order. Default: registration order."""
        return list(self.parameters())

    @property
    def weights(self) -> list[torch.nn.Parameter]:
        """All weights in Keras' order (``get_weights()``'s)."""
        return self.keras_weights() if self.built else []

    @property
    def trainable_weights(self) -> list[torch.nn.Parameter]:
        return [w for w in self.weights if w.requires_grad]

    @property
    def non_trainable_weights(self) -> list[torch.nn.Parameter]:
        return [w for w in self.weights if not w.requires_grad]

    def add_weight(
        self,
        shape: Sequence[int] = (),
        initializer: Any = None,
        dtype: torch.dtype | str | None = None,
        trainable: bool = True,
        regularizer: Any = None,
        constraint: Any = None,
        name: str | None = None,
    ) -> torch.nn.Parameter:
        """Keras' ``add_weight``: a new parameter of ``shape`` registered on this layer (as
        attribute ``name``, default ``weight``, ``weight_1``, ...), initialised by
        ``initializer`` (default ``"glorot_uniform"`` for two or more axes, else
        ``"zeros"``), trainable or not, with an optional regularizer (its penalty is in
        :attr:`losses`) and constraint (applied after each optimizer step)."""
        if isinstance(dtype, str):
            dtype = getattr(torch, dtype)
        dtype = dtype or torch.get_default_dtype()
        shape = tuple(int(d) for d in shape)
        if name is None:
            count = len(self._parameters)
            name = "weight" if "weight" not in self._parameters else f"weight_{count}"
        if name in self._parameters and self._parameters[name] is not None:
            raise ValueError(f"Layer '{self.name}' already has a weight named {name!r}")
        make = initializers.get(initializer if initializer is not None else (
            "glorot_uniform" if len(shape) >= 2 else "zeros"))
        param = torch.nn.Parameter(make(shape, dtype=dtype), requires_grad=bool(trainable))
        self.register_parameter(name, param)
        self._weight_options[name] = (regularizers.get(regularizer), constraints.get(constraint))
        self._attach_weight_options()
        return param

    def _set_weight_options(self, name: str, regularizer: Any, constraint: Any) -> None:
        """Give weight ``name`` (created in ``build``) a regularizer and a constraint."""
        self._weight_options[name] = (regularizers.get(regularizer), constraints.get(constraint))

    def _attach_weight_options(self) -> None:
        # Keras keeps them on the variable: the optimizer applies variable.constraint after
        # each step, and losses reads variable.regularizer.
        for name, (regularizer, constraint) in self.__dict__.get("_weight_options", {}).items():
            param = self._parameters.get(name)
            if param is not None:
                param.regularizer = regularizer  # type: ignore[attr-defined]
                param.constraint = constraint  # type: ignore[attr-defined]

    # -- losses ---------------------------------------------------------------------------
    def add_loss(self, loss: Tensor) -> None:
        """Add a loss term from ``call`` (it stays in :attr:`losses` until the next call)."""
        self.__dict__.setdefault("_own_losses", []).append(loss)

    @property
    def losses(self) -> list[Tensor]:
        """Keras' ``losses``: the terms added in the last call (activity regularizers,
        ``add_loss``) of this layer and the layers in it, then the weight regularizers'
        penalties of the trainable weights, computed now."""
        return collect_losses(self)

    def _require_built(self, what: str) -> None:
        if not self.built:
            raise ValueError(
                f"You tried to call {what} on layer '{self.name}', but the layer isn't built. "
                "Call it on data, or give it `input_shape=`, first."
            )

    def get_weights(self) -> list[np.ndarray]:
        return [p.detach().cpu().numpy().copy() for p in self.keras_weights()]

    def set_weights(self, weights: Sequence[Any]) -> None:
        self._require_built("set_weights()")
        params = self.keras_weights()
        if len(weights) != len(params):
            raise ValueError(
                f"Layer '{self.name}' expects {len(params)} weights "
                f"{[tuple(p.shape) for p in params]}, but received {len(weights)}"
            )
        for index, (param, value) in enumerate(zip(params, weights)):
            value = np.asarray(value)
            if tuple(value.shape) != tuple(param.shape):
                raise ValueError(
                    f"Layer '{self.name}' weight {index} has shape {tuple(param.shape)}, "
                    f"but the value given has shape {tuple(value.shape)}"
                )
        with torch.no_grad():
            for param, value in zip(params, weights):
                param.copy_(torch.as_tensor(np.asarray(value), dtype=param.dtype))

    def count_params(self) -> int:
        self._require_built("count_params()")
        return sum(p.numel() for p in self.keras_weights())

    # -- configuration --------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"name": self.name, "trainable": self._trainable}
        if self.batch_input_shape is not None:
            config["batch_input_shape"] = list(self.batch_input_shape)
        if self.__dict__.get("activity_regularizer") is not None:
            config["activity_regularizer"] = serialize_option(
                regularizers, self._given_activity_regularizer, self.activity_regularizer)
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layer:
        return cls(**config)

    def extra_repr(self) -> str:
        return f"name={self.name!r}"


# rnnkit's own containers (a Sequential's ModuleList) are no torch model holding a layer
_NOT_A_TORCH_MODEL = (Layer, torch.nn.ModuleList, torch.nn.ModuleDict, torch.nn.Sequential)
torch.nn.modules.module.register_module_module_registration_hook(_note_torch_parent)

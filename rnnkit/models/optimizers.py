"""Keras 3's optimizers on torch parameters, with Keras' update formulas and defaults.

An optimizer is created without parameters (``Adam(learning_rate=1e-3)``), as in Keras, and
bound to a model's parameters by ``compile``/``fit`` (or by :meth:`Optimizer.build`). Each step
reads ``param.grad`` (parameters without a gradient are skipped), then, as Keras'
``Optimizer.apply`` does: clips the gradients (``clipnorm`` per tensor, ``global_clipnorm``
over all, or ``clipvalue`` elementwise), applies decoupled weight decay
``w <- w - w * weight_decay * lr``, and runs the update below; ``t`` counts steps from 1.

SGD (lr 0.01)::

    momentum == 0:  w <- w - lr * g
    else:           m <- momentum * m - lr * g;  w <- w + m
                    (nesterov: w <- w + momentum * m - lr * g)

RMSprop (lr 0.001, rho 0.9, momentum 0, epsilon 1e-7; epsilon sits *inside* the root)::

    v <- rho * v + (1 - rho) * g^2
    centered:  a <- rho * a + (1 - rho) * g;  d = v - a^2 + eps    else  d = v + eps
    step = lr * g / sqrt(d);  momentum > 0: m <- momentum * m + step; w <- w - m   else w <- w - step

Adam (lr 0.001, beta_1 0.9, beta_2 0.999, epsilon 1e-7; Keras' "epsilon hat": the bias
correction is folded into the step size, so epsilon is not rescaled as in ``torch.optim.Adam``)::

    alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)
    m <- m + (g - m) * (1 - beta_1);   v <- v + (g^2 - v) * (1 - beta_2)
    amsgrad: v_hat <- max(v_hat, v), used in place of v
    w <- w - m * alpha / (sqrt(v) + eps)

AdamW is Adam with ``weight_decay=0.004``. The step's scalars are float32, as Keras' variables.

A ``torch.optim`` class or instance also works anywhere an optimizer is accepted; it is wrapped
in :class:`TorchOptimizer` so that ``learning_rate`` reads and sets ``param_groups``' ``lr``.

Example::

    >>> import torch
    >>> from rnnkit.models.optimizers import SGD
    >>> w = torch.nn.Parameter(torch.tensor([1.0]))
    >>> opt = SGD(learning_rate=0.1)
    >>> opt.build([w])
    >>> w.grad = torch.tensor([2.0])
    >>> opt.step()
    >>> round(float(w.detach()), 6)
    0.8
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor


def _float32(value: float) -> float:
    """Keras keeps hyper-parameters such as the learning rate in float32 variables."""
    return float(np.float32(value))


def _check_positive(owner: str, name: str, value: Any, allow_zero: bool = False) -> None:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{owner}: {name} must be a finite number {bound}, got {value!r}")


class Optimizer:
    """Base class. Subclasses define ``slot_names()`` (per-parameter state tensors) and
    ``update_step(gradient, variable, slots, lr)`` (one parameter, under ``torch.no_grad``).

    Args:
        learning_rate: the step size (a float; read and set via :attr:`learning_rate`).
        weight_decay: decoupled weight decay (None: none).
        clipnorm / clipvalue / global_clipnorm: gradient clipping (at most one of them).
        name: the optimizer's name.
    """

    def __init__(
        self,
        learning_rate: float,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        name: str | None = None,
    ) -> None:
        owner = type(self).__name__
        _check_positive(owner, "learning_rate", learning_rate, allow_zero=True)
        if weight_decay is not None:
            _check_positive(owner, "weight_decay", weight_decay, allow_zero=True)
        clips = {"clipnorm": clipnorm, "clipvalue": clipvalue, "global_clipnorm": global_clipnorm}
        given = [k for k, v in clips.items() if v is not None]
        if len(given) > 1:
            raise ValueError(f"{owner}: set at most one of clipnorm, clipvalue and "
                             f"global_clipnorm, got {', '.join(given)}")
        for key in given:
            _check_positive(owner, key, clips[key])
        self._learning_rate = _float32(learning_rate)
        self.weight_decay = weight_decay
        self.clipnorm = clipnorm
        self.clipvalue = clipvalue
        self.global_clipnorm = global_clipnorm
        self.name = name or type(self).__name__.lower()
        self.built = False
        self.iterations = 0
        self._params: list[Tensor] = []
        self._slots: dict[str, list[Tensor]] = {}

    # -- learning rate -----------------------------------------------------------------------
    @property
    def learning_rate(self) -> float:
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        _check_positive(type(self).__name__, "learning_rate", value, allow_zero=True)
        self._learning_rate = _float32(value)

    # -- state ------------------------------------------------------------------------------
    def slot_names(self) -> tuple[str, ...]:
        return ()

    def build(self, params: Iterable[Tensor]) -> None:
        """Bind to ``params`` and create the per-parameter state (zeros)."""
        params = list(params)
        if self.built:
            if len(params) != len(self._params) or any(
                a is not b for a, b in zip(params, self._params)
            ):
                raise ValueError(
                    f"Optimizer '{self.name}' is already bound to other parameters; create a "
                    "new optimizer for this model."
                )
            return
        for index, param in enumerate(params):
            if not isinstance(param, Tensor) or not param.is_floating_point():
                raise TypeError(f"Optimizer '{self.name}': parameter {index} is not a floating "
                                f"point tensor ({type(param).__name__})")
        self._params = params
        self._slots = {
            slot: [torch.zeros_like(p, memory_format=torch.preserve_format) for p in params]
            for slot in self.slot_names()
        }
        self.iterations = 0
        self.built = True

    @property
    def variables(self) -> list[Tensor]:
        """Keras' optimizer variables: iterations, learning rate, then the slots."""
        return [
            torch.tensor(self.iterations, dtype=torch.int64),
            torch.tensor(self._learning_rate, dtype=torch.float32),
            *[t for slot in self._slots.values() for t in slot],
        ]

    def state_tensors(self) -> dict[str, Tensor]:
        """The state to save: ``iterations`` and ``{slot}/{index}`` tensors."""
        state = {"iterations": torch.tensor([self.iterations], dtype=torch.int64)}
        for slot, tensors in self._slots.items():
            for index, tensor in enumerate(tensors):
                state[f"{slot}/{index}"] = tensor.detach()
        return state

    def load_state_tensors(self, state: dict[str, Tensor]) -> None:
        """Restore what :meth:`state_tensors` gave (the optimizer must be built)."""
        if not self.built:
            raise ValueError(f"Optimizer '{self.name}' must be built before loading its state")
        expected = set(self.state_tensors())
        if set(state) != expected:
            raise ValueError(f"Optimizer '{self.name}': saved state has entries "
                             f"{sorted(set(state) ^ expected)} that do not match this optimizer")
        with torch.no_grad():
            for slot, tensors in self._slots.items():
                for index, tensor in enumerate(tensors):
                    value = state[f"{slot}/{index}"]
                    if value.shape != tensor.shape:
                        raise ValueError(f"Optimizer '{self.name}': {slot}/{index} has shape "
                                         f"{tuple(value.shape)}, expected {tuple(tensor.shape)}")
                    tensor.copy_(value)
        self.iterations = int(state["iterations"].reshape(-1)[0])

    # -- stepping ---------------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        for param in self._params:
            if param.grad is not None:
                if set_to_none:
                    param.grad = None
                else:
                    param.grad.zero_()

    def step(self, closure: Any = None) -> None:
        """One update of the bound parameters from their ``.grad`` (torch's interface)."""
        if not self.built:
            raise ValueError(f"Optimizer '{self.name}' is not bound to parameters; call "
                             "build(params) (compile/fit do this for a model)")
        if closure is not None:
            with torch.enable_grad():
                closure()
        self.apply([p.grad for p in self._params], self._params)

    def apply(self, grads: Sequence[Tensor | None], variables: Sequence[Tensor] | None = None) -> None:
        """Keras' ``apply``: clip, decay, update each variable that has a gradient, count."""
        if variables is None:
            variables = self._params
        if not self.built:
            self.build(variables)
        index_of = {id(p): i for i, p in enumerate(self._params)}
        pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]
        with torch.no_grad():
            clipped = self._clip([g.to(v.dtype) for g, v in pairs])
            lr = self._learning_rate
            for gradient, (_, variable) in zip(clipped, pairs):
                index = index_of.get(id(variable))
                if index is None:
                    raise ValueError(f"Optimizer '{self.name}' was built for other variables")
                if self.weight_decay:
                    wd = torch.tensor(self.weight_decay, dtype=variable.dtype,
                                      device=variable.device)
                    lr_t = torch.tensor(lr, dtype=variable.dtype, device=variable.device)
                    variable.sub_(variable * wd * lr_t)
                slots = {name: tensors[index] for name, tensors in self._slots.items()}
                self.update_step(gradient, variable, slots, lr)
        self.iterations += 1

    def _clip(self, grads: list[Tensor]) -> list[Tensor]:
        if self.clipnorm:
            return [_clip_by_norm(g, self.clipnorm) for g in grads]
        if self.global_clipnorm and grads:
            norm = torch.sqrt(sum(torch.sum(torch.square(g.float())) for g in grads))
            scale = self.global_clipnorm * torch.minimum(1.0 / norm,
                                                         torch.tensor(1.0 / self.global_clipnorm))
            return [g * scale.to(g.dtype) for g in grads]
        if self.clipvalue:
            return [torch.clamp(g, -self.clipvalue, self.clipvalue) for g in grads]
        return grads

    def update_step(self, gradient: Tensor, variable: Tensor, slots: dict[str, Tensor],
                    lr: float) -> None:
        raise NotImplementedError

    # -- config -----------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "learning_rate": self._learning_rate,
            "weight_decay": self.weight_decay,
            "clipnorm": self.clipnorm,
            "clipvalue": self.clipvalue,
            "global_clipnorm": self.global_clipnorm,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Optimizer:
        return cls(**config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(learning_rate={self._learning_rate})"


def _clip_by_norm(gradient: Tensor, clip_norm: float) -> Tensor:
    norm = torch.sqrt(torch.sum(torch.square(gradient)))
    return gradient * clip_norm / torch.clamp(norm, min=clip_norm)


def _scalar(value: float, like: Tensor) -> Tensor:
    return torch.tensor(value, dtype=like.dtype, device=like.device)


class SGD(Optimizer):
    """Gradient descent with optional (Nesterov) momentum; Keras defaults lr 0.01."""

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 name: str = "SGD", **kwargs: Any) -> None:
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real) or not (
            0 <= momentum <= 1
        ):
            raise ValueError(f"SGD: momentum must be a float in [0, 1], got {momentum!r}")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    def slot_names(self) -> tuple[str, ...]:
        return ("momentum",) if self.momentum != 0 else ()

    def update_step(self, gradient: Tensor, variable: Tensor, slots: dict[str, Tensor],
                    lr: float) -> None:
        lr_t = _scalar(lr, variable)
        if self.momentum == 0:
            variable.sub_(gradient * lr_t)
            return
        m = slots["momentum"]
        momentum = _scalar(self.momentum, variable)
        m.copy_(m * momentum - gradient * lr_t)
        if self.nesterov:
            variable.add_(m * momentum - gradient * lr_t)
        else:
            variable.add_(m)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class RMSprop(Optimizer):
    """Keras' RMSprop (epsilon inside the square root); defaults lr 0.001, rho 0.9."""

    def __init__(self, learning_rate: float = 0.001, rho: float = 0.9, momentum: float = 0.0,
                 epsilon: float = 1e-7, centered: bool = False, name: str = "rmsprop",
                 **kwargs: Any) -> None:
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        _check_positive("RMSprop", "rho", rho, allow_zero=True)
        _check_positive("RMSprop", "momentum", momentum, allow_zero=True)
        _check_positive("RMSprop", "epsilon", epsilon, allow_zero=True)
        self.rho = float(rho)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.centered = bool(centered)

    def slot_names(self) -> tuple[str, ...]:
        names = ["velocity"]
        if self.momentum > 0:
            names.append("momentum")
        if self.centered:
            names.append("average_gradient")
        return tuple(names)

    def update_step(self, gradient: Tensor, variable: Tensor, slots: dict[str, Tensor],
                    lr: float) -> None:
        rho = self.rho
        velocity = slots["velocity"]
        velocity.copy_(rho * velocity + (1 - rho) * torch.square(gradient))
        if self.centered:
            average = slots["average_gradient"]
            average.copy_(rho * average + (1 - rho) * gradient)
            denominator = velocity - torch.square(average) + self.epsilon
        else:
            denominator = velocity + self.epsilon
        increment = (_scalar(lr, variable) * gradient) / torch.sqrt(denominator)
        if self.momentum > 0:
            m = slots["momentum"]
            m.copy_(self.momentum * m + increment)
            variable.sub_(m)
        else:
            variable.sub_(increment)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon, "centered": self.centered}


class Adam(Optimizer):
    """Keras' Adam (epsilon hat); defaults lr 0.001, beta_1 0.9, beta_2 0.999, eps 1e-7."""

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, amsgrad: bool = False, name: str = "adam",
                 **kwargs: Any) -> None:
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        for key, value in (("beta_1", beta_1), ("beta_2", beta_2)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
                0 <= value < 1
            ):
                raise ValueError(f"{type(self).__name__}: {key} must be in [0, 1), got {value!r}")
        _check_positive(type(self).__name__, "epsilon", epsilon, allow_zero=True)
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = float(epsilon)
        self.amsgrad = bool(amsgrad)

    def slot_names(self) -> tuple[str, ...]:
        return ("momentum", "velocity", "velocity_hat") if self.amsgrad else (
            "momentum", "velocity")

    def update_step(self, gradient: Tensor, variable: Tensor, slots: dict[str, Tensor],
                    lr: float) -> None:
        local_step = _scalar(self.iterations + 1, variable)
        beta_1_power = torch.pow(_scalar(self.beta_1, variable), local_step)
        beta_2_power = torch.pow(_scalar(self.beta_2, variable), local_step)
        alpha = _scalar(lr, variable) * torch.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        m, v = slots["momentum"], slots["velocity"]
        m.add_((gradient - m) * (1 - self.beta_1))
        v.add_((torch.square(gradient) - v) * (1 - self.beta_2))
        if self.amsgrad:
            v_hat = slots["velocity_hat"]
            v_hat.copy_(torch.maximum(v_hat, v))
            v = v_hat
        variable.sub_((m * alpha) / (torch.sqrt(v) + self.epsilon))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon, "amsgrad": self.amsgrad}


class AdamW(Adam):
    """Adam with decoupled weight decay; Keras defaults lr 0.001, weight_decay 0.004."""

    def __init__(self, learning_rate: float = 0.001, weight_decay: float = 0.004,
                 beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7,
                 amsgrad: bool = False, name: str = "adamw", **kwargs: Any) -> None:
        if weight_decay is None:
            raise ValueError("AdamW: weight_decay must be a number, got None (use Adam instead)")
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2,
                         epsilon=epsilon, amsgrad=amsgrad, name=name,
                         weight_decay=weight_decay, **kwargs)


class TorchOptimizer(Optimizer):
    """A ``torch.optim`` optimizer behind rnnkit's interface.

    Give a class (``torch.optim.SGD``; it is created with the model's trainable parameters and
    ``kwargs`` when the model is bound) or an instance (already holding its parameters).
    """

    def __init__(self, optimizer: Any, **kwargs: Any) -> None:
        is_class = inspect.isclass(optimizer) and issubclass(optimizer, torch.optim.Optimizer)
        if not is_class and not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"Expected a torch.optim.Optimizer class or instance, got {optimizer!r}")
        cls = optimizer if is_class else type(optimizer)
        self._cls = cls
        self._kwargs = kwargs
        self.torch_optimizer: torch.optim.Optimizer | None = None if is_class else optimizer
        self.name = cls.__name__
        self.built = not is_class
        self.iterations = 0
        self.weight_decay = self.clipnorm = self.clipvalue = self.global_clipnorm = None
        self._params = [] if is_class else [
            p for group in optimizer.param_groups for p in group["params"]
        ]
        self._slots = {}

    def build(self, params: Iterable[Tensor]) -> None:
        if self.built:
            return
        self._params = [p for p in params if p.requires_grad]
        try:
            self.torch_optimizer = self._cls(self._params, **self._kwargs)
        except TypeError as error:
            raise TypeError(f"Could not create {self._cls.__name__}(params, **{self._kwargs}): "
                            f"{error}. Pass an instance, or keyword arguments it accepts.") from None
        self.built = True

    @property
    def learning_rate(self) -> float:
        if self.torch_optimizer is None:
            return float(self._kwargs.get("lr", inspect.signature(self._cls).parameters["lr"]
                                          .default))
        return float(self.torch_optimizer.param_groups[0]["lr"])

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        _check_positive(self.name, "learning_rate", value, allow_zero=True)
        if self.torch_optimizer is None:
            self._kwargs["lr"] = float(value)
            return
        for group in self.torch_optimizer.param_groups:
            group["lr"] = float(value)

    @property
    def variables(self) -> list[Tensor]:
        if self.torch_optimizer is None:
            return []
        return [v for state in self.torch_optimizer.state.values() for v in state.values()
                if isinstance(v, Tensor)]

    def state_tensors(self) -> dict[str, Tensor]:
        return {}

    def load_state_tensors(self, state: dict[str, Tensor]) -> None:
        if state:
            raise ValueError(f"{self.name}: saved state of a torch optimizer is not restored")

    def step(self, closure: Any = None) -> None:
        if self.torch_optimizer is None:
            raise ValueError(f"{self.name} is not bound to parameters yet")
        self.torch_optimizer.step(closure)
        self.iterations += 1

    def apply(self, grads: Sequence[Tensor | None], variables: Sequence[Tensor] | None = None) -> None:
        if variables is not None and not self.built:
            self.build(variables)
        for param, grad in zip(self._params if variables is None else variables, grads):
            param.grad = grad
        self.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        if self.torch_optimizer is not None:
            self.torch_optimizer.zero_grad(set_to_none=set_to_none)

    def get_config(self) -> dict[str, Any]:
        if self.torch_optimizer is None:
            return dict(self._kwargs)
        group = self.torch_optimizer.param_groups[0]
        return {k: v for k, v in group.items() if k != "params" and _is_json_scalar(v)}

    def __repr__(self) -> str:
        return f"TorchOptimizer({self.name}, lr={self.learning_rate})"


def _is_json_scalar(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return all(_is_json_scalar(v) for v in value)
    return value is None or isinstance(value, (bool, int, float, str))


_CLASSES: dict[str, type[Optimizer]] = {
    cls.__name__.lower(): cls for cls in (SGD, RMSprop, Adam, AdamW)
}


def get(identifier: Any) -> Optimizer:
    """An :class:`Optimizer` from a name (``"adam"``, ``"sgd"``, ``"rmsprop"``, ``"adamw"``,
    any case; Keras' defaults), an rnnkit optimizer, a ``{"class_name", "config"}`` dict, or a
    ``torch.optim`` optimizer class or instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        cls = _CLASSES.get(identifier.lower())
        if cls is None:
            raise ValueError(f"Unknown optimizer {identifier!r}; expected one of "
                             f"{sorted(_CLASSES)}, an rnnkit optimizer or a torch.optim optimizer")
        return cls()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if inspect.isclass(identifier) and issubclass(identifier, Optimizer):
        return identifier()
    if isinstance(identifier, torch.optim.Optimizer) or (
        inspect.isclass(identifier) and issubclass(identifier, torch.optim.Optimizer)
    ):
        return TorchOptimizer(identifier)
    raise TypeError(f"Could not interpret optimizer {identifier!r} ({type(identifier).__name__})")


def serialize(optimizer: Optimizer) -> dict[str, Any]:
    """``{"class_name", "config"}``; torch optimizers as ``"torch.optim.<Name>"``."""
    if isinstance(optimizer, TorchOptimizer):
        return {"class_name": f"torch.optim.{optimizer.name}", "config": optimizer.get_config()}
    name = type(optimizer).__name__
    if name.lower() not in _CLASSES:
        raise TypeError(f"Only rnnkit's built-in optimizers can be written to a config; got "
                        f"{optimizer!r}")
    return {"class_name": name, "config": optimizer.get_config()}


def deserialize(config: dict[str, Any]) -> Optimizer:
    """The inverse of :func:`serialize`. Torch optimizers are looked up in ``torch.optim`` only."""
    name = config.get("class_name") if isinstance(config, dict) else None
    options = dict(config.get("config", {})) if isinstance(config, dict) else {}
    if isinstance(name, str) and name.startswith("torch.optim."):
        cls = getattr(torch.optim, name.removeprefix("torch.optim."), None)
        if inspect.isclass(cls) and issubclass(cls, torch.optim.Optimizer):
            return TorchOptimizer(cls, **options)
    elif isinstance(name, str) and name.lower() in _CLASSES:
        return _CLASSES[name.lower()].from_config(options)
    raise ValueError(f"Unknown optimizer class {name!r} in config")


def get_learning_rate(optimizer: Any) -> float:
    """The learning rate of an rnnkit optimizer or a ``torch.optim`` optimizer."""
    if isinstance(optimizer, torch.optim.Optimizer):
        return float(optimizer.param_groups[0]["lr"])
    return float(optimizer.learning_rate)


def set_learning_rate(optimizer: Any, value: float) -> None:
    """Set the learning rate of an rnnkit optimizer or every group of a torch optimizer."""
    if isinstance(optimizer, torch.optim.Optimizer):
        for group in optimizer.param_groups:
            group["lr"] = float(value)
    else:
        optimizer.learning_rate = value


__all__ = [
    "Optimizer",
    "SGD",
    "RMSprop",
    "Adam",
    "AdamW",
    "TorchOptimizer",
    "get",
    "serialize",
    "deserialize",
    "get_learning_rate",
    "set_learning_rate",
]

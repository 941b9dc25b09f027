"""Keras 3's optimizers on torch parameters, with Keras' update formulas and defaults.

An optimizer is created without parameters (``Adam(learning_rate=1e-3)``), as in Keras, and
bound to a model's parameters by ``compile``/``fit`` (or by :meth:`Optimizer.build`). Each step
reads ``param.grad`` (parameters without a gradient are skipped), then, as Keras'
``Optimizer.apply`` does: clips the gradients (``clipnorm`` per tensor, ``global_clipnorm``
over all, or ``clipvalue`` elementwise), applies decoupled weight decay
``w <- w - w * weight_decay * lr``, runs the update below, then applies each weight's
``constraint`` (a layer's ``kernel_constraint``, ...); ``t`` counts steps from 1.

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
    >>> from rnnkit.training.optimizers import SGD
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
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .. import _registry
from . import schedules


def _float32(value: float) -> float:
    """Keras keeps hyper-parameters such as the learning rate in float32 variables."""
    return float(np.float32(value))


def _check_positive(owner: str, name: str, value: Any, allow_zero: bool = False) -> None:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{owner}: {name} must be a finite number {bound}, got {value!r}")


def _is_params(value: Any) -> bool:
    """Parameters given where Keras puts the learning rate (torch's ``Adam(params, lr=...)``)."""
    if isinstance(value, (numbers.Real, str, dict, schedules.LearningRateSchedule)):
        return False
    return isinstance(value, (Tensor, Iterable)) and not callable(value)


class _Hyper:
    """A hyper-parameter kept in the parameter groups (torch's place for them), read from the
    group being updated during a step and from the first group otherwise."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, optimizer: Any, owner: type | None = None) -> Any:
        if optimizer is None:
            return self
        group = optimizer.__dict__.get("_active_group") or optimizer.param_groups[0]
        return group[self.name]

    def __set__(self, optimizer: Any, value: Any) -> None:
        optimizer.defaults[self.name] = value
        for group in optimizer.param_groups:
            group[self.name] = value


class Optimizer(torch.optim.Optimizer):
    """Base class: a ``torch.optim.Optimizer`` with Keras' update rules and names.

    Subclasses define ``slot_names()`` (per-parameter state tensors, kept in ``self.state``)
    and ``update_step(gradient, variable, slots, lr)`` (one parameter, under ``torch.no_grad``),
    reading their hyper-parameters as attributes (``self.beta_1``), which live in the
    parameter groups.

    Create it Keras' way without parameters (``compile``/``fit`` or :meth:`build` bind it to a
    model's), or torch's way with them: ``Adam(model.parameters(), lr=1e-3)`` or
    ``Adam(params=[{"params": ..., "lr": ...}, ...], learning_rate=1e-3)``. Each parameter
    group holds ``lr`` (what ``torch.optim.lr_scheduler`` changes) and the Keras-named
    hyper-parameters; ``state_dict()`` adds ``iterations`` to torch's.

    Args:
        learning_rate: the step size: a float, or a schedule ``step -> lr`` (see
            :mod:`rnnkit.training.schedules`) evaluated at ``iterations`` before each update.
        weight_decay: decoupled weight decay (None: none).
        clipnorm / clipvalue / global_clipnorm: gradient clipping (at most one of them).
        name: the optimizer's name.
        params: the parameters (or parameter groups) to bind now.
        lr: torch's name for ``learning_rate``.
    """

    weight_decay = _Hyper()

    def __init__(
        self,
        learning_rate: Any = 0.001,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        name: str | None = None,
        *,
        params: Any = None,
        lr: Any = None,
        **hyper: Any,
    ) -> None:
        owner = type(self).__name__
        if _is_params(learning_rate):
            if params is not None:
                raise TypeError(f"{owner}: parameters given twice (positionally and params=)")
            params, learning_rate = learning_rate, (0.001 if lr is None else lr)
        elif lr is not None:
            learning_rate = lr
        self._schedule: schedules.LearningRateSchedule | Callable[[int], float] | None = None
        if isinstance(learning_rate, schedules.LearningRateSchedule) or callable(learning_rate):
            self._schedule = learning_rate
            first_lr = _float32(learning_rate(0))
        else:
            _check_positive(owner, "learning_rate", learning_rate, allow_zero=True)
            first_lr = _float32(learning_rate)
        if weight_decay is not None:
            _check_positive(owner, "weight_decay", weight_decay, allow_zero=True)
        clips = {"clipnorm": clipnorm, "clipvalue": clipvalue, "global_clipnorm": global_clipnorm}
        given = [k for k, v in clips.items() if v is not None]
        if len(given) > 1:
            raise ValueError(f"{owner}: set at most one of clipnorm, clipvalue and "
                             f"global_clipnorm, got {', '.join(given)}")
        for key in given:
            _check_positive(owner, key, clips[key])
        self.clipnorm = clipnorm
        self.clipvalue = clipvalue
        self.global_clipnorm = global_clipnorm
        self.name = name or owner.lower()
        self.iterations = 0
        self.built = False
        defaults = {"lr": first_lr, "weight_decay": weight_decay, **hyper}
        super().__init__([{"params": []}], defaults)  # bound by build(), or now below
        if params is not None:
            self.build(params)

    # -- learning rate -----------------------------------------------------------------------
    @property
    def learning_rate(self) -> float:
        """The current learning rate (the first group's ``lr``; a schedule's value now)."""
        if self._schedule is not None:
            return _float32(self._schedule(self.iterations))
        return _float32(self.param_groups[0]["lr"])

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        if self._schedule is not None:
            raise TypeError(f"{self.name} was created with a learning rate schedule, so its "
                            "learning rate is not settable")
        _check_positive(type(self).__name__, "learning_rate", value, allow_zero=True)
        self.defaults["lr"] = _float32(value)
        for group in self.param_groups:
            group["lr"] = _float32(value)

    # -- state ------------------------------------------------------------------------------
    def slot_names(self) -> tuple[str, ...]:
        return ()

    @property
    def _params(self) -> list[Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def build(self, params: Iterable[Any]) -> None:
        """Bind to ``params`` (tensors, or torch-style groups: dicts with ``"params"``) and
        create the per-parameter state (zeros)."""
        params = list(params)
        groups = params if params and isinstance(params[0], dict) else [{"params": params}]
        flat = [p for group in groups for p in list(group["params"])]
        if self.built:
            if len(flat) != len(self._params) or any(
                a is not b for a, b in zip(flat, self._params)
            ):
                raise ValueError(
                    f"Optimizer '{self.name}' is already bound to other parameters; create a "
                    "new optimizer for this model."
                )
            return
        for index, param in enumerate(flat):
            if not isinstance(param, Tensor) or not param.is_floating_point():
                raise TypeError(f"Optimizer '{self.name}': parameter {index} is not a floating "
                                f"point tensor ({type(param).__name__})")
        first = {k: v for k, v in self.param_groups[0].items() if k != "params"}
        self.param_groups = []
        for group in groups:  # the first group's settings (a scheduler's too) as defaults
            self.add_param_group({**first, **group, "params": list(group["params"])})
        for param in self._params:
            self._slots_of(param)
        self.iterations = 0
        self.built = True

    def _slots_of(self, param: Tensor) -> dict[str, Tensor]:
        state = self.state[param]
        for slot in self.slot_names():
            if slot not in state:
                state[slot] = torch.zeros_like(param, memory_format=torch.preserve_format)
        return state

    @property
    def variables(self) -> list[Tensor]:
        """Keras' optimizer variables: iterations, learning rate, then the slots."""
        return [
            torch.tensor(self.iterations, dtype=torch.int64),
            torch.tensor(self.learning_rate, dtype=torch.float32),
            *[self.state[p][slot] for slot in self.slot_names() for p in self._params
              if slot in self.state[p]],
        ]

    def state_dict(self) -> dict[str, Any]:
        """torch's ``{"state", "param_groups"}`` plus ``iterations`` (Keras' step count)."""
        saved = super().state_dict()
        saved["iterations"] = self.iterations
        return saved

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (the optimizer must be bound to matching parameters)."""
        if not self.built:
            raise ValueError(f"Optimizer '{self.name}' must be built (bound to the model's "
                             "parameters) before loading its state")
        super().load_state_dict(state_dict)
        self.iterations = int(state_dict.get("iterations", 0))

    def state_tensors(self) -> dict[str, Tensor]:
        """The state for a model file: ``iterations`` and ``{slot}/{index}`` tensors."""
        state = {"iterations": torch.tensor([self.iterations], dtype=torch.int64)}
        for slot in self.slot_names():
            for index, param in enumerate(self._params):
                state[f"{slot}/{index}"] = self._slots_of(param)[slot].detach()
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
            for slot in self.slot_names():
                for index, param in enumerate(self._params):
                    tensor, value = self.state[param][slot], state[f"{slot}/{index}"]
                    if value.shape != tensor.shape:
                        raise ValueError(f"Optimizer '{self.name}': {slot}/{index} has shape "
                                         f"{tuple(value.shape)}, expected {tuple(tensor.shape)}")
                    tensor.copy_(value)
        self.iterations = int(state["iterations"].reshape(-1)[0])

    # -- stepping ---------------------------------------------------------------------------
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """One update of the bound parameters from their ``.grad`` (torch's interface)."""
        if not self.built:
            raise ValueError(f"Optimizer '{self.name}' is not bound to parameters; call "
                             "build(params) (compile/fit do this for a model)")
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        params = self._params
        self.apply([p.grad for p in params], params)
        return loss

    def apply(self, grads: Sequence[Tensor | None], variables: Sequence[Tensor] | None = None) -> None:
        """Keras' ``apply``: clip, decay, update each variable that has a gradient, count."""
        if variables is None:
            variables = self._params
        if not self.built:
            self.build(variables)
        group_of = {id(p): group for group in self.param_groups for p in group["params"]}
        pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]
        if self._schedule is not None:
            for group in self.param_groups:
                group["lr"] = _float32(self._schedule(self.iterations))
        with torch.no_grad():
            clipped = self._clip([g.to(v.dtype) for g, v in pairs])
            try:
                for gradient, (_, variable) in zip(clipped, pairs):
                    group = group_of.get(id(variable))
                    if group is None:
                        raise ValueError(f"Optimizer '{self.name}' was built for other variables")
                    self.__dict__["_active_group"] = group
                    lr = group["lr"]
                    if group.get("weight_decay"):
                        wd = _scalar(group["weight_decay"], variable)
                        variable.sub_(variable * wd * _scalar(lr, variable))
                    self.update_step(gradient, variable, self._slots_of(variable), lr)
            finally:
                self.__dict__["_active_group"] = None
            for variable in variables:  # Keras: every variable's constraint after the update
                constraint = getattr(variable, "constraint", None)
                if constraint is not None:
                    variable.copy_(constraint(variable))
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
    def _hyper_names(self) -> tuple[str, ...]:
        return ()

    def get_config(self) -> dict[str, Any]:
        learning_rate: Any = self.learning_rate
        if isinstance(self._schedule, schedules.LearningRateSchedule):
            learning_rate = schedules.serialize(self._schedule)
        elif self._schedule is not None:
            raise TypeError(f"{self.name}: its learning rate is a plain callable, which cannot "
                            "be written to a config; use an rnnkit.training.schedules schedule")
        return {
            "name": self.name,
            "learning_rate": learning_rate,
            "weight_decay": self.weight_decay,
            "clipnorm": self.clipnorm,
            "clipvalue": self.clipvalue,
            "global_clipnorm": self.global_clipnorm,
            **{key: getattr(self, key) for key in self._hyper_names()},
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Optimizer:
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = schedules.deserialize(config["learning_rate"])
        return cls(**config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(learning_rate={self.learning_rate})"


def _clip_by_norm(gradient: Tensor, clip_norm: float) -> Tensor:
    norm = torch.sqrt(torch.sum(torch.square(gradient)))
    return gradient * clip_norm / torch.clamp(norm, min=clip_norm)


def _scalar(value: float, like: Tensor) -> Tensor:
    return torch.tensor(value, dtype=like.dtype, device=like.device)


class SGD(Optimizer):
    """Gradient descent with optional (Nesterov) momentum; Keras defaults lr 0.01."""

    momentum = _Hyper()
    nesterov = _Hyper()

    def __init__(self, learning_rate: Any = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 name: str = "SGD", **kwargs: Any) -> None:
        if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real) or not (
            0 <= momentum <= 1
        ):
            raise ValueError(f"SGD: momentum must be a float in [0, 1], got {momentum!r}")
        super().__init__(learning_rate=learning_rate, name=name, momentum=float(momentum),
                         nesterov=bool(nesterov), **kwargs)

    def slot_names(self) -> tuple[str, ...]:
        return ("momentum",) if any(g["momentum"] != 0 for g in self.param_groups) else ()

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

    def _hyper_names(self) -> tuple[str, ...]:
        return ("momentum", "nesterov")


class RMSprop(Optimizer):
    """Keras' RMSprop (epsilon inside the square root); defaults lr 0.001, rho 0.9."""

    rho = _Hyper()
    momentum = _Hyper()
    epsilon = _Hyper()
    centered = _Hyper()

    def __init__(self, learning_rate: Any = 0.001, rho: float = 0.9, momentum: float = 0.0,
                 epsilon: float = 1e-7, centered: bool = False, name: str = "rmsprop",
                 **kwargs: Any) -> None:
        _check_positive("RMSprop", "rho", rho, allow_zero=True)
        _check_positive("RMSprop", "momentum", momentum, allow_zero=True)
        _check_positive("RMSprop", "epsilon", epsilon, allow_zero=True)
        super().__init__(learning_rate=learning_rate, name=name, rho=float(rho),
                         momentum=float(momentum), epsilon=float(epsilon),
                         centered=bool(centered), **kwargs)

    def slot_names(self) -> tuple[str, ...]:
        names = ["velocity"]
        if any(g["momentum"] > 0 for g in self.param_groups):
            names.append("momentum")
        if any(g["centered"] for g in self.param_groups):
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

    def _hyper_names(self) -> tuple[str, ...]:
        return ("rho", "momentum", "epsilon", "centered")


class Adam(Optimizer):
    """Keras' Adam (epsilon hat); defaults lr 0.001, beta_1 0.9, beta_2 0.999, eps 1e-7."""

    beta_1 = _Hyper()
    beta_2 = _Hyper()
    epsilon = _Hyper()
    amsgrad = _Hyper()

    def __init__(self, learning_rate: Any = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, amsgrad: bool = False, name: str = "adam",
                 **kwargs: Any) -> None:
        for key, value in (("beta_1", beta_1), ("beta_2", beta_2)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
                0 <= value < 1
            ):
                raise ValueError(f"{type(self).__name__}: {key} must be in [0, 1), got {value!r}")
        _check_positive(type(self).__name__, "epsilon", epsilon, allow_zero=True)
        super().__init__(learning_rate=learning_rate, name=name, beta_1=float(beta_1),
                         beta_2=float(beta_2), epsilon=float(epsilon), amsgrad=bool(amsgrad),
                         **kwargs)

    def slot_names(self) -> tuple[str, ...]:
        amsgrad = any(g["amsgrad"] for g in self.param_groups)
        return ("momentum", "velocity", "velocity_hat") if amsgrad else ("momentum", "velocity")

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

    def _hyper_names(self) -> tuple[str, ...]:
        return ("beta_1", "beta_2", "epsilon", "amsgrad")


class AdamW(Adam):
    """Adam with decoupled weight decay; Keras defaults lr 0.001, weight_decay 0.004."""

    def __init__(self, learning_rate: Any = 0.001, weight_decay: float = 0.004,
                 beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7,
                 amsgrad: bool = False, name: str = "adamw", **kwargs: Any) -> None:
        if weight_decay is None:
            raise ValueError("AdamW: weight_decay must be a number, got None (use Adam instead)")
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2,
                         epsilon=epsilon, amsgrad=amsgrad, name=name,
                         weight_decay=weight_decay, **kwargs)


class TorchOptimizer:
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

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return [] if self.torch_optimizer is None else self.torch_optimizer.param_groups

    def state_dict(self) -> dict[str, Any]:
        """The wrapped optimizer's ``state_dict()`` plus ``iterations``."""
        if self.torch_optimizer is None:
            raise ValueError(f"{self.name} is not bound to parameters yet")
        return {**self.torch_optimizer.state_dict(), "iterations": self.iterations}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if self.torch_optimizer is None:
            raise ValueError(f"{self.name} must be bound to parameters before loading its state")
        state_dict = dict(state_dict)
        self.iterations = int(state_dict.pop("iterations", 0))
        self.torch_optimizer.load_state_dict(state_dict)

    def state_tensors(self) -> dict[str, Tensor]:
        """The full state as tensors for a model file: ``iterations``, ``{index}/{key}``
        (numbers that torch keeps as Python scalars as ``{index}/{key}@scalar``)."""
        if self.torch_optimizer is None:
            return {}
        state: dict[str, Tensor] = {"iterations": torch.tensor([self.iterations])}
        for index, entries in self.torch_optimizer.state_dict()["state"].items():
            for key, value in entries.items():
                if isinstance(value, Tensor):
                    state[f"{index}/{key}"] = value.detach()
                elif isinstance(value, (bool, int, float)):
                    state[f"{index}/{key}@scalar"] = torch.tensor(value)
        return state

    def load_state_tensors(self, state: dict[str, Tensor]) -> None:
        if not state:
            return
        if self.torch_optimizer is None:
            raise ValueError(f"{self.name} must be bound to parameters before loading its state")
        entries: dict[int, dict[str, Any]] = {}
        for key, value in state.items():
            if key == "iterations":
                continue
            index, name = key.split("/", 1)
            if name.endswith("@scalar"):
                entries.setdefault(int(index), {})[name.removesuffix("@scalar")] = value.item()
            else:
                entries.setdefault(int(index), {})[name] = value.clone()
        groups = self.torch_optimizer.state_dict()["param_groups"]
        self.torch_optimizer.load_state_dict({"state": entries, "param_groups": groups})
        self.iterations = int(state["iterations"].reshape(-1)[0])

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


_REGISTRY = _registry.Registry(
    "optimizer", Optimizer, [SGD, RMSprop, Adam, AdamW],
    aliases={cls.__name__.lower(): cls for cls in (SGD, RMSprop, Adam, AdamW)},
    expected="one of ['adam', 'adamw', 'rmsprop', 'sgd'] (any case), an rnnkit optimizer or "
             "a torch.optim optimizer",
)


def _known_name(name: str) -> str:
    """Keras takes optimizer names in any case ("Adam", "ADAM"): the registered spelling."""
    return name.lower() if name.lower() in _REGISTRY.by_name else name


def get(identifier: Any) -> Optimizer | TorchOptimizer:
    """An :class:`Optimizer` from a name (``"adam"``, ``"sgd"``, ``"rmsprop"``, ``"adamw"``,
    any case; Keras' defaults), an rnnkit optimizer, a ``{"class_name", "config"}`` dict, or a
    ``torch.optim`` optimizer class or instance."""
    if isinstance(identifier, (Optimizer, TorchOptimizer)):
        return identifier
    if isinstance(identifier, str):
        return _REGISTRY.lookup(_known_name(identifier))()  # type: ignore[no-any-return]
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if inspect.isclass(identifier) and issubclass(identifier, Optimizer):
        return identifier()
    if isinstance(identifier, torch.optim.Optimizer) or (
        inspect.isclass(identifier) and issubclass(identifier, torch.optim.Optimizer)
    ):
        return TorchOptimizer(identifier)
    raise TypeError(f"Could not interpret optimizer {identifier!r} ({type(identifier).__name__})")


def serialize(optimizer: Optimizer | TorchOptimizer) -> dict[str, Any]:
    """``{"class_name", "config"}``; torch optimizers as ``"torch.optim.<Name>"``."""
    if isinstance(optimizer, TorchOptimizer):
        return {"class_name": f"torch.optim.{optimizer.name}", "config": optimizer.get_config()}
    return _REGISTRY.serialize(optimizer)


def deserialize(config: dict[str, Any]) -> Optimizer | TorchOptimizer:
    """The inverse of :func:`serialize`. Torch optimizers are looked up in ``torch.optim`` only."""
    name = config.get("class_name") if isinstance(config, dict) else None
    options = dict(config.get("config", {})) if isinstance(config, dict) else {}
    if isinstance(name, str) and name.startswith("torch.optim."):
        cls = getattr(torch.optim, name.removeprefix("torch.optim."), None)
        if inspect.isclass(cls) and issubclass(cls, torch.optim.Optimizer):
            return TorchOptimizer(cls, **options)
        raise ValueError(f"Unknown optimizer class {name!r} in config")
    return _REGISTRY.deserialize(  # type: ignore[no-any-return]
        {**config, "class_name": _known_name(name)} if isinstance(name, str) else config)


def get_learning_rate(optimizer: Any) -> float:
    """The learning rate of an rnnkit optimizer or a ``torch.optim`` optimizer."""
    if isinstance(optimizer, torch.optim.Optimizer) and not isinstance(optimizer, Optimizer):
        return float(optimizer.param_groups[0]["lr"])
    return float(optimizer.learning_rate)


def set_learning_rate(optimizer: Any, value: float) -> None:
    """Set the learning rate of an rnnkit optimizer or every group of a torch optimizer."""
    if isinstance(optimizer, torch.optim.Optimizer) and not isinstance(optimizer, Optimizer):
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

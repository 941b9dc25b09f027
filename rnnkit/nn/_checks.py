"""Input checks for the torch.nn-style modules: every error names what was expected and given.

The messages start with the words ``torch.nn`` uses for the same mistake (so code and tests that
match on them keep working) and then add what ``torch.nn`` leaves out: the shapes involved.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .. import _kernels


class ShapeError(ValueError, RuntimeError):
    """A tensor of the wrong rank or size was passed to an ``rnnkit.nn`` module.

    Both a ``ValueError`` (rnnkit's contract) and a ``RuntimeError`` (what ``torch.nn`` raises for
    the same mistake), so ``except RuntimeError`` written for ``torch.nn`` catches it too.
    """


def check_input(x: Tensor, input_size: int, dtype: torch.dtype, name: str) -> None:
    """x: (L, N, H_in), (N, L, H_in) or unbatched (L, H_in) with ``dtype``."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} expects a Tensor or PackedSequence input, got {type(x).__name__}")
    if x.dim() not in (2, 3):
        raise ShapeError(
            f"{name}: Expected input to be 2D or 3D, got {x.dim()}D instead: a 3-D (batched) or "
            f"2-D (unbatched) input, got shape {tuple(x.shape)}"
        )
    if x.shape[-1] != input_size:
        raise ShapeError(
            f"{name}: input.size(-1) must be equal to input_size. Expected {input_size}, "
            f"got {x.shape[-1]} (input shape {tuple(x.shape)})"
        )
    # torch.nn skips this check under autocast, which decides the dtype the kernels see.
    if x.dtype != dtype and not torch.is_autocast_enabled(x.device.type):
        raise ValueError(
            f"{name}: RNN input dtype ({x.dtype}) does not match weight dtype ({dtype}). "
            f"Convert input: input.to({dtype}), or convert model: model.to({x.dtype})"
        )


def check_state(state: object, expected: tuple[int, ...], what: str, batched: bool) -> None:
    """One initial state, (layers * directions, N, size), or (layers * directions, size) unbatched."""
    if not isinstance(state, Tensor):
        raise TypeError(f"{what} must be a Tensor, got {type(state).__name__}")
    if state.dim() != len(expected):
        kind = "batched 3-D" if batched else "unbatched 2-D"
        raise ShapeError(
            f"For {kind} input, hx should also be {len(expected)}-D but got {state.dim()}-D "
            f"tensor: {what} must have shape {expected}, got {tuple(state.shape)}"
        )
    if tuple(state.shape) != expected:
        raise ShapeError(
            f"Expected hidden size {expected}, got {list(state.shape)} for {what} "
            "(num_layers * num_directions, batch, hidden size)"
        )


def lengths_to_mask(lengths: object, batch: int, steps: int, device: torch.device) -> Tensor:
    """(B,) integer lengths, any order -> (T, B) bool mask of real steps."""
    if not isinstance(lengths, Tensor):
        lengths = torch.as_tensor(lengths)
    if lengths.dtype.is_floating_point or lengths.dtype == torch.bool or lengths.is_complex():
        raise TypeError(f"lengths must be an integer tensor, got dtype {lengths.dtype}")
    if lengths.dim() != 1 or lengths.shape[0] != batch:
        raise ShapeError(
            f"lengths must be a 1-D tensor with one entry per sequence (batch size {batch}), "
            f"got shape {tuple(lengths.shape)}"
        )
    if torch.compiler.is_compiling():
        # A traced graph (torch.export/compile) cannot branch on values; check them as it runs.
        in_range = ((lengths >= 0) & (lengths <= steps)).all()
        torch._assert_async(in_range, "lengths must lie in [0, T] (the padded sequence length)")
        return torch.arange(steps, device=device).unsqueeze(1) < lengths.to(device).unsqueeze(0)
    mask, low, high = _kernels.prefix_mask(lengths, steps)
    if low < 0 or high > steps:
        raise ValueError(
            f"lengths must lie in [0, {steps}] (the padded sequence length), "
            f"got values from {low} to {high}"
        )
    return mask.to(device)


def check_mask(mask: object, batch: int, steps: int, device: torch.device) -> Tensor:
    """(B, T) bool mask -> (T, B) bool mask, time-major as the kernels take it."""
    if not isinstance(mask, Tensor):
        raise TypeError(f"mask must be a bool Tensor of shape (batch, time), got {type(mask).__name__}")
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must have dtype torch.bool, got {mask.dtype}")
    if tuple(mask.shape) != (batch, steps):
        raise ShapeError(
            f"mask must have shape (batch, time) = ({batch}, {steps}), got {tuple(mask.shape)}"
        )
    return mask.to(device).t()


def step_mask(lengths: object, mask: object, batch: int, steps: int, device: torch.device,
              name: str) -> Tensor | None:
    """The (T, B) bool mask of real steps from ``lengths`` or ``mask`` (at most one of them),
    or None for neither."""
    if lengths is not None and mask is not None:
        raise ValueError(f"{name}: pass either lengths or mask, not both")
    if lengths is not None:
        return lengths_to_mask(lengths, batch, steps, device)
    if mask is not None:
        return check_mask(mask, batch, steps, device)
    return None

"""Input checks for the torch.nn-style modules: every error names what was expected and given."""

from __future__ import annotations

import torch
from torch import Tensor

from .. import _kernels


def check_input(x: Tensor, input_size: int, dtype: torch.dtype, name: str) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} expects a Tensor or PackedSequence input, got {type(x).__name__}")
    if x.dim() not in (2, 3):
        raise ValueError(
            f"{name} expects a 3-D (batched) or 2-D (unbatched) input, got a {x.dim()}-D tensor "
            f"of shape {tuple(x.shape)}"
        )
    if x.shape[-1] != input_size:
        raise ValueError(
            f"{name} input's last dimension must equal input_size={input_size}, "
            f"got {x.shape[-1]} (input shape {tuple(x.shape)})"
        )
    if x.dtype != dtype:
        raise ValueError(
            f"{name} input dtype ({x.dtype}) does not match the parameters' dtype ({dtype}); "
            f"convert the input with .to({dtype}) or the module with .to({x.dtype})"
        )


def check_state(state: Tensor, expected: tuple[int, ...], what: str, batched: bool) -> None:
    if not isinstance(state, Tensor):
        raise TypeError(f"{what} must be a Tensor, got {type(state).__name__}")
    if state.dim() != len(expected):
        kind = "batched 3-D" if batched else "unbatched 2-D"
        raise ValueError(
            f"For {kind} input, {what} must be {len(expected)}-D of shape {expected}, "
            f"got a {state.dim()}-D tensor of shape {tuple(state.shape)}"
        )
    if tuple(state.shape) != expected:
        raise ValueError(f"Expected {what} of shape {expected}, got {tuple(state.shape)}")


def lengths_to_mask(lengths: object, batch: int, steps: int, device: torch.device) -> Tensor:
    """(B,) integer lengths, any order -> (T, B) bool mask of real steps."""
    if not isinstance(lengths, Tensor):
        lengths = torch.as_tensor(lengths)
    if lengths.dtype.is_floating_point or lengths.dtype == torch.bool or lengths.is_complex():
        raise TypeError(f"lengths must be an integer tensor, got dtype {lengths.dtype}")
    if lengths.dim() != 1 or lengths.shape[0] != batch:
        raise ValueError(
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
        raise ValueError(
            f"mask must have shape (batch, time) = ({batch}, {steps}), got {tuple(mask.shape)}"
        )
    return mask.to(device).t()

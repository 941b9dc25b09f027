"""rnnkit: recurrent neural networks on PyTorch.

Fused RNN/GRU/LSTM kernels with hand-written backward passes, a ``torch.nn`` drop-in
(``rnnkit.nn``) and a Keras-style front end (``rnnkit.layers``, ``rnnkit.Sequential``).
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]

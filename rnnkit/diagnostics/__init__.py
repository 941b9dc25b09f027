"""See inside a recurrent network: gradient flow through time, state saturation, plots.

- :func:`trace` runs a model on one batch and records, for every recurrent layer (and both
  directions of a ``Bidirectional``), the state after every step, the gates, and the exact
  gradient of the loss with respect to each step's state, ``dL/dh_t``;
  :func:`gradient_flow` gives ``||dL/dh_t||`` per layer.
- :func:`recurrent_matrices`, :func:`spectral_radius`, :func:`largest_singular_value`: the
  numbers that bound how the gradient changes from one step to the previous one.
- :func:`explain`: a short plain-language reading of a trace.
- :class:`DiagnosticsCallback`: the same during ``fit``, every N epochs.
- :mod:`rnnkit.diagnostics.plots`: gradient norm vs time (log scale), heat maps of the hidden
  state, saturation over training (PNG).
- ``python -m rnnkit.diagnostics.demo`` (or ``rnnkit diagnose --demo``): SimpleRNN vs GRU vs
  LSTM on the adding problem, with the same budget.

Example::

    >>> import numpy as np, rnnkit as rk
    >>> from rnnkit.diagnostics import trace, explain
    >>> model = rk.Sequential([rk.layers.SimpleRNN(8, input_shape=(50, 1)), rk.layers.Dense(1)])
    >>> result = trace(model, np.random.rand(4, 50, 1), np.zeros((4, 1)), loss="mse")
    >>> result["simple_rnn"].grad_norm().shape
    (50,)
"""

from ._callback import DiagnosticsCallback, summarize
from ._reading import explain, gradient_ratio
from ._spectra import RecurrentMatrix, largest_singular_value, recurrent_matrices, spectral_radius
from ._trace import LayerTrace, Trace, gradient_flow, trace
from .plots import gradient_flow_plot, hidden_states_plot, saturation_history_plot

__all__ = [
    "DiagnosticsCallback",
    "LayerTrace",
    "RecurrentMatrix",
    "Trace",
    "explain",
    "gradient_flow",
    "gradient_flow_plot",
    "gradient_ratio",
    "hidden_states_plot",
    "largest_singular_value",
    "recurrent_matrices",
    "saturation_history_plot",
    "spectral_radius",
    "summarize",
    "trace",
]

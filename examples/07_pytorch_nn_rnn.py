"""Seed 004: PyTorch's ``nn.RNN`` on one-hot "hello" data, with ``rnnkit.nn.RNN`` as the drop-in.

    torch.manual_seed(0)
    input_data: (3, 5, 4) one-hot characters ([h,e,l,l,o], [e,o,l,l,l], [l,l,e,e,l])
    rnn = rnnkit.nn.RNN(input_size=4, hidden_size=2)      # the same init as torch.nn.RNN
    outputs, _status = rnn(input_data)                    # outputs (3, 5, 2), _status (1, 5, 2)

Note what the seed's comment glosses over: without ``batch_first=True`` the first axis is time,
so PyTorch reads this tensor as 3 steps of a batch of 5 (and ``_status`` is (1, 5, 2)). The
outputs are the same as the seed printed (same seed, same initialisation order) and as
``torch.nn.RNN`` with the same state_dict. ``batch_first=True`` reads it as the seed meant:
3 sequences of 5 steps.

Run: ``python examples/07_pytorch_nn_rnn.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

import rnnkit

input_size = 4
hidden_size = 2

h = [1, 0, 0, 0]
e = [0, 1, 0, 0]
l = [0, 0, 1, 0]  # noqa: E741 - the seed's name for the letter
o = [0, 0, 0, 1]


def main(seed: int = 0, verbose: bool = True) -> dict[str, Any]:
    torch.manual_seed(seed)
    say = print if verbose else (lambda *args, **kwargs: None)

    input_data_np = np.array([[h, e, l, l, o], [e, o, l, l, l], [l, l, e, e, l]],
                             dtype=np.float32)
    input_data = torch.Tensor(input_data_np)

    rnn = rnnkit.nn.RNN(input_size, hidden_size)
    outputs, _status = rnn(input_data)
    say(outputs)
    say(outputs.size())

    # torch.nn.RNN with the same weights, and the batch-first reading
    reference_rnn = torch.nn.RNN(input_size, hidden_size)
    reference_rnn.load_state_dict(rnn.state_dict())
    torch_outputs, torch_status = reference_rnn(input_data)
    batch_first = rnnkit.nn.RNN(input_size, hidden_size, batch_first=True)
    batch_first.load_state_dict(rnn.state_dict())
    bf_outputs, bf_status = batch_first(input_data)

    return {
        "outputs": outputs.detach().numpy(),
        "status": _status.detach().numpy(),
        "torch_outputs": torch_outputs.detach().numpy(),
        "torch_status": torch_status.detach().numpy(),
        "batch_first_outputs": bf_outputs.detach().numpy(),
        "batch_first_status": bf_status.detach().numpy(),
        "parameter_names": [name for name, _ in rnn.named_parameters()],
    }


if __name__ == "__main__":
    main()

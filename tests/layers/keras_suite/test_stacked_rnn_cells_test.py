"""Keras 3.15.1's keras/src/layers/rnn/stacked_rnn_cells_test.py, ported (every test)."""

from __future__ import annotations

import numpy as np
import pytest

from rnnkit.layers import RNN, GRUCell, LSTMCell, SimpleRNNCell

from ._harness import close, run_layer_test
from .test_rnn_test import OneStateRNNCell, TwoStatesRNNCell


def _rnn_of(make_cells):
    def make(**kwargs):
        kwargs.pop("cell", None)
        return RNN(make_cells(), **kwargs)

    make.from_config = RNN.from_config  # type: ignore[attr-defined]
    return make


@pytest.mark.parametrize("make_cells,return_sequences,weights", [
    (lambda: [OneStateRNNCell(3), OneStateRNNCell(4), OneStateRNNCell(5)], False, 6),
    (lambda: [OneStateRNNCell(3), OneStateRNNCell(4), OneStateRNNCell(5)], True, 6),
    (lambda: [TwoStatesRNNCell(3), TwoStatesRNNCell(4), TwoStatesRNNCell(5)], False, 9),
    (lambda: [TwoStatesRNNCell(3), TwoStatesRNNCell(4), TwoStatesRNNCell(5)], True, 9),
    (lambda: [SimpleRNNCell(u, dropout=0.1, recurrent_dropout=0.1) for u in (3, 4, 5)], True, 9),
    (lambda: [GRUCell(u, dropout=0.1, recurrent_dropout=0.1) for u in (3, 4, 5)], True, 9),
    (lambda: [LSTMCell(u, dropout=0.1, recurrent_dropout=0.1) for u in (3, 4, 5)], True, 9),
])
def test_basics(make_cells, return_sequences, weights):
    run_layer_test(_rnn_of(make_cells), init_kwargs={"return_sequences": return_sequences},
                   input_shape=(2, 3, 4),
                   expected_output_shape=(2, 3, 5) if return_sequences else (2, 5),
                   expected_num_trainable_weights=weights, expected_num_non_trainable_weights=0,
                   supports_masking=True)


SEQUENCE = np.arange(24).reshape((2, 3, 4)).astype("float32")


def test_correctness_single_state_stack():
    last = [[786.0, 786.0], [4386.0, 4386.0]]
    sequence = [[[18.0, 18.0], [156.0, 156.0], [786.0, 786.0]],
                [[162.0, 162.0], [1020.0, 1020.0], [4386.0, 4386.0]]]
    close(RNN([OneStateRNNCell(3), OneStateRNNCell(2)])(SEQUENCE), last)
    close(RNN([OneStateRNNCell(3), OneStateRNNCell(2)], return_sequences=True)(SEQUENCE),
          sequence)
    output, state_1, state_2 = RNN([OneStateRNNCell(3), OneStateRNNCell(2)],
                                   return_state=True)(SEQUENCE)
    close(output, last)
    close(state_1, [[158.0] * 3, [782.0] * 3])
    close(state_2, last)
    output, state_1, state_2 = RNN([OneStateRNNCell(3), OneStateRNNCell(2)],
                                   return_sequences=True, return_state=True)(SEQUENCE)
    close(output, sequence)
    close(state_1, [[158.0] * 3, [782.0] * 3])
    close(state_2, last)


def test_correctness_two_states_stack():
    last = [[3144.0, 3144.0], [17544.0, 17544.0]]
    close(RNN([TwoStatesRNNCell(3), TwoStatesRNNCell(2)])(SEQUENCE), last)
    close(RNN([TwoStatesRNNCell(3), TwoStatesRNNCell(2)], return_sequences=True)(SEQUENCE),
          [[[72.0, 72.0], [624.0, 624.0], [3144.0, 3144.0]],
           [[648.0, 648.0], [4080.0, 4080.0], [17544.0, 17544.0]]])
    output, state_1, state_2 = RNN([TwoStatesRNNCell(3), TwoStatesRNNCell(2)],
                                   return_state=True)(SEQUENCE)
    close(output, last)
    close(state_1[0], [[158.0] * 3, [782.0] * 3])
    close(state_1[1], [[158.0] * 3, [782.0] * 3])
    close(state_2[0], [[1572.0] * 2, [8772.0] * 2])
    close(state_2[1], [[1572.0] * 2, [8772.0] * 2])


def test_statefullness_single_state_stack():
    layer = RNN([OneStateRNNCell(3), OneStateRNNCell(2)], stateful=True)
    layer(SEQUENCE)
    close(layer(SEQUENCE), [[34092.0, 34092.0], [173196.0, 173196.0]])


def test_statefullness_two_states_stack():
    layer = RNN([TwoStatesRNNCell(3), TwoStatesRNNCell(2)], stateful=True)
    layer(SEQUENCE)
    close(layer(SEQUENCE), [[136368.0, 136368.0], [692784.0, 692784.0]])


def test_return_state_stacked_lstm_cell():
    layer = RNN([LSTMCell(10), LSTMCell(10)], return_state=True)
    out = layer(np.zeros((2, 3, 5)))
    assert len(out) == 3
    assert tuple(out[0].shape) == (2, 10)
    assert [tuple(t.shape) for t in out[1]] == [(2, 10), (2, 10)]
    assert [tuple(t.shape) for t in out[2]] == [(2, 10), (2, 10)]
    shape = layer.compute_output_shape((2, 3, 5))
    assert len(shape) == 3 and shape[0] == (2, 10)
    assert shape[1] == [(2, 10), (2, 10)] and shape[2] == [(2, 10), (2, 10)]


def test_stacked_lstm_cell_mask():
    sequence = np.ones((2, 3, 4))
    mask = np.array([[True, True, True], [True, True, False]])
    cells = [LSTMCell(units=1, kernel_initializer="ones", recurrent_initializer="ones")
             for _ in range(2)]
    close(RNN(cells)(sequence, mask=mask), [[0.7793], [0.5998]], atol=1e-4)

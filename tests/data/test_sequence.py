"""pad_sequences and to_categorical: Keras' semantics, checked against values worked out by hand.

(A throwaway script also compared pad_sequences with keras.utils.pad_sequences 3.15 on 57,603
random combinations of lengths, element shapes, maxlen, dtype, padding, truncating and value:
all equal. Keras is not a test dependency, so the pinned values below stand in for it.)
"""

from __future__ import annotations

import numpy as np
import pytest

from rnnkit.data import pad_sequences, to_categorical

SEQS = [[1], [2, 3], [4, 5, 6]]


# pad_sequences ------------------------------------------------------------------------------


def test_defaults_pre_pad_to_longest_as_int32() -> None:
    out = pad_sequences(SEQS)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, [[0, 0, 1], [0, 2, 3], [4, 5, 6]])


def test_post_padding_and_value() -> None:
    np.testing.assert_array_equal(
        pad_sequences(SEQS, padding="post", value=-1), [[1, -1, -1], [2, 3, -1], [4, 5, 6]]
    )


@pytest.mark.parametrize(
    ("padding", "truncating", "expected"),
    [
        ("pre", "pre", [[0, 1], [2, 3], [5, 6]]),  # drop from the front
        ("pre", "post", [[0, 1], [2, 3], [4, 5]]),  # drop from the back
        ("post", "pre", [[1, 0], [2, 3], [5, 6]]),
        ("post", "post", [[1, 0], [2, 3], [4, 5]]),
    ],
)
def test_maxlen_shorter_truncates(padding: str, truncating: str, expected: list) -> None:
    out = pad_sequences(SEQS, maxlen=2, padding=padding, truncating=truncating)
    np.testing.assert_array_equal(out, expected)


def test_maxlen_longer_pads_every_sequence() -> None:
    np.testing.assert_array_equal(
        pad_sequences(SEQS, maxlen=5), [[0, 0, 0, 0, 1], [0, 0, 0, 2, 3], [0, 0, 4, 5, 6]]
    )


def test_float_dtype_keeps_fractions_and_int_dtype_truncates_them() -> None:
    seqs = [[0.5, 1.25], [2.75]]
    out = pad_sequences(seqs, dtype="float32", value=-0.5)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[0.5, 1.25], [-0.5, 2.75]])
    # As Keras (and NumPy's cast): int32 drops the fractional part.
    np.testing.assert_array_equal(pad_sequences(seqs), [[0, 1], [0, 2]])


def test_sequences_of_vectors_pad_with_whole_rows() -> None:
    seqs = [np.array([[1.0, 2.0]]), np.array([[3.0, 4.0], [5.0, 6.0], [7.0, 8.0]])]
    out = pad_sequences(seqs, maxlen=2, dtype="float32", padding="post", truncating="post")
    assert out.shape == (2, 2, 2)
    np.testing.assert_array_equal(out, [[[1, 2], [0, 0]], [[3, 4], [5, 6]]])
    out = pad_sequences(seqs, dtype="float32", value=9)  # maxlen 3, pre
    np.testing.assert_array_equal(out[0], [[9, 9], [9, 9], [1, 2]])
    np.testing.assert_array_equal(out[1], [[3, 4], [5, 6], [7, 8]])


def test_empty_sequences_become_all_padding() -> None:
    out = pad_sequences([[], [1, 2], []], value=7)
    np.testing.assert_array_equal(out, [[7, 7], [1, 2], [7, 7]])
    # The element shape comes from the first non-empty sequence.
    out = pad_sequences([[], [[1, 2]]])
    assert out.shape == (2, 1, 2)
    np.testing.assert_array_equal(out, [[[0, 0]], [[1, 2]]])


def test_edge_sizes() -> None:
    assert pad_sequences([[1, 2], [3]], maxlen=0).shape == (2, 0)
    assert pad_sequences([]).shape == (0, 0)
    assert pad_sequences([], maxlen=4).shape == (0, 4)
    np.testing.assert_array_equal(pad_sequences(np.array([[1, 2], [3, 4]])), [[1, 2], [3, 4]])


def test_strings_with_object_and_string_dtypes() -> None:
    out = pad_sequences([["a", "bb"], ["ccc"]], dtype=object, value="<pad>")
    assert out.dtype == object
    assert out.tolist() == [["a", "bb"], ["<pad>", "ccc"]]
    out = pad_sequences([["a", "bbb"]], maxlen=3, dtype="<U2", value="x")
    assert out.tolist() == [["x", "a", "bb"]]  # NumPy's <U2 cuts "bbb", as in Keras
    assert pad_sequences([["a"]], maxlen=2, dtype="object", value="z").tolist() == [["z", "a"]]


def test_pad_sequences_errors() -> None:
    with pytest.raises(ValueError, match='Padding type "middle" not understood'):
        pad_sequences(SEQS, padding="middle")
    with pytest.raises(ValueError, match='Truncating type "mid" not understood'):
        pad_sequences(SEQS, truncating="mid")
    with pytest.raises(ValueError, match="is not compatible with `value`'s type"):
        pad_sequences([["a"]], value="<pad>")
    with pytest.raises(ValueError, match="must be a list of iterables. Found non-iterable: 3"):
        pad_sequences([[1], 3])
    with pytest.raises(ValueError, match="must be a sized iterable"):
        pad_sequences(iter([[1]]))
    with pytest.raises(
        ValueError, match=r"Shape of sample \(3,\) of sequence at position 1 .* \(2,\)"
    ):
        pad_sequences([[[1, 2]], [[1, 2, 3]]])
    with pytest.raises(ValueError, match="sequence at position 0 differ in shape"):
        pad_sequences([[[1, 2], [3]]])
    with pytest.raises(ValueError, match="maxlen must be >= 0, got -1"):
        pad_sequences(SEQS, maxlen=-1)
    with pytest.raises(TypeError, match="maxlen must be an integer, got 2.0"):
        pad_sequences(SEQS, maxlen=2.0)


# to_categorical -----------------------------------------------------------------------------


def test_one_hot_rows_as_float32() -> None:
    out = to_categorical([0, 2, 1])
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[1, 0, 0], [0, 0, 1], [0, 1, 0]])


def test_num_classes_and_dtype() -> None:
    out = to_categorical(np.array([1, 0]), num_classes=4, dtype="int64")
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, [[0, 1, 0, 0], [1, 0, 0, 0]])


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ((4,), (4, 3)),
        ((4, 1), (4, 3)),  # a trailing axis of 1 is dropped
        ((1,), (1, 3)),  # ... but not when it is the only axis
        ((2, 2), (2, 2, 3)),
        ((2, 2, 1), (2, 2, 3)),
        ((), (3,)),
    ],
)
def test_shapes(shape: tuple, expected: tuple) -> None:
    y = np.full(shape, 2)
    out = to_categorical(y, num_classes=3)
    assert out.shape == expected
    assert (out[..., 2] == 1).all() and out.sum() == max(y.size, 1)


def test_integral_floats_and_bools_are_labels() -> None:
    np.testing.assert_array_equal(to_categorical([1.0, 0.0]), [[0, 1], [1, 0]])
    np.testing.assert_array_equal(to_categorical([True, False]), [[0, 1], [1, 0]])


def test_empty_labels_with_num_classes() -> None:
    assert to_categorical([], num_classes=3).shape == (0, 3)


def test_to_categorical_errors() -> None:
    with pytest.raises(ValueError, match="class labels must be >= 0, got -1"):
        to_categorical([0, -1])
    with pytest.raises(
        ValueError,
        match=r"class label 3 is out of range for num_classes=3 \(labels must lie in \[0, 2\]\)",
    ):
        to_categorical([0, 3], num_classes=3)
    with pytest.raises(ValueError, match="integer class labels, got 0.5"):
        to_categorical([0.5, 1.0])
    with pytest.raises(ValueError, match="integer class labels, got nan"):
        to_categorical([np.nan])
    with pytest.raises(TypeError, match="integer class labels, got dtype <U1"):
        to_categorical(["a"])
    with pytest.raises(ValueError, match="num_classes must be >= 1, got 0"):
        to_categorical([0], num_classes=0)
    with pytest.raises(ValueError, match="cannot infer num_classes from an empty y"):
        to_categorical([])

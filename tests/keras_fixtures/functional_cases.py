"""Functional-model cases written once for both Keras 3 and rnnkit.

Each builder takes the framework's ``Input``, ``layers`` and ``Model`` (``keras.Input,
keras.layers, keras.Model`` in the generator; ``rk.Input, rk.layers, rk.Model`` in the tests),
so the fixture and the test build the same graph with the same layer names. Nothing here
imports Keras. ``data(rng)`` gives the inputs (and targets) the fixture was made with.
"""

from __future__ import annotations

from typing import Any

import numpy as np

ENC_VOCAB, DEC_VOCAB, UNITS = 7, 6, 5


def _one_hot(rng: np.random.Generator, batch: int, steps: int, depth: int) -> np.ndarray:
    ids = rng.integers(0, depth, size=(batch, steps))
    return np.eye(depth, dtype="float32")[ids]


def _ids(rng: np.random.Generator, batch: int, steps: int, vocab: int,
         lengths: tuple[int, ...]) -> np.ndarray:
    ids = rng.integers(1, vocab, size=(batch, steps)).astype("int32")
    for row, length in enumerate(lengths):
        ids[row, length:] = 0
    return ids


def seq2seq_lstm(Input: Any, L: Any, Model: Any) -> Any:  # noqa: N803 - Keras' names
    enc_in = Input(shape=(None, ENC_VOCAB), name="encoder_inputs")
    dec_in = Input(shape=(None, DEC_VOCAB), name="decoder_inputs")
    _, h, c = L.LSTM(UNITS, return_state=True, name="encoder")(enc_in)
    seq = L.LSTM(UNITS, return_sequences=True, name="decoder")(dec_in, initial_state=[h, c])
    out = L.Dense(DEC_VOCAB, activation="softmax", name="probs")(seq)
    return Model([enc_in, dec_in], out, name="seq2seq_lstm")


def seq2seq_gru(Input: Any, L: Any, Model: Any) -> Any:  # noqa: N803
    enc_in = Input(shape=(None, ENC_VOCAB), name="encoder_inputs")
    dec_in = Input(shape=(None, DEC_VOCAB), name="decoder_inputs")
    _, h = L.GRU(UNITS, return_state=True, name="encoder")(enc_in)
    seq = L.GRU(UNITS, return_sequences=True, name="decoder")(dec_in, initial_state=h)
    out = L.Dense(DEC_VOCAB, activation="softmax", name="probs")(seq)
    return Model([enc_in, dec_in], out, name="seq2seq_gru")


def bidi_encoder(Input: Any, L: Any, Model: Any) -> Any:  # noqa: N803
    enc_in = Input(shape=(None, ENC_VOCAB), name="encoder_inputs")
    dec_in = Input(shape=(None, DEC_VOCAB), name="decoder_inputs")
    _, fh, fc, bh, bc = L.Bidirectional(L.LSTM(UNITS, return_state=True, name="enc_lstm"),
                                        name="encoder")(enc_in)
    h = L.Concatenate(name="state_h")([fh, bh])
    c = L.Concatenate(name="state_c")([fc, bc])
    seq = L.LSTM(2 * UNITS, return_sequences=True, name="decoder")(dec_in, initial_state=[h, c])
    out = L.Dense(DEC_VOCAB, activation="softmax", name="probs")(seq)
    return Model([enc_in, dec_in], out, name="bidi_encoder")


def two_inputs(Input: Any, L: Any, Model: Any) -> Any:  # noqa: N803
    seq_in = Input(shape=(6, 3), name="sequence")
    meta_in = Input(shape=(4,), name="meta")
    h = L.GRU(UNITS, name="gru")(seq_in)
    m = L.Dense(3, activation="tanh", name="meta_dense")(meta_in)
    joined = L.Concatenate(name="joined")([h, m])
    cls = L.Dense(3, activation="softmax", name="cls")(joined)
    reg = L.Dense(1, name="reg")(joined)
    return Model([seq_in, meta_in], [cls, reg], name="two_inputs")


def shared_layers(Input: Any, L: Any, Model: Any) -> Any:  # noqa: N803
    left = Input(shape=(None,), dtype="int32", name="left")
    right = Input(shape=(None,), dtype="int32", name="right")
    embed = L.Embedding(ENC_VOCAB, 4, mask_zero=True, name="embed")
    encode = L.LSTM(UNITS, name="shared_lstm")
    a, b = encode(embed(left)), encode(embed(right))
    added = L.Add(name="add")([a, b])
    dot = L.Dot(axes=1, normalize=True, name="cosine")([a, b])
    joined = L.Concatenate(name="joined")([added, dot])
    out = L.Dense(1, activation="sigmoid", name="same")(joined)
    return Model([left, right], out, name="shared_layers")


def attention_luong(Input: Any, L: Any, Model: Any) -> Any:  # noqa: N803
    enc_in = Input(shape=(None,), dtype="int32", name="encoder_inputs")
    dec_in = Input(shape=(None,), dtype="int32", name="decoder_inputs")
    enc_emb = L.Embedding(ENC_VOCAB, 4, mask_zero=True, name="enc_embed")(enc_in)
    enc_seq, h, c = L.LSTM(UNITS, return_sequences=True, return_state=True,
                           name="encoder")(enc_emb)
    dec_emb = L.Embedding(DEC_VOCAB, 4, name="dec_embed")(dec_in)
    dec_seq = L.LSTM(UNITS, return_sequences=True, name="decoder")(dec_emb,
                                                                   initial_state=[h, c])
    context = L.Attention(use_scale=True, name="attention")([dec_seq, enc_seq])
    joined = L.Concatenate(name="joined")([dec_seq, context])
    out = L.Dense(DEC_VOCAB, activation="softmax", name="probs")(joined)
    return Model([enc_in, dec_in], out, name="attention_luong")


def attention_bahdanau(Input: Any, L: Any, Model: Any) -> Any:  # noqa: N803
    enc_in = Input(shape=(None,), dtype="int32", name="encoder_inputs")
    dec_in = Input(shape=(None,), dtype="int32", name="decoder_inputs")
    embed = L.Embedding(ENC_VOCAB, 4, mask_zero=True, name="embed")
    enc_seq, h = L.GRU(UNITS, return_sequences=True, return_state=True,
                       name="encoder")(embed(enc_in))
    dec_seq = L.GRU(UNITS, return_sequences=True, name="decoder")(embed(dec_in), initial_state=h)
    context, scores = L.AdditiveAttention(name="attention")([dec_seq, enc_seq],
                                                           return_attention_scores=True)
    joined = L.Concatenate(name="joined")([dec_seq, context])
    out = L.Dense(DEC_VOCAB, activation="softmax", name="probs")(joined)
    return Model([enc_in, dec_in], [out, scores], name="attention_bahdanau")


def masked_seq2seq(Input: Any, L: Any, Model: Any) -> Any:  # noqa: N803
    """Embedding(mask_zero=True) shared by encoder and decoder; by Keras 3's rule the decoder
    LSTM (called with initial_state, two tensor arguments) gets no mask, but its output keeps
    the embedding's mask, which reaches the loss."""
    enc_in = Input(shape=(None,), dtype="int32", name="encoder_inputs")
    dec_in = Input(shape=(None,), dtype="int32", name="decoder_inputs")
    embed = L.Embedding(ENC_VOCAB, 4, mask_zero=True, name="embed")
    _, h, c = L.LSTM(UNITS, return_state=True, name="encoder")(embed(enc_in))
    seq = L.LSTM(UNITS, return_sequences=True, name="decoder")(embed(dec_in),
                                                              initial_state=[h, c])
    out = L.TimeDistributed(L.Dense(DEC_VOCAB, activation="softmax", name="dense"),
                            name="probs")(seq)
    return Model([enc_in, dec_in], out, name="masked_seq2seq")


def _seq2seq_data(rng: np.random.Generator) -> dict[str, Any]:
    x = [_one_hot(rng, 8, 5, ENC_VOCAB), _one_hot(rng, 8, 4, DEC_VOCAB)]
    y = _one_hot(rng, 8, 4, DEC_VOCAB)
    return {"x": x, "y": y, "loss": "categorical_crossentropy", "metrics": ["accuracy"]}


def _ids_data(rng: np.random.Generator, dec_vocab: int = DEC_VOCAB) -> dict[str, Any]:
    lengths = (5, 3, 1, 4, 5, 2, 3, 4)
    x = [_ids(rng, 8, 5, ENC_VOCAB, lengths), _ids(rng, 8, 4, min(dec_vocab, ENC_VOCAB),
                                                   (4, 2, 3, 1, 4, 4, 2, 3))]
    y = rng.integers(0, DEC_VOCAB, size=(8, 4)).astype("int32")
    return {"x": x, "y": y, "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]}


def _two_inputs_data(rng: np.random.Generator) -> dict[str, Any]:
    x = [rng.uniform(-1, 1, size=(8, 6, 3)).astype("float32"),
         rng.uniform(-1, 1, size=(8, 4)).astype("float32")]
    y = {"cls": rng.integers(0, 3, size=(8,)).astype("int32"),
         "reg": rng.uniform(-1, 1, size=(8, 1)).astype("float32")}
    return {"x": x, "y": y, "loss": {"cls": "sparse_categorical_crossentropy", "reg": "mse"},
            "loss_weights": {"cls": 1.0, "reg": 0.5},
            "metrics": {"cls": ["accuracy"], "reg": ["mae"]}}


def _shared_data(rng: np.random.Generator) -> dict[str, Any]:
    lengths = (5, 3, 1, 4, 5, 2, 3, 4)
    x = [_ids(rng, 8, 5, ENC_VOCAB, lengths), _ids(rng, 8, 5, ENC_VOCAB, lengths[::-1])]
    y = rng.integers(0, 2, size=(8, 1)).astype("float32")
    return {"x": x, "y": y, "loss": "binary_crossentropy", "metrics": ["accuracy"]}


def _bahdanau_data(rng: np.random.Generator) -> dict[str, Any]:
    data = _ids_data(rng)
    data["loss"] = ["sparse_categorical_crossentropy", None]
    data["y"] = [data["y"], np.zeros((8, 4, 5), "float32")]
    data["metrics"] = None
    return data


CASES: dict[str, tuple[Any, Any]] = {
    "seq2seq_lstm": (seq2seq_lstm, _seq2seq_data),
    "seq2seq_gru": (seq2seq_gru, _seq2seq_data),
    "bidi_encoder": (bidi_encoder, _seq2seq_data),
    "two_inputs": (two_inputs, _two_inputs_data),
    "shared_layers": (shared_layers, _shared_data),
    "attention_luong": (attention_luong, _ids_data),
    "attention_bahdanau": (attention_bahdanau, _bahdanau_data),
    "masked_seq2seq": (masked_seq2seq, _ids_data),
}

LEARNING_RATE = 0.1
BATCH_SIZE = 4
EPOCHS = 2


# ----------------------------------------------------------------------------- single layers
# (name, layer class, constructor kwargs, call kwargs, input shapes, masks): masks are None or
# a list with, per input, None or the lengths of its rows (True up to the length).
LAYER_CASES: list[tuple[str, str, dict, dict, list, Any]] = [
    ("concat_last", "Concatenate", {}, {}, [(3, 4, 2), (3, 4, 5)], None),
    ("concat_axis1", "Concatenate", {"axis": 1}, {}, [(3, 2, 4), (3, 5, 4)], None),
    ("concat_masks", "Concatenate", {}, {}, [(3, 4, 2), (3, 4, 5)], [(4, 2, 1), None]),
    ("add_three", "Add", {}, {}, [(3, 4, 2)] * 3, None),
    ("add_masks", "Add", {}, {}, [(3, 4, 2)] * 2, [(4, 2, 1), (3, 3, 0)]),
    ("dot_vectors", "Dot", {"axes": 1}, {}, [(3, 4), (3, 4)], None),
    ("dot_normalize", "Dot", {"axes": -1, "normalize": True}, {}, [(3, 4), (3, 4)], None),
    ("dot_sequences", "Dot", {"axes": (2, 2)}, {}, [(3, 4, 5), (3, 6, 5)], None),
    ("dot_axes_1_2", "Dot", {"axes": (1, 2)}, {}, [(3, 4, 5), (3, 6, 4)], None),
    ("luong", "Attention", {}, {}, [(3, 4, 5), (3, 6, 5)], None),
    ("luong_scale_scores", "Attention", {"use_scale": True}, {"return_attention_scores": True},
     [(3, 4, 5), (3, 6, 5)], None),
    ("luong_key", "Attention", {"use_scale": True}, {}, [(3, 4, 5), (3, 6, 3), (3, 6, 5)], None),
    ("luong_masks", "Attention", {"use_scale": True}, {"return_attention_scores": True},
     [(3, 4, 5), (3, 6, 5)], [(4, 2, 1), (6, 3, 1)]),
    ("luong_causal", "Attention", {}, {"use_causal_mask": True, "return_attention_scores": True},
     [(3, 5, 4), (3, 5, 4)], [None, (5, 3, 2)]),
    ("luong_concat", "Attention", {"use_scale": True, "score_mode": "concat"},
     {"return_attention_scores": True}, [(3, 4, 5), (3, 6, 5)], [None, (6, 4, 2)]),
    ("bahdanau", "AdditiveAttention", {}, {"return_attention_scores": True},
     [(3, 4, 5), (3, 6, 5)], None),
    ("bahdanau_noscale_masks", "AdditiveAttention", {"use_scale": False},
     {"return_attention_scores": True}, [(3, 4, 5), (3, 6, 5)], [(4, 1, 2), (6, 2, 5)]),
    ("bahdanau_key_masks", "AdditiveAttention", {}, {}, [(3, 4, 5), (3, 6, 2), (3, 6, 5)],
     [(3, 4, 1), (6, 5, 1)]),
    ("flatten", "Flatten", {}, {}, [(3, 4, 5)], None),
    ("reshape", "Reshape", {"target_shape": (5, -1)}, {}, [(3, 4, 5)], None),
]


def lengths_mask(shape: tuple[int, ...], lengths: Any) -> np.ndarray | None:
    if lengths is None:
        return None
    mask = np.zeros(shape[:2], dtype=bool)
    for row, length in enumerate(lengths):
        mask[row, :length] = True
    return mask

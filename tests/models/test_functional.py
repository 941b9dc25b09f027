"""The functional API and subclassed models: graph building and its errors, masks along the
graph, layer.input/output and decoding models from trained layers, shared layers, list/dict
data, save/load of the three model kinds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import rnnkit as rk
from rnnkit import layers as L

RNG = np.random.default_rng(0)


def _x(*shape):
    return RNG.normal(size=shape).astype(np.float32)


# -- graph building and errors -------------------------------------------------------------
def test_symbolic_shapes_and_history():
    x = rk.Input(shape=(None, 3), name="x")
    assert x.shape == (None, None, 3) and x.name == "x" and x.dtype == "float32"
    seq, h, c = L.LSTM(4, return_sequences=True, return_state=True, name="lstm")(x)
    assert (seq.shape, h.shape, c.shape) == ((None, None, 4), (None, 4), (None, 4))
    assert h._keras_history[0].name == "lstm" and h._keras_history[1:] == (0, 1)
    assert L.Dense(2)(L.Flatten()(rk.Input(shape=(5, 3)))).shape == (None, 2)
    with pytest.raises(TypeError, match="symbolic"):
        x.numpy()


def test_output_not_reachable_from_inputs_names_the_input():
    a, b = rk.Input(shape=(3,), name="a"), rk.Input(shape=(3,), name="b")
    out = L.Add(name="add")([a, b])
    with pytest.raises(ValueError, match=r"Graph disconnected.*'b'.*not among the model's "
                                         r"inputs \['a'\]"):
        rk.Model(a, out)


def test_shape_mismatch_names_the_layer_and_shapes():
    a, b = rk.Input(shape=(5, 3)), rk.Input(shape=(6, 4))
    with pytest.raises(ValueError, match=r"layer 'join' \(Concatenate\) called on "
                                         r"\[\(None, 5, 3\), \(None, 6, 4\)\]"):
        L.Concatenate(axis=-1, name="join")([a, b])
    with pytest.raises(ValueError, match=r"layer 'lstm_x' \(LSTM\) called on \(None, 3\)"):
        L.LSTM(2, name="lstm_x")(rk.Input(shape=(3,)))


def test_real_and_symbolic_at_once_is_refused():
    x = rk.Input(shape=(4,))
    with pytest.raises(ValueError, match=r"layer 'mix' \(Add\) called on \[\(None, 4\), tensor "
                                         r"\(2, 4\)\]: the arguments mix symbolic"):
        L.Add(name="mix")([x, torch.ones(2, 4)])


def test_model_needs_symbolic_tensors():
    with pytest.raises(ValueError, match="takes symbolic tensors.*got Tensor of shape"):
        rk.Model(torch.ones(2, 3), torch.ones(2, 3))


def test_duplicate_layer_names_are_refused():
    x = rk.Input(shape=(3,))
    out = L.Dense(2, name="twin")(L.Dense(3, name="twin")(x))
    with pytest.raises(ValueError, match='"twin" is used 2 times'):
        rk.Model(x, out)


# -- masks ------------------------------------------------------------------------------------
def _ids():
    return np.array([[3, 1, 4, 0, 0], [2, 0, 0, 0, 0], [5, 6, 2, 1, 3]], dtype=np.int64)


def test_embedding_mask_reaches_the_encoder_like_sequential():
    embed, rnn = L.Embedding(8, 3, mask_zero=True), L.GRU(4)
    ids = rk.Input(shape=(None,), dtype="int64")
    model = rk.Model(ids, rnn(embed(ids)))
    seq = rk.Sequential([embed, rnn])
    np.testing.assert_allclose(model.predict(_ids(), verbose=0), seq.predict(_ids(), verbose=0),
                               rtol=1e-6)
    # the mask matters: without it the padded steps would change the final state
    plain = rk.layers.GRU(4)
    plain(embed(torch.as_tensor(_ids())))
    plain.set_weights(rnn.get_weights())
    unmasked = plain(embed(torch.as_tensor(_ids()))).detach().numpy()
    assert not np.allclose(unmasked[1], model.predict(_ids(), verbose=0)[1])


def test_keras_rule_no_mask_with_initial_state_but_the_output_keeps_it():
    enc, dec = rk.Input(shape=(None,), dtype="int64"), rk.Input(shape=(None,), dtype="int64")
    embed = L.Embedding(8, 3, mask_zero=True)
    _, h = L.GRU(4, return_state=True)(embed(enc))
    decoder = L.GRU(4, return_sequences=True)
    out = decoder(embed(dec), initial_state=h)
    assert out._has_mask  # the embedding's mask of the decoder input travels on
    model = rk.Model([enc, dec], out)
    outputs, masks = model._call_with_mask([_ids(), _ids()], training=False)
    np.testing.assert_array_equal(masks.numpy(), _ids() != 0)
    ids = torch.as_tensor(_ids())
    state = model.layers[3](embed(ids), mask=ids != 0)  # the encoder gets the mask
    manual = decoder(embed(torch.as_tensor(_ids())), initial_state=state[1])  # no mask
    torch.testing.assert_close(outputs, manual)


def test_masked_loss_through_the_graph():
    ids = rk.Input(shape=(None,), dtype="int64")
    out = L.TimeDistributed(L.Dense(3))(L.LSTM(4, return_sequences=True)(
        L.Embedding(8, 3, mask_zero=True)(ids)))
    model = rk.Model(ids, out)
    model.compile(optimizer="sgd", loss="mse")
    y = _x(3, 5, 3)
    y2 = y.copy()
    y2[_ids() == 0] += 100.0  # targets at padded steps must not count
    assert model.evaluate(_ids(), y, verbose=0) == pytest.approx(
        model.evaluate(_ids(), y2, verbose=0), rel=1e-6)


# -- layer.input / output, decoding models, shared layers ---------------------------------------
def _seq2seq(units=6, enc_dim=5, dec_dim=4):
    enc_in = rk.Input(shape=(None, enc_dim))
    dec_in = rk.Input(shape=(None, dec_dim))
    _, h, c = L.LSTM(units, return_state=True)(enc_in)
    dec_lstm = L.LSTM(units, return_sequences=True, return_state=True)
    seq, _, _ = dec_lstm(dec_in, initial_state=[h, c])
    dense = L.Dense(dec_dim, activation="softmax")
    return rk.Model([enc_in, dec_in], dense(seq)), dec_lstm, dense


def test_decoding_models_from_trained_layers_reproduce_teacher_forcing():
    model, dec_lstm, dense = _seq2seq()
    enc_in, dec_in = model.input
    encoder = rk.Model(enc_in, model.layers[2].output[1:])
    h_in, c_in = rk.Input(shape=(6,)), rk.Input(shape=(6,))
    seq, h, c = dec_lstm(dec_in, initial_state=[h_in, c_in])
    decoder = rk.Model([dec_in, h_in, c_in], [dense(seq), h, c])
    assert encoder.count_params() + decoder.count_params() == model.count_params()
    assert len(dec_lstm.__dict__["_inbound_nodes"]) == 2
    with pytest.raises(ValueError, match="called 2 times"):
        dec_lstm.output
    x_enc, x_dec = _x(2, 7, 5), _x(2, 3, 4)
    full = model.predict([x_enc, x_dec], verbose=0)
    states = encoder.predict(x_enc, verbose=0)
    for t in range(3):
        probs, *states = decoder.predict([x_dec[:, t:t + 1], *states], verbose=0)
        np.testing.assert_allclose(probs[:, 0], full[:, t], rtol=1e-5, atol=1e-6)
    assert model.layers[2].input is enc_in


def test_shared_layer_weights_are_used_twice_and_counted_once():
    a, b = rk.Input(shape=(4, 2)), rk.Input(shape=(4, 2))
    shared = L.SimpleRNN(3)
    model = rk.Model([a, b], L.Add()([shared(a), shared(b)]))
    assert model.count_params() == shared.count_params() == 2 * 3 + 3 * 3 + 3
    xa, xb = _x(2, 4, 2), _x(2, 4, 2)
    expected = shared(torch.as_tensor(xa)) + shared(torch.as_tensor(xb))
    np.testing.assert_allclose(model.predict([xa, xb], verbose=0), expected.detach().numpy(),
                               rtol=1e-6)


# -- data structures ---------------------------------------------------------------------------
def test_dict_inputs_and_outputs():
    seq, meta = rk.Input(shape=(5, 2), name="seq"), rk.Input(shape=(3,), name="meta")
    joined = L.Concatenate()([L.GRU(4)(seq), meta])
    model = rk.Model({"seq": seq, "meta": meta},
                     {"score": L.Dense(1, name="score")(joined),
                      "label": L.Dense(2, activation="softmax", name="label")(joined)})
    assert model.output_names == ["score", "label"]
    x = {"seq": _x(6, 5, 2), "meta": _x(6, 3)}
    out = model.predict(x, verbose=0)
    assert sorted(out) == ["label", "score"] and out["label"].shape == (6, 2)
    model.compile(optimizer="adam", loss={"score": "mse", "label": "sparse_categorical_crossentropy"},
                  metrics={"label": ["accuracy"]})
    y = {"score": _x(6, 1), "label": RNG.integers(0, 2, size=6)}
    history = model.fit(x, y, epochs=2, verbose=0, validation_split=0.5, batch_size=2)
    assert sorted(history.history) == sorted(
        ["loss", "score_loss", "label_loss", "label_accuracy", "val_loss", "val_score_loss",
         "val_label_loss", "val_label_accuracy"])
    with pytest.raises(ValueError, match=r"missing \['meta'\]"):
        model.predict({"seq": x["seq"]}, verbose=0)
    with pytest.raises(ValueError, match="a list of lists"):
        model.compile(optimizer="adam", loss="mse", metrics=["mae"])


def test_wrong_input_count_and_shape():
    model, *_ = _seq2seq()
    with pytest.raises(ValueError, match="expects 2 inputs"):
        model.predict(_x(2, 3, 5), verbose=0)
    with pytest.raises(ValueError, match="the last axis has size 3, expected 4"):
        model.predict([_x(2, 3, 5), _x(2, 3, 3)], verbose=0)


# -- saving -----------------------------------------------------------------------------------
def test_functional_save_load_round_trip(tmp_path):
    model, *_ = _seq2seq()
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    x = [_x(4, 5, 5), _x(4, 3, 4)]
    y = np.eye(4, dtype=np.float32)[RNG.integers(0, 4, size=(4, 3))]
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "m.rnnkit")
    loaded = rk.load_model(tmp_path / "m.rnnkit")
    assert type(loaded).__name__ == "Functional"
    assert [la.name for la in loaded.layers] == [la.name for la in model.layers]
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    # the optimizer state came back: one more step is the same step
    model.fit(x, y, epochs=1, verbose=0, shuffle=False)
    loaded.fit(x, y, epochs=1, verbose=0, shuffle=False)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-6, atol=1e-7)


def test_shared_layers_and_dicts_survive_save_load(tmp_path):
    a, b = rk.Input(shape=(None,), dtype="int64", name="a"), rk.Input(shape=(None,),
                                                                      dtype="int64", name="b")
    embed, rnn = L.Embedding(8, 3, mask_zero=True), L.LSTM(4)
    out = L.Dense(1, name="out")(L.Concatenate()([rnn(embed(a)), rnn(embed(b))]))
    model = rk.Model({"a": a, "b": b}, {"out": out})
    model.save(tmp_path / "s.rnnkit")
    loaded = rk.load_model(tmp_path / "s.rnnkit")
    x = {"a": _ids(), "b": _ids()[::-1].copy()}
    np.testing.assert_array_equal(loaded.predict(x, verbose=0)["out"],
                                  model.predict(x, verbose=0)["out"])
    assert loaded.count_params() == model.count_params()


class Seq2Seq(rk.Model):
    def __init__(self, units=5, vocab=4, name=None):
        super().__init__(name=name)
        self.units, self.vocab = units, vocab
        self.encoder = L.GRU(units, return_state=True)
        self.decoder = L.GRU(units, return_sequences=True)
        self.head = L.Dense(vocab, activation="softmax")

    def call(self, inputs, training=None):
        source, target = inputs
        _, state = self.encoder(source, training=training)
        return self.head(self.decoder(target, initial_state=state, training=training))

    def get_config(self):
        return {"units": self.units, "vocab": self.vocab, "name": self.name}


class NoConfig(rk.Model):
    def __init__(self):
        super().__init__()
        self.dense = L.Dense(2)

    def call(self, inputs):
        return self.dense(inputs)


def test_subclassed_model_trains_summarises_and_saves(tmp_path):
    model = Seq2Seq(name="s2s")
    x = [_x(6, 5, 3), _x(6, 4, 4)]
    y = RNG.integers(0, 4, size=(6, 4))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=2, batch_size=3, verbose=0)
    assert sorted(history.history) == ["accuracy", "loss"]
    assert [la.name for la in model.layers] == [model.encoder.name, model.decoder.name,
                                                model.head.name]
    assert model.count_params() == sum(la.count_params() for la in model.layers)
    captured = []
    model.summary(print_fn=captured.append)
    assert 'Model: "s2s"' in captured[0] and "(GRU)" in captured[0]
    model.save(tmp_path / "sub.rnnkit")
    with pytest.raises(ValueError, match=r"custom_objects=\{'Seq2Seq': Seq2Seq\}"):
        rk.load_model(tmp_path / "sub.rnnkit")
    loaded = rk.load_model(tmp_path / "sub.rnnkit", custom_objects={"Seq2Seq": Seq2Seq})
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert isinstance(loaded, Seq2Seq) and loaded.name == "s2s"


def test_subclassed_summary_shows_the_building_calls_shapes():
    """Keras 3.15.1 prints a subclassed model's layers with their output shapes in the call
    that built it, batch included: LSTM(4) then Dense(2) on (1, 3, 5) show (1, 4) and (1, 2);
    a layer the call never used stays unbuilt, shown as '?'."""

    class Chain(rk.Model):
        def __init__(self):
            super().__init__()
            self.rnn = L.LSTM(4, return_state=True)
            self.head = L.Dense(2)
            self.unused = L.Dense(3)

        def call(self, inputs):
            return self.head(self.rnn(inputs)[0])

    model = Chain()
    model(_x(1, 3, 5))
    assert model.layer_output_shapes() == [[(1, 4), (1, 4), (1, 4)], (1, 2), None]
    captured = []
    model.summary(print_fn=captured.append)
    rows = [line for line in captured[0].splitlines() if "(Dense)" in line]
    assert "(1, 2)" in rows[0] and "?" in rows[1]


def test_subclassed_model_without_config_says_how_to_save(tmp_path):
    model = NoConfig()
    model.predict(_x(2, 3), verbose=0)
    with pytest.raises(NotImplementedError, match="without get_config"):
        model.save(tmp_path / "x.rnnkit")
    model.save_weights(tmp_path / "x.weights")
    other = NoConfig()
    other.build((None, 3))
    other.load_weights(tmp_path / "x.weights")
    np.testing.assert_array_equal(other.get_weights()[0], model.get_weights()[0])


def test_model_called_inside_a_functional_graph():
    inner = Seq2Seq(units=3, vocab=4)
    a, b = rk.Input(shape=(5, 3)), rk.Input(shape=(4, 4))
    outer = rk.Model([a, b], inner([a, b]))
    assert outer.layers[-1] is inner and outer.count_params() == inner.count_params()
    x = [_x(2, 5, 3), _x(2, 4, 4)]
    np.testing.assert_array_equal(outer.predict(x, verbose=0), inner.predict(x, verbose=0))

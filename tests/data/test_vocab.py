"""Vocabulary: the seed notebook's char table, word level, OOV, round trips and every error."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rnnkit.data import Vocabulary

WORDS = ["good", "bad", "worse", "so good"]


def test_char_vocabulary_is_the_seed_notebooks_table() -> None:
    vocab = Vocabulary.from_texts(WORDS)
    # The seed's sentiment example: char_set = ['<pad>'] + sorted(list(set(''.join(words))))
    char_set = ["<pad>"] + sorted(set("".join(WORDS)))
    assert list(vocab.tokens) == char_set
    assert len(vocab) == 11
    assert [vocab.token_to_index(c) for c in char_set] == list(range(11))
    assert [vocab.index_to_token(i) for i in range(11)] == char_set
    assert vocab.pad_index == 0 and vocab.oov_index is None
    assert vocab.encode("good") == [6, 7, 7, 4]


def test_order_does_not_depend_on_input_order() -> None:
    assert Vocabulary.from_texts(WORDS) == Vocabulary.from_texts(list(reversed(WORDS)))


def test_word_level_with_oov() -> None:
    vocab = Vocabulary.from_texts(
        ["the cat sat", "the  dog\tsat\n"], level="word", oov_token="<unk>"
    )
    assert vocab.tokens == ("<pad>", "<unk>", "cat", "dog", "sat", "the")
    assert vocab.oov_index == 1
    assert vocab.encode("the bird sat") == [5, 1, 4]
    assert vocab.encode(["dog", "cow"]) == [3, 1]  # already split
    assert vocab.decode([5, 2, 0, 4]) == "the cat sat"
    assert vocab.decode([5, 0, 1], skip_pad=False) == "the <pad> <unk>"


def test_round_trip_text_ids_text() -> None:
    vocab = Vocabulary.from_texts(WORDS)
    for word in WORDS:
        assert vocab.decode(vocab.encode(word)) == word
    ids = vocab.encode_batch(WORDS, maxlen=6, padding="post")
    assert ids.dtype == np.int32 and ids.shape == (4, 6)
    np.testing.assert_array_equal(ids[1], [3, 2, 4, 0, 0, 0])  # "bad", padded after
    # truncating stays "pre": "so good" loses its first character
    assert [vocab.decode(row) for row in ids] == ["good", "bad", "worse", "o good"]
    # pad_sequences' defaults: pre-padding and pre-truncation
    np.testing.assert_array_equal(
        vocab.encode_batch(["bad", "so good"], maxlen=4), [[0, 3, 2, 4], [6, 7, 7, 4]]
    )


def test_json_round_trip() -> None:
    vocab = Vocabulary.from_texts(["a b", "c"], level="word", oov_token="<unk>")
    data = json.loads(json.dumps(vocab.to_dict()))
    assert data["tokens"] == ["<pad>", "<unk>", "a", "b", "c"]
    again = Vocabulary.from_dict(data)
    assert again == vocab and again.level == "word" and again.oov_token == "<unk>"
    assert again.encode("c z") == [4, 1]


def test_min_count_and_max_tokens() -> None:
    texts = ["aaab", "bbc", "d"]  # counts a3 b3 c1 d1
    assert Vocabulary.from_texts(texts, min_count=2).tokens == ("<pad>", "a", "b")
    # 3 entries in all: pad + the two most frequent (a, b tie at 3); sorted ids
    assert Vocabulary.from_texts(texts, max_tokens=3).tokens == ("<pad>", "a", "b")
    # ties among c, d (count 1) go by string order
    assert Vocabulary.from_texts(texts, max_tokens=5, oov_token="?").tokens == (
        "<pad>",
        "?",
        "a",
        "b",
        "c",
    )


def test_reserved_tokens_in_texts_map_to_reserved_ids() -> None:
    vocab = Vocabulary.from_texts(["x <pad> <unk>"], level="word", oov_token="<unk>")
    assert vocab.tokens == ("<pad>", "<unk>", "x")
    assert vocab.encode("<pad> x") == [0, 2]


def test_explicit_tokens_keep_their_order() -> None:
    vocab = Vocabulary(["b", "a"])
    assert vocab.tokens == ("<pad>", "b", "a")
    assert "a" in vocab and "z" not in vocab
    assert repr(vocab) == "Vocabulary(3 tokens, level='char')"


def test_unknown_token_without_oov_names_it() -> None:
    vocab = Vocabulary.from_texts(WORDS)
    with pytest.raises(KeyError, match="token 'z' is not in the vocabulary .* oov_token"):
        vocab.encode("zoo")


def test_vocabulary_errors() -> None:
    vocab = Vocabulary.from_texts(WORDS)
    with pytest.raises(IndexError, match=r"token id 11 is out of range .* \(ids 0 to 10\)"):
        vocab.decode([1, 11])
    with pytest.raises(IndexError, match="token id -1 is out of range"):
        vocab.index_to_token(-1)
    with pytest.raises(TypeError, match="token ids must be integers, got dtype float64"):
        vocab.decode([1.0])
    with pytest.raises(
        ValueError, match=r"decode expects a 1-D sequence of ids, got shape \(1, 2\)"
    ):
        vocab.decode([[1, 2]])
    with pytest.raises(ValueError, match='level must be "char" or "word", got \'byte\''):
        Vocabulary(level="byte")
    with pytest.raises(ValueError, match="pad_token and oov_token must differ"):
        Vocabulary(oov_token="<pad>")
    with pytest.raises(ValueError, match=r"tokens must be unique, got duplicates \['a'\]"):
        Vocabulary(["a", "b", "a"])
    with pytest.raises(ValueError, match="holds single characters, got 'ab'"):
        Vocabulary(["ab"])
    with pytest.raises(ValueError, match="without whitespace, got 'a b'"):
        Vocabulary(["a b"], level="word")
    with pytest.raises(ValueError, match="token '<pad>' is reserved"):
        Vocabulary(["<pad>"], level="word")
    with pytest.raises(TypeError, match="tokens must be strings, got 3"):
        Vocabulary([3])
    with pytest.raises(TypeError, match="not a single string"):
        Vocabulary.from_texts("good")
    with pytest.raises(TypeError, match="texts must be strings, got int"):
        Vocabulary.from_texts([1])
    with pytest.raises(ValueError, match="max_tokens must be >= 2, got 1"):
        Vocabulary.from_texts(WORDS, oov_token="<unk>", max_tokens=1)
    with pytest.raises(ValueError, match="min_count must be >= 1, got 0"):
        Vocabulary.from_texts(WORDS, min_count=0)


def test_from_dict_errors() -> None:
    good = Vocabulary.from_texts(WORDS).to_dict()
    with pytest.raises(ValueError, match=r"missing keys \['tokens'\]"):
        Vocabulary.from_dict({k: v for k, v in good.items() if k != "tokens"})
    with pytest.raises(ValueError, match="version 1 dict"):
        Vocabulary.from_dict({**good, "version": 2})
    with pytest.raises(ValueError, match=r"must start with the reserved tokens \['<pad>'\]"):
        Vocabulary.from_dict({**good, "tokens": ["a", "<pad>"]})
    with pytest.raises(TypeError, match="from_dict expects a dict, got list"):
        Vocabulary.from_dict([])

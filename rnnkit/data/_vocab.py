"""A token <-> index vocabulary for character- or word-level text, with a fixed, sorted order."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from ._checks import check_int
from ._sequence import pad_sequences

__all__ = ["Vocabulary"]

_LEVELS = ("char", "word")
_FORMAT = "rnnkit.Vocabulary"
_VERSION = 1


class Vocabulary:
    """Maps tokens (characters or whitespace-separated words) to integer ids and back.

    Index layout: 0 is the padding token (``"<pad>"``), 1 the out-of-vocabulary token when
    ``oov_token`` is given, then the regular tokens in the order given. ``from_texts`` sorts
    them, so a vocabulary built from the same texts is the same on every run; for characters
    it is the seed notebook's ``['<pad>'] + sorted(set(chars))``:

    >>> vocab = Vocabulary.from_texts(["good", "bad", "worse", "so good"])
    >>> vocab.tokens
    ('<pad>', ' ', 'a', 'b', 'd', 'e', 'g', 'o', 'r', 's', 'w')
    >>> vocab.encode("dog")
    [4, 7, 6]
    >>> vocab.decode([0, 0, 4, 7, 6])
    'dog'

    ``level="char"`` splits a text into its characters and joins them back with ``""``;
    ``level="word"`` splits on runs of whitespace (``str.split()``) and joins with ``" "``.
    A token outside the vocabulary maps to the OOV id when there is one, and otherwise raises a
    KeyError naming it. ``to_dict()`` gives plain JSON-ready data and ``from_dict`` reads it back.
    """

    def __init__(
        self,
        tokens: Iterable[str] = (),
        *,
        level: str = "char",
        pad_token: str = "<pad>",
        oov_token: str | None = None,
    ) -> None:
        if level not in _LEVELS:
            raise ValueError(f'level must be "char" or "word", got {level!r}')
        if not isinstance(pad_token, str) or not pad_token:
            raise ValueError(f"pad_token must be a non-empty string, got {pad_token!r}")
        if oov_token is not None and (not isinstance(oov_token, str) or not oov_token):
            raise ValueError(f"oov_token must be a non-empty string or None, got {oov_token!r}")
        if oov_token == pad_token:
            raise ValueError(f"pad_token and oov_token must differ, both are {pad_token!r}")
        self.level = level
        self.pad_token = pad_token
        self.oov_token = oov_token

        reserved = [pad_token] if oov_token is None else [pad_token, oov_token]
        self._tokens: list[str] = list(reserved)
        for token in tokens:
            self._check_token(token, reserved)
            self._tokens.append(token)
        self._index = {token: i for i, token in enumerate(self._tokens)}
        if len(self._index) != len(self._tokens):
            dupes = sorted(t for t, n in Counter(self._tokens).items() if n > 1)
            raise ValueError(f"tokens must be unique, got duplicates {dupes}")

    def _check_token(self, token: object, reserved: list[str]) -> None:
        if not isinstance(token, str):
            raise TypeError(f"tokens must be strings, got {token!r} ({type(token).__name__})")
        if token in reserved:
            raise ValueError(f"token {token!r} is reserved (pad or OOV token) and added already")
        if self.level == "char" and len(token) != 1:
            raise ValueError(f'a level="char" vocabulary holds single characters, got {token!r}')
        if self.level == "word" and (not token or token != "".join(token.split())):
            raise ValueError(
                'a level="word" vocabulary holds non-empty tokens without whitespace, '
                f"got {token!r}"
            )

    @classmethod
    def from_texts(
        cls,
        texts: Iterable[str],
        *,
        level: str = "char",
        pad_token: str = "<pad>",
        oov_token: str | None = None,
        min_count: int = 1,
        max_tokens: int | None = None,
    ) -> Vocabulary:
        """Build a vocabulary of every token in ``texts``, sorted (Python string order).

        ``min_count`` drops tokens seen fewer times. ``max_tokens`` keeps the most frequent ones
        (ties broken by string order) up to that many entries in all, pad and OOV included;
        their ids still follow sorted order. Tokens equal to the pad or OOV token are not added
        again: they encode to the reserved ids.
        """
        if isinstance(texts, str):
            raise TypeError("texts must be an iterable of strings, not a single string")
        min_count = check_int("min_count", min_count, 1)
        reserved = 1 if oov_token is None else 2
        if max_tokens is not None:
            max_tokens = check_int("max_tokens", max_tokens, reserved)
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(_split(text, level))
        counts.pop(pad_token, None)
        if oov_token is not None:
            counts.pop(oov_token, None)
        kept = [t for t, n in counts.items() if n >= min_count]
        if max_tokens is not None:
            kept = sorted(kept, key=lambda t: (-counts[t], t))[: max_tokens - reserved]
        return cls(sorted(kept), level=level, pad_token=pad_token, oov_token=oov_token)

    # lookups ---------------------------------------------------------------------------------

    @property
    def tokens(self) -> tuple[str, ...]:
        """Every token in id order, pad (and OOV) first."""
        return tuple(self._tokens)

    @property
    def pad_index(self) -> int:
        return 0

    @property
    def oov_index(self) -> int | None:
        return None if self.oov_token is None else 1

    def __len__(self) -> int:
        return len(self._tokens)

    def __contains__(self, token: object) -> bool:
        return token in self._index

    def token_to_index(self, token: str) -> int:
        """The id of ``token``: the OOV id if it is unknown and there is one, else a KeyError."""
        index = self._index.get(token)
        if index is None:
            if self.oov_token is None:
                raise KeyError(
                    f"token {token!r} is not in the vocabulary ({len(self)} tokens) and it has no "
                    "OOV token: build it with oov_token='<unk>' to map unknown tokens to id 1"
                )
            return 1
        return index

    def index_to_token(self, index: int) -> str:
        """The token with id ``index``, or an IndexError giving the valid range."""
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"token ids must be integers, got {index!r}")
        if not 0 <= index < len(self._tokens):
            raise IndexError(
                f"token id {index} is out of range for a vocabulary of {len(self)} tokens "
                f"(ids 0 to {len(self) - 1})"
            )
        return self._tokens[index]

    # encoding --------------------------------------------------------------------------------

    def encode(self, text: str | Sequence[str]) -> list[int]:
        """Ids of a text's tokens; a list of strings is taken as tokens already split."""
        tokens = _split(text, self.level) if isinstance(text, str) else text
        return [self.token_to_index(token) for token in tokens]

    def encode_batch(
        self,
        texts: Iterable[str | Sequence[str]],
        maxlen: int | None = None,
        padding: str = "pre",
        truncating: str = "pre",
        dtype: DTypeLike = "int32",
    ) -> NDArray[Any]:
        """Encode several texts and pad them with the pad id 0: ``pad_sequences`` semantics
        (Keras' defaults, so pre-padding unless ``padding="post"``), shape (N, maxlen)."""
        if isinstance(texts, str):
            raise TypeError("encode_batch expects an iterable of texts, not a single string")
        ids = [self.encode(text) for text in texts]
        return pad_sequences(
            ids, maxlen=maxlen, dtype=dtype, padding=padding, truncating=truncating, value=0
        )

    def decode(self, ids: ArrayLike, skip_pad: bool = True) -> str:
        """Join the tokens of 1-D ``ids`` back into a text, leaving out pad ids unless told."""
        ids = np.asarray(ids)
        if ids.ndim != 1:
            raise ValueError(f"decode expects a 1-D sequence of ids, got shape {ids.shape}")
        if ids.size and ids.dtype.kind not in "iu":
            raise TypeError(f"token ids must be integers, got dtype {ids.dtype}")
        tokens = [self.index_to_token(int(i)) for i in ids if not (skip_pad and i == 0)]
        return ("" if self.level == "char" else " ").join(tokens)

    # saving ----------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain data (str, list, None) that ``json.dumps`` takes and ``from_dict`` reads."""
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "level": self.level,
            "pad_token": self.pad_token,
            "oov_token": self.oov_token,
            "tokens": list(self._tokens),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Vocabulary:
        """The vocabulary that ``to_dict`` described; a malformed dict gets a ValueError."""
        if not isinstance(data, dict):
            raise TypeError(f"from_dict expects a dict, got {type(data).__name__}")
        missing = [k for k in ("level", "pad_token", "oov_token", "tokens") if k not in data]
        if missing:
            raise ValueError(f"not a Vocabulary dict: missing keys {missing}")
        if data.get("format", _FORMAT) != _FORMAT or data.get("version", _VERSION) != _VERSION:
            raise ValueError(
                f"not a {_FORMAT} version {_VERSION} dict: format={data.get('format')!r}, "
                f"version={data.get('version')!r}"
            )
        tokens = list(data["tokens"])
        reserved = [data["pad_token"]]
        if data["oov_token"] is not None:
            reserved.append(data["oov_token"])
        head = tokens[: len(reserved)]
        if head != reserved:
            raise ValueError(f"tokens must start with the reserved tokens {reserved}, got {head}")
        return cls(
            tokens[len(reserved) :],
            level=data["level"],
            pad_token=data["pad_token"],
            oov_token=data["oov_token"],
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocabulary):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        oov = "" if self.oov_token is None else f", oov_token={self.oov_token!r}"
        return f"Vocabulary({len(self)} tokens, level={self.level!r}{oov})"


def _split(text: str, level: str) -> list[str]:
    if not isinstance(text, str):
        raise TypeError(f"texts must be strings, got {type(text).__name__}")
    if level not in _LEVELS:
        raise ValueError(f'level must be "char" or "word", got {level!r}')
    return list(text) if level == "char" else text.split()

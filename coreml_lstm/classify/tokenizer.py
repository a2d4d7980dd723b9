"""Text -> token ids, by rules simple enough to write again in Swift.

RULES (``Tokenizer.encode``), applied to one text:

1. Lowercase (when ``lowercase`` is true): Unicode full default lowercase mapping
   (Python ``str.lower()``; Swift ``String.lowercased()``).
2. Normalise to NFC (Python ``unicodedata.normalize("NFC", s)``; Swift
   ``s.precomposedStringWithCanonicalMapping``). Lowercasing comes first because it can
   produce decomposed sequences (e.g. "İ" lowercases to "i" + U+0307).
3. Split into tokens, working on Unicode scalars (code points), not grapheme clusters:
   - level "char": every scalar is one token, spaces and punctuation included.
   - level "word": a token is a maximal run of scalars that are word scalars; every other
     scalar separates tokens and is dropped. A word scalar is one whose Unicode general
     category is a letter (Lu Ll Lt Lm Lo), a mark (Mn Mc Me) or a number (Nd Nl No), or is
     U+005F "_" or U+0027 "'" (so "don't" is one token, "rock-n-roll" three).
     Swift: ``scalar.properties.generalCategory`` in those cases, or the two scalars.
4. Map each token to its id: ``tokens`` (the vocabulary list stored in the JSON) gives the id as
   the token's index; a token not in the list gets ``oov_id`` (1). Id 0 (``pad_id``) is never
   produced for a token; it pads batches in training only.
5. A text with no tokens (at word level, one of only punctuation, symbols or emoji: "?!",
   "\U0001f44d") is one out-of-vocabulary token, ``[oov_id]``: the model sees every text as
   one step at least, as the app does.

The vocabulary: the ``max_vocab`` most frequent tokens of the training texts (ties broken by
the token's code points, ascending), after ids 0 (padding) and 1 (out of vocabulary), whose
entries in ``tokens`` are null. General categories follow the Unicode version of the Python
that fitted the tokenizer (``unicode_version`` in the JSON); a scalar assigned after that
version may be categorised differently by a newer Swift runtime.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, DataError
from ..fsutil import write_text

LEVELS = ("word", "char")
WORD_CATEGORIES = ("Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No")
WORD_EXTRA = ("_", "'")
FORMAT = "coreml-lstm-tokenizer/1"
PAD_ID, OOV_ID = 0, 1


def _is_word_scalar(ch: str) -> bool:
    return ch in WORD_EXTRA or unicodedata.category(ch) in WORD_CATEGORIES


@dataclass
class Tokenizer:
    level: str = "word"  # word | char
    lowercase: bool = True
    max_vocab: int = 20000  # tokens kept, most frequent first (ids 0 and 1 come on top)
    tokens: list = field(default_factory=lambda: [None, None], repr=False)  # id -> token; 0 pad, 1 oov
    pad_id: int = PAD_ID
    oov_id: int = OOV_ID

    def __post_init__(self):
        if self.level not in LEVELS:
            raise ConfigError(f"level: {self.level!r} is not one of {', '.join(LEVELS)}")
        if not isinstance(self.max_vocab, int) or self.max_vocab < 1:
            raise ConfigError(f"max_vocab: must be an integer >= 1, got {self.max_vocab!r}")
        if (self.pad_id, self.oov_id) != (PAD_ID, OOV_ID):
            raise ConfigError(f"pad_id, oov_id: the vocabulary layout fixes them at {PAD_ID} and {OOV_ID}, got {self.pad_id} and {self.oov_id}")
        self._ids = {t: i for i, t in enumerate(self.tokens) if t is not None}

    @property
    def vocab_size(self) -> int:
        """Rows of the embedding table: the reserved ids plus the vocabulary."""
        return len(self.tokens)

    def split(self, text: str) -> list[str]:
        """Rules 1-3: the text's tokens as strings."""
        if self.lowercase:
            text = text.lower()
        text = unicodedata.normalize("NFC", text)
        if self.level == "char":
            return list(text)
        out, current = [], []
        for ch in text:
            if _is_word_scalar(ch):
                current.append(ch)
            elif current:
                out.append("".join(current))
                current = []
        if current:
            out.append("".join(current))
        return out

    def encode(self, text: str) -> list[int]:
        """Rules 1-5: the text's token ids (one at least)."""
        return [self._ids.get(t, self.oov_id) for t in self.split(text)] or [self.oov_id]

    def fit(self, texts) -> "Tokenizer":
        """Build the vocabulary from training texts (replacing any previous one)."""
        counts = Counter()
        for text in texts:
            counts.update(self.split(text))
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], [ord(c) for c in kv[0]]))
        self.tokens = [None, None] + [t for t, _ in ranked[: self.max_vocab]]
        self._ids = {t: i for i, t in enumerate(self.tokens) if t is not None}
        return self

    # -- JSON ----------------------------------------------------------------------------------

    def rules(self) -> dict:
        """Everything but the vocabulary: what package metadata carries."""
        return {
            "format": FORMAT,
            "level": self.level,
            "lowercase": self.lowercase,
            "normalization": "NFC",
            "order": "lowercase, NFC, split" if self.lowercase else "NFC, split",
            "word_categories": list(WORD_CATEGORIES) if self.level == "word" else None,
            "word_extra": list(WORD_EXTRA) if self.level == "word" else None,
            "unicode_version": unicodedata.unidata_version,
            "pad_id": self.pad_id,
            "oov_id": self.oov_id,
            "max_vocab": self.max_vocab,
            "vocab_size": self.vocab_size,
        }

    def to_dict(self) -> dict:
        return {**self.rules(), "tokens": list(self.tokens)}

    def digest(self) -> str:
        """sha256 (hex) of the canonical JSON (sorted keys, no spaces, UTF-8) of what ``encode``
        depends on: level, lowercase, pad and oov ids and the token list. Not the Unicode version
        or the file's formatting: a vocabulary loaded on another Python, or re-indented, is the same."""
        used = {"level": self.level, "lowercase": self.lowercase, "pad_id": self.pad_id, "oov_id": self.oov_id, "tokens": list(self.tokens)}
        text = json.dumps(used, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    @classmethod
    def from_dict(cls, d: dict, *, where: str = "tokenizer") -> "Tokenizer":
        """A tokenizer from its JSON; a damaged one (a file is untrusted input) is one line naming the entry."""
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            got = d.get("format") if isinstance(d, dict) else type(d).__name__
            raise DataError(f"{where}: not a coreml-lstm tokenizer (format {got!r}, expected {FORMAT!r})")
        tokens = d.get("tokens")
        if not isinstance(tokens, list) or len(tokens) < 2 or tokens[0] is not None or tokens[1] is not None:
            raise DataError(f"{where}: 'tokens' must be a list starting with null (pad) and null (oov)")
        bad = next((i for i, t in enumerate(tokens[2:], 2) if not isinstance(t, str)), None)
        if bad is not None:
            raise DataError(f"{where}: 'tokens' entry {bad} is {tokens[bad]!r}, not a string")
        kinds = {"level": str, "lowercase": bool, "max_vocab": int, "pad_id": int, "oov_id": int}
        for key, kind in kinds.items():
            if key not in d:
                raise DataError(f"{where}: lacks entry {key!r}")
            if not isinstance(d[key], kind) or (kind is int and isinstance(d[key], bool)):
                raise DataError(f"{where}: entry {key!r} is {d[key]!r}, not {'a' if kind is not int else 'an'} {kind.__name__}")
        try:
            return cls(level=d["level"], lowercase=d["lowercase"], max_vocab=d["max_vocab"], tokens=tokens, pad_id=d["pad_id"], oov_id=d["oov_id"])
        except ConfigError as exc:
            raise DataError(f"{where}: {exc}") from None

    def save(self, path) -> Path:
        """Write the tokenizer as JSON (atomically)."""
        write_text(path, json.dumps(self.to_dict(), ensure_ascii=False, indent=1) + "\n")
        return Path(path)

    @classmethod
    def load(cls, path) -> "Tokenizer":
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: no such tokenizer file")
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: unreadable tokenizer JSON ({exc})") from None
        return cls.from_dict(d, where=str(path))

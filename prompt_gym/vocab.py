"""A word-level tokenizer with a fixed small vocabulary, for the toy environment.

It needs no download and no ``transformers``: words outside the vocabulary become ``<unk>``.
It offers the subset of the Hugging Face tokenizer interface the environments use.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

TOY_WORDS = (
    "the review is a movie film sentiment positive negative classify label text say whether it good bad "
    "tell me if this was great terrible write answer word please output input read decide of as or and "
    "happy sad story plot book music food very not kind to for"
).split()


class WordTokenizer:
    """Whitespace/punctuation word tokenizer over a fixed vocabulary.

    Token ids: 0 ``<pad>``, 1 ``<eos>``, 2 ``<unk>``, then the words. ``decode`` joins words with
    single spaces. No chat template.

    Args:
        words: The vocabulary (lower-case words); defaults to :data:`TOY_WORDS`.
    """

    chat_template = None
    pad_token_id = 0
    eos_token_id = 1
    unk_token_id = 2
    padding_side = "left"

    def __init__(self, words: Sequence[str] = TOY_WORDS) -> None:
        self.vocab = ["<pad>", "<eos>", "<unk>", *dict.fromkeys(w.lower() for w in words)]
        self.ids = {word: i for i, word in enumerate(self.vocab)}

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        """Split ``text`` into lower-case words and punctuation; unknown pieces become ``<unk>``."""
        return [self.ids.get(piece, self.unk_token_id) for piece in re.findall(r"\w+|[^\w\s]", text.lower())]

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        """Join the words of ``ids`` with spaces (special tokens dropped when asked)."""
        special = {self.pad_token_id, self.eos_token_id, self.unk_token_id} if skip_special_tokens else set()
        return " ".join(self.vocab[int(i)] for i in ids if int(i) not in special)

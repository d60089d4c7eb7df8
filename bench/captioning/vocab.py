"""The decoder's vocabulary, from the training captions: words seen at least `min_count` times
(recorded), plus <pad>, <start>, <end> and <unk>. Two tokenizers:
- "nltk" (the paper's NIC code): nltk's Treebank word tokenizer on the lower-cased caption,
  punctuation kept as tokens. The code calls `word_tokenize`, which first splits sentences with
  the punkt model that nltk downloads at run time; bench passes `preserve_line=True` to skip that
  step, which gives the same tokens for a caption of one sentence (a period inside a caption of
  several sentences stays on its word: "dogs." rather than "dogs", ".").
- "ptb": as coco-caption's scoring sees the caption (lower case, punctuation removed:
  bench.metrics.captions.python_tokenize)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Iterable

from bench.errors import BenchError

PAD, START, END, UNK = 0, 1, 2, 3
SPECIALS = ("<pad>", "<start>", "<end>", "<unk>")


TOKENIZERS = ("nltk", "ptb")


def tokens(caption: str, tokenizer: str = "ptb") -> list[str]:
    if tokenizer == "nltk":
        from nltk.tokenize import word_tokenize

        return word_tokenize(caption.lower(), preserve_line=True)
    from bench.metrics.captions import python_tokenize

    return python_tokenize({0: [caption]})[0][0].split()


@dataclass(frozen=True)
class Vocabulary:
    words: tuple[str, ...]  # index -> word, the specials first

    @classmethod
    def build(cls, captions: Iterable[list[str]], min_count: int) -> "Vocabulary":
        counts = Counter(w for toks in captions for w in toks)
        kept = sorted(w for w, n in counts.items() if n >= min_count)
        if not kept:
            raise BenchError(f"no word of the training captions occurs {min_count} times or more: the vocabulary would be empty", "lower --set min_count")
        return cls(SPECIALS + tuple(kept))

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, toks: list[str], max_length: int | None = None) -> list[int]:
        """<start> w1 .. wn <end> (at most max_length words when given), unknown words as <unk>."""
        index = self._index()
        return [START] + [index.get(w, UNK) for w in toks[:max_length]] + [END]

    def decode(self, ids: Iterable[int]) -> str:
        out = []
        for i in ids:
            if i == END:
                break
            if i not in (PAD, START):
                out.append(self.words[i])
        return " ".join(out)

    def _index(self) -> dict[str, int]:
        cached = getattr(self, "_cache", None)
        if cached is None:
            cached = {w: i for i, w in enumerate(self.words)}
            object.__setattr__(self, "_cache", cached)
        return cached

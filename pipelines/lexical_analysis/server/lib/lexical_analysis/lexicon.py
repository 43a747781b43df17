"""Text -> LAC word ids: LAC 2.1's mixed granularity (dictionary words as one id, else one per char).

The network was trained on this input: a text is first cut by a small dictionary (small_seg.dic);
a piece that is itself in the vocabulary (word.dic) becomes one id, any other piece one id per
character after the full-width/traditional -> half-width/simplified map (q2b.dic). Characters the
vocabulary lacks get the "OOV" id. Feeding plain characters works too but tags worse (e.g.
美国总统特朗普 comes out as one ORG instead of 美国总统/n 特朗普/PER).
"""

from __future__ import annotations

import math
from pathlib import Path

WORD_DICT, Q2B_DICT, TAG_DICT, SEG_DICT = "word.dic", "q2b.dic", "tag.dic", "small_seg.dic"


def read_pairs(path: Path) -> list[tuple[str, str]]:
    """The "a<TAB>b" lines of a LAC dictionary (other lines are skipped, as LAC does)."""
    pairs = []
    with open(path, encoding="utf-8") as stream:
        for line in stream:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 2:
                pairs.append((parts[0], parts[1]))
    return pairs


def _is_ascii_alnum(piece: str) -> bool:
    return len(piece) == 1 and piece.isascii() and piece.isalnum()


class Segmenter:
    """The dictionary cut LAC runs before looking words up: the fewest pieces, then the longest."""

    def __init__(self, path: Path):
        self.nodes: dict[str, bool] = {}  # every prefix of a dictionary word -> is it a whole word
        total = 0
        with open(path, encoding="utf-8") as stream:
            for line in stream:
                word, count = line.strip().split(" ")
                total += int(count)
                self.nodes[word] = True
                for end in range(1, len(word)):
                    self.nodes.setdefault(word[:end], False)
        # LAC scores a piece as log(its length) - log(total count); the same floats keep ties equal.
        self.log_total = math.log(total)

    def cut(self, text: str) -> list[str]:
        size = len(text)
        best: list[tuple[float, int]] = [(0.0, 0)] * (size + 1)  # best[i]: (score, last index of piece at i)
        for start in range(size - 1, -1, -1):
            ends = [start]
            stop = start + 1
            while stop <= size and text[start:stop] in self.nodes:
                if self.nodes[text[start:stop]]:
                    ends.append(stop - 1)
                stop += 1
            best[start] = max((math.log(end + 1 - start) - self.log_total + best[end + 1][0], end) for end in ends)
        pieces: list[str] = []
        start = 0
        run = ""  # single ASCII letters/digits in a row become one piece (e.g. "iPhone", "15")
        while start < size:
            end = best[start][1] + 1
            piece = text[start:end]
            if _is_ascii_alnum(piece):
                run += piece
            else:
                if run:
                    pieces.append(run)
                    run = ""
                pieces.append(piece)
            start = end
        if run:
            pieces.append(run)
        return pieces


class Lexicon:
    """word.dic, q2b.dic and small_seg.dic of a LAC model directory."""

    def __init__(self, model_dir: Path):
        missing = [name for name in (WORD_DICT, Q2B_DICT, SEG_DICT) if not (model_dir / name).is_file()]
        if missing:
            raise FileNotFoundError(f"LAC dictionaries missing from {model_dir}: {', '.join(missing)}")
        self.vocab = {word: int(index) for index, word in read_pairs(model_dir / WORD_DICT)}
        self.q2b = dict(read_pairs(model_dir / Q2B_DICT))
        self.oov = self.vocab["OOV"]
        self.segmenter = Segmenter(model_dir / SEG_DICT)

    def encode(self, text: str) -> tuple[list[int], list[int]]:
        """(word ids, characters each id covers) of a text; the spans add up to len(text)."""
        ids, spans = [], []
        for piece in self.segmenter.cut(text):
            if len(piece) > 1 and piece in self.vocab:
                ids.append(self.vocab[piece])
                spans.append(len(piece))
                continue
            for char in piece:
                ids.append(self.vocab.get(self.q2b.get(char, char), self.oov))
                spans.append(1)
        return ids, spans


def read_labels(model_dir: Path) -> dict[int, str]:
    """Tag id -> tag name ("n-B", "ORG-I", "O"). tag.dic lists some ids twice (16 nr-B, then
    16 PER-B): the later line wins, as in LAC, so those ids read PER/LOC/ORG/TIME."""
    return {int(index): name for index, name in read_pairs(model_dir / TAG_DICT)}

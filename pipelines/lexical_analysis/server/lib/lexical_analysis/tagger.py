"""The LAC network (BiGRU + CRF decoding) on a batch of id sequences, and its tags back to words."""

from __future__ import annotations

import numpy as np


def run_network(predictor, sequences: list[np.ndarray]) -> list[np.ndarray]:
    """CRF tag ids of each id sequence, all sequences in one run.

    The network takes one LoD tensor: every sequence's ids stacked into an [N, 1] int64 column, the
    LoD ([0, end of 1st, end of 2nd, ...]) telling where each one ends; the decoded tags come back
    in the same layout.
    """
    if not sequences:
        return []
    flat = np.concatenate(sequences).astype(np.int64).reshape(-1, 1)
    offsets = [0]
    for sequence in sequences:
        offsets.append(offsets[-1] + len(sequence))
    words = predictor.get_input_handle(predictor.get_input_names()[0])
    words.reshape(list(flat.shape))
    words.copy_from_cpu(flat)
    words.set_lod([offsets])
    predictor.run()
    decoded = predictor.get_output_handle(predictor.get_output_names()[0])
    tags = decoded.copy_to_cpu().reshape(-1).astype(np.int64)
    if len(tags) != len(flat):
        raise RuntimeError(f"network returned {len(tags)} tags for {len(flat)} ids")
    return [tags[begin:end] for begin, end in zip(offsets, offsets[1:])]


def to_words(text: str, spans: list[int], tag_ids, labels: dict[int, str]) -> tuple[list[str], list[str]]:
    """(words, tags) of a text from its spans (characters per id) and one tag id per span.

    Tags are "<label>-B" (a word starts) or "<label>-I" (it goes on); a word takes the label of
    its last span. "O" (no label) goes on like "-I", keeping its own name.
    """
    words: list[str] = []
    tags: list[str] = []
    start = 0
    for span, tag_id in zip(spans, tag_ids, strict=True):
        name = labels[int(tag_id)]
        label, _, position = name.rpartition("-")
        if not label:
            label, position = name, "I"
        piece = text[start:start + span]
        start += span
        if not words or position in ("B", "S"):
            words.append(piece)
            tags.append(label)
        else:
            words[-1] += piece
            tags[-1] = label
    return words, tags

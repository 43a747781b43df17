"""The three stages of the lexical-analysis ensemble, on numpy arrays (model.py only moves tensors).

Tensors between the stages, one row per request document (the ensemble batch dimension):
  ids     INT64 [n, L]  every text's word ids back to back, zero-padded to the longest row
  lengths INT64 [n, T]  ids per text, zero-padded (a text has at least one id, so 0 means none)
  meta    BYTES [n, 1]  JSON: {"logId", "texts", "spans", "started"} or, for a rejected request,
                        {"logId", "errorCode", "errorMsg", "started"}: it travels to postprocess,
                        which answers with the error envelope (a 422, never a Triton error)
  tags    INT64 [n, L]  tag id per word id (same layout as ids); -1 when the network failed
Rows are at least one wide: a batch of rejected requests is a zero-length batch, not an empty tensor.
"""

from __future__ import annotations

import json
import time
import traceback
from pathlib import Path
from typing import Annotated

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from hps_server import log, wire
from lexical_analysis.lexicon import Lexicon, read_labels
from lexical_analysis.tagger import run_network, to_words

MAX_TEXTS, MAX_CHARS = 32, 512
INTERNAL_ERROR = "internal server error; the server log has the details under this logId"

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_CHARS)]


class Request(BaseModel):
    """Texts to analyse; each is stripped of surrounding white space, then 1 to 512 characters."""

    model_config = ConfigDict(extra="forbid")
    texts: list[Text] = Field(min_length=1, max_length=MAX_TEXTS)


def _pad(rows: list[list[int]]) -> np.ndarray:
    array = np.zeros((len(rows), max([1, *map(len, rows)])), dtype=np.int64)
    for index, row in enumerate(rows):
        array[index, :len(row)] = row
    return array


def _dump(document: dict) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class Tokenizer:
    def __init__(self, model_dir: Path):
        self.lexicon = Lexicon(model_dir)

    def __call__(self, documents: list[bytes]) -> tuple[np.ndarray, np.ndarray, list[bytes]]:
        """(ids, lengths, meta) of raw request documents."""
        id_rows, length_rows, metas = [], [], []
        started = time.monotonic()  # one clock for all processes of the host: postprocess logs the total
        for raw in documents:
            ids, lengths = [], []
            try:
                log_id, request = wire.decode(raw, Request)
            except wire.WireError as error:
                meta = {"logId": error.log_id, "errorCode": error.code, "errorMsg": error.message}
            else:
                try:
                    spans = []
                    for text in request.texts:
                        text_ids, text_spans = self.lexicon.encode(text)
                        ids += text_ids
                        lengths.append(len(text_ids))
                        spans.append(text_spans)
                    meta = {"logId": log_id, "texts": request.texts, "spans": spans}
                except Exception:  # a bug, not the client's fault: a 500 for this request only
                    log.error(f"lexical-analysis tokenizer: logId {log_id}: " + traceback.format_exc())
                    ids, lengths = [], []
                    meta = {"logId": log_id, "errorCode": 500, "errorMsg": INTERNAL_ERROR}
            id_rows.append(ids)
            length_rows.append(lengths)
            metas.append(_dump({**meta, "started": started}))
        return _pad(id_rows), _pad(length_rows), metas


class Network:
    def __init__(self, predictor):
        self.predictor = predictor

    def __call__(self, batches: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
        """tags for each (ids, lengths) pair of a dynamic batch; all their texts go in one run."""
        sequences = []
        for ids, lengths in batches:
            for row, row_lengths in zip(ids, lengths):
                offset = 0
                for length in row_lengths[row_lengths > 0]:
                    sequences.append(row[offset:offset + length])
                    offset += length
        results = [np.full(ids.shape, -1, dtype=np.int64) for ids, _ in batches]
        try:
            started = time.perf_counter()
            decoded = iter(run_network(self.predictor, sequences))
            if sequences:
                log.info(f"lexical-analysis network: {len(sequences)} text(s) in "
                         f"{(time.perf_counter() - started) * 1000:.1f} ms")
        except Exception:  # every request of the batch is answered with a 500 by postprocess
            log.error("lexical-analysis network failed: " + traceback.format_exc())
            return results
        for (ids, lengths), tags in zip(batches, results):
            for row, row_lengths in zip(tags, lengths):
                row[:] = 0
                offset = 0
                for length in row_lengths[row_lengths > 0]:
                    row[offset:offset + length] = next(decoded)
                    offset += length
        return results


class Postprocess:
    def __init__(self, model_dir: Path):
        self.labels = read_labels(model_dir)

    def __call__(self, metas: list[bytes], tags: np.ndarray) -> list[bytes]:
        """The response envelope of each request document."""
        answers = []
        for raw_meta, row in zip(metas, tags):
            meta = json.loads(raw_meta)
            answers.append(self.answer(meta, row))
            log.info(f"lexical-analysis: logId {meta['logId']} answered in "
                     f"{(time.monotonic() - meta['started']) * 1000:.1f} ms")
        return answers

    def answer(self, meta: dict, tags: np.ndarray) -> bytes:
        log_id = meta["logId"]
        if "errorCode" in meta:
            return wire.failure(log_id, meta["errorCode"], meta["errorMsg"])
        try:
            results, offset = [], 0
            for text, spans in zip(meta["texts"], meta["spans"], strict=True):
                text_tags = tags[offset:offset + len(spans)]
                offset += len(spans)
                if len(text_tags) != len(spans) or (text_tags < 0).any():
                    raise RuntimeError("no tags from the network (see its error above)")
                words, labels = to_words(text, spans, text_tags, self.labels)
                results.append({"text": text, "words": words, "tags": labels})
        except Exception:
            log.error(f"lexical-analysis: logId {log_id}: " + traceback.format_exc())
            return wire.failure(log_id, 500, INTERNAL_ERROR)
        return wire.success(log_id, {"results": results})

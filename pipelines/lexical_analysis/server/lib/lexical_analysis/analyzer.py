"""A batch of lexical-analysis requests: every text cut and looked up, all texts of the batch
tagged in one network run, the tags turned back into words, each request answered on its own."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from lexical_analysis.lexicon import Lexicon, read_labels
from lexical_analysis.tagger import run_network, to_words

MAX_TEXTS, MAX_CHARS = 32, 512

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_CHARS)]


class Request(BaseModel):
    """Texts to analyse; each is stripped of surrounding white space, then 1 to 512 characters."""

    model_config = ConfigDict(extra="forbid")
    texts: list[Text] = Field(min_length=1, max_length=MAX_TEXTS)


class LexicalAnalyzer:
    def __init__(self, model_dir: Path, predictor):
        self.lexicon = Lexicon(model_dir)
        self.labels = read_labels(model_dir)
        self.predictor = predictor

    def analyze(self, requests: list[Request]) -> list[dict | Exception]:
        """The result of each request, in order; a request that fails gets its own exception
        (the runtime answers it with a 500), the others their results."""
        results: list[dict | Exception | None] = [None] * len(requests)
        encoded: list[tuple[int, list[list[int]]]] = []  # (position, spans of each text)
        sequences = []
        for position, request in enumerate(requests):
            try:
                pieces = [self.lexicon.encode(text) for text in request.texts]
            except Exception as error:  # a bug, not the client's fault: this request's 500
                results[position] = error
                continue
            sequences += [ids for ids, _ in pieces]
            encoded.append((position, [spans for _, spans in pieces]))
        if not encoded:
            return results
        try:
            tags = iter(run_network(self.predictor, sequences))
        except Exception as error:  # every request in the run, and only those
            for position, _ in encoded:
                results[position] = error
            return results
        for position, spans_of_texts in encoded:
            try:
                items = []
                for text, spans in zip(requests[position].texts, spans_of_texts, strict=True):
                    words, labels = to_words(text, spans, next(tags), self.labels)
                    items.append({"text": text, "words": words, "tags": labels})
                results[position] = {"results": items}
            except Exception as error:
                results[position] = error
        return results

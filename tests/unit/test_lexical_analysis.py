"""The lexical-analysis endpoint on the host: its model.py's work (LexicalAnalyzer) behind the
runtime's JsonModel, documents in, envelopes out, as Triton hands it a dynamic batch.

A fake predictor stands in for Paddle (it tags each word id by a fixed table and checks the LoD it
is fed) and a tiny synthetic lexicon stands in for LAC's dictionaries, so nothing here needs a build.
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import numpy as np
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(PROJECT_ROOT / "sdk" / "server"))
sys.path.insert(0, str(PROJECT_ROOT / "pipelines" / "lexical_analysis" / "server" / "lib"))

from hps_server import JsonModel, ServerContext  # noqa: E402
from hps_server.models import INTERNAL_ERROR  # noqa: E402
from lexical_analysis import LexicalAnalyzer, Request  # noqa: E402

# word.dic: id -> word ("OOV" for characters the vocabulary lacks); q2b.dic: full-width -> half-width
WORDS = {0: "OOV", 1: "百度", 2: "公司", 3: "是", 4: "一", 5: "家", 6: "春天", 7: "的", 8: "花", 9: "A"}
Q2B = {"Ａ": "A"}
SEGMENTS = {"百度": 10, "公司": 10, "春天": 10, "一家": 5}  # small_seg.dic: word and count
TAGS = {0: "ORG-B", 1: "ORG-I", 2: "v-B", 3: "n-B", 4: "m-B", 5: "m-I", 6: "TIME-B", 7: "u-B", 8: "O"}
# The fake network's answer: the tag of each word id (the real one reads the whole sequence).
TAG_OF_ID = {0: 8, 1: 0, 2: 3, 3: 2, 4: 4, 5: 5, 6: 6, 7: 7, 8: 3, 9: 3}


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    (tmp_path / "word.dic").write_text("".join(f"{i}\t{w}\n" for i, w in WORDS.items()), encoding="utf-8")
    (tmp_path / "q2b.dic").write_text("".join(f"{a}\t{b}\n" for a, b in Q2B.items()), encoding="utf-8")
    (tmp_path / "small_seg.dic").write_text("".join(f"{w} {n}\n" for w, n in SEGMENTS.items()), encoding="utf-8")
    (tmp_path / "tag.dic").write_text("".join(f"{i}\t{t}\n" for i, t in TAGS.items()), encoding="utf-8")
    return tmp_path


class _Handle:
    def __init__(self, predictor: FakePredictor):
        self.predictor = predictor

    def reshape(self, shape: list[int]) -> None:
        self.predictor.shape = shape

    def copy_from_cpu(self, array: np.ndarray) -> None:
        self.predictor.fed = array.copy()

    def set_lod(self, lod: list[list[int]]) -> None:
        self.predictor.lod = lod

    def copy_to_cpu(self) -> np.ndarray:
        return self.predictor.tags


class FakePredictor:
    """The Paddle Inference predictor interface run_network uses; `runs` keeps every run's sequences."""

    def __init__(self, fail: bool = False):
        self.fail = fail
        self.runs: list[list[list[int]]] = []

    def get_input_names(self) -> list[str]:
        return ["word"]

    def get_output_names(self) -> list[str]:
        return ["crf_decoding"]

    def get_input_handle(self, name: str) -> _Handle:
        assert name == "word"
        return _Handle(self)

    def get_output_handle(self, name: str) -> _Handle:
        assert name == "crf_decoding"
        return _Handle(self)

    def run(self) -> None:
        if self.fail:
            raise RuntimeError("the network broke")
        (offsets,) = self.lod
        assert self.fed.shape == tuple(self.shape) == (offsets[-1], 1) and self.fed.dtype == np.int64
        flat = self.fed.reshape(-1)
        self.runs.append([flat[begin:end].tolist() for begin, end in itertools.pairwise(offsets)])
        self.tags = np.array([[TAG_OF_ID[int(word_id)]] for word_id in flat], dtype=np.int64)


def _documents(*documents: dict | str) -> list[bytes]:
    return [(d if isinstance(d, str) else json.dumps(d, ensure_ascii=False)).encode("utf-8") for d in documents]


class Endpoint(JsonModel):
    """The served model (model_repo/lexical-analysis/1/model.py) with the fake predictor."""

    Request = Request

    def __init__(self, model_dir: Path, predictor: FakePredictor):
        self.context = ServerContext(root=model_dir, model_name="lexical-analysis")
        self.analyzer = LexicalAnalyzer(model_dir, predictor)

    def infer_batch(self, requests):
        return self.analyzer.analyze(requests)


def _run(model_dir: Path, predictor: FakePredictor, *requests: list[bytes]) -> list[list[dict]]:
    """Each request (a list of documents) answered by the endpoint, all requests in one dynamic
    batch, as Triton's execute hands them over."""
    endpoint = Endpoint(model_dir, predictor)
    answers = iter(endpoint.answer([document for documents in requests for document in documents]))
    return [[json.loads(next(answers)) for _ in documents] for documents in requests]


def test_a_rejected_document_in_the_middle_keeps_every_answer_in_its_row(model_dir):
    predictor = FakePredictor()
    documents = _documents(
        {"logId": "first", "texts": ["百度是一家公司"]},
        {"logId": "second", "texts": []},
        {"logId": "third", "texts": ["春天的花", " Ａ公司 "]},
    )
    ((first, second, third),) = _run(model_dir, predictor, documents)

    assert first == {
        "logId": "first",
        "errorCode": 0,
        "errorMsg": "Success",
        "result": {
            "results": [
                {"text": "百度是一家公司", "words": ["百度", "是", "一家", "公司"], "tags": ["ORG", "v", "m", "n"]}
            ]
        },
    }
    assert second["logId"] == "second" and second["errorCode"] == 422 and "texts" in second["errorMsg"]
    assert third == {
        "logId": "third",
        "errorCode": 0,
        "errorMsg": "Success",
        "result": {
            "results": [
                {"text": "春天的花", "words": ["春天", "的", "花"], "tags": ["TIME", "u", "n"]},
                {"text": "Ａ公司", "words": ["Ａ", "公司"], "tags": ["n", "n"]},
            ]
        },
    }  # stripped; Ａ read as A
    # One run for the batch: the texts of the valid documents, in order; nothing of the rejected one.
    assert predictor.runs == [[[1, 3, 4, 5, 2], [6, 7, 8], [9, 2]]]


def test_documents_of_several_requests_in_one_dynamic_batch_keep_their_rows(model_dir):
    predictor = FakePredictor()
    one = _documents("not JSON", {"logId": "b", "texts": ["公司"]})
    two = _documents(
        {"logId": "c", "texts": ["百度"]},
        {"logId": "d", "texts": ["春天"], "mode": "seg"},
        {"logId": "e", "texts": ["的花"]},
    )
    (first, second) = _run(model_dir, predictor, one, two)

    assert [answer["errorCode"] for answer in first] == [422, 0]
    assert "not valid JSON" in first[0]["errorMsg"]
    assert first[1]["result"]["results"][0]["words"] == ["公司"]
    assert [answer["logId"] for answer in second] == ["c", "d", "e"]
    assert [answer["errorCode"] for answer in second] == [0, 422, 0]
    assert second[0]["result"]["results"][0] == {"text": "百度", "words": ["百度"], "tags": ["ORG"]}
    assert "mode" in second[1]["errorMsg"]
    assert second[2]["result"]["results"][0] == {"text": "的花", "words": ["的", "花"], "tags": ["u", "n"]}
    assert predictor.runs == [[[2], [1], [7, 8]]]


def test_a_network_failure_is_a_500_for_the_valid_documents_only(model_dir):
    documents = _documents({"logId": "a", "texts": ["百度"]}, {"logId": "b"}, {"logId": "c", "texts": ["公司"]})
    ((a, b, c),) = _run(model_dir, FakePredictor(fail=True), documents)
    assert a == {"logId": "a", "errorCode": 500, "errorMsg": INTERNAL_ERROR}
    assert b["logId"] == "b" and b["errorCode"] == 422 and "texts" in b["errorMsg"]
    assert c == {"logId": "c", "errorCode": 500, "errorMsg": INTERNAL_ERROR}


def test_a_batch_of_only_rejected_documents_never_runs_the_network(model_dir):
    predictor = FakePredictor()
    ((a, b),) = _run(model_dir, predictor, _documents({"logId": "a", "texts": []}, "[]"))
    assert [a["errorCode"], b["errorCode"]] == [422, 422]
    assert predictor.runs == []

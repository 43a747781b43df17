"""Inputs the server runtime refuses before any pipeline code runs (sdk/server/hps_server)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sdk" / "server"))

from hps_server import ServerContext, wire


@pytest.mark.parametrize("document", [b'{"x": NaN}', b'{"x": Infinity}', b'{"x": -Infinity}'])
def test_nan_and_infinity_are_not_json(document):
    with pytest.raises(wire.WireError) as raised:
        wire.parse_json(document)
    assert raised.value.code == 422 and "is not a JSON value" in raised.value.message


def test_results_with_nan_are_refused_not_sent():
    with pytest.raises(ValueError):
        wire.success("id", {"score": float("nan")})


def _args(tmp_path):
    (tmp_path / "model_repo" / "m").mkdir(parents=True)
    return {"model_repository": str(tmp_path / "model_repo" / "m"), "model_name": "m"}


def test_a_malformed_pipeline_config_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv("HPS_SERVER_ROOT", raising=False)
    (tmp_path / "pipeline.toml").write_text("[settings\n")
    with pytest.raises(ValueError, match="pipeline.toml: not valid TOML"):
        ServerContext.from_triton_args(_args(tmp_path))


@pytest.mark.parametrize("threads", ["four", "0", "-1"])
def test_bad_thread_counts_are_named(tmp_path, monkeypatch, threads):
    monkeypatch.delenv("HPS_SERVER_ROOT", raising=False)
    monkeypatch.setenv("HPS_CPU_THREADS", threads)
    with pytest.raises(ValueError, match="HPS_CPU_THREADS must be a positive integer"):
        ServerContext.from_triton_args(_args(tmp_path))


def test_the_planned_threads_of_a_model_come_from_its_config(tmp_path, monkeypatch):
    import json

    monkeypatch.delenv("HPS_SERVER_ROOT", raising=False)
    monkeypatch.setenv("HPS_CPU_THREADS", "4")
    plain = _args(tmp_path)
    args = {
        **plain,
        "model_config": json.dumps({"name": "m", "parameters": {"hps_cpu_threads": {"string_value": "1"}}}),
    }
    assert ServerContext.from_triton_args(args).threads == 1
    assert ServerContext.from_triton_args(plain).threads == 4  # no parameter: the environment
    args["model_config"] = json.dumps({"parameters": {"hps_cpu_threads": {"string_value": "none"}}})
    with pytest.raises(ValueError, match="the hps_cpu_threads parameter must be a positive integer"):
        ServerContext.from_triton_args(args)


# --- images: what a header declares, before any decoding (hps_server.images.declared_size) ------

import struct  # noqa: E402
import zlib  # noqa: E402

from hps_server import RequestError, images  # noqa: E402


def _png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\0" * 16))
        + chunk(b"IEND", b"")
    )


def _jpeg(width: int, height: int) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof + b"\xff\xd9"


HEADERS = {
    "png": (_png(100000, 100000), (100000, 100000)),
    "jpeg": (_jpeg(65000, 60000), (65000, 60000)),
    "gif": (b"GIF89a" + struct.pack("<HH", 60000, 50000) + b"\0" * 8, (60000, 50000)),
    "bmp": (b"BM" + b"\0" * 16 + struct.pack("<ii", 30000, -20000) + b"\0" * 28, (30000, 20000)),
    "webp-vp8x": (
        b"RIFF\0\0\0\0WEBPVP8X" + b"\0" * 8 + (16383).to_bytes(3, "little") + (9999).to_bytes(3, "little"),
        (16384, 10000),
    ),
}


@pytest.mark.parametrize("kind", sorted(HEADERS))
def test_declared_size_reads_the_header_only(kind):
    data, size = HEADERS[kind]
    assert images.declared_size(data) == size


@pytest.mark.parametrize(
    "data", [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"%PDF-1.4", b"II*\0" + b"\0" * 40, _jpeg(10, 10)[:8]]
)
def test_declared_size_of_other_or_truncated_data_is_unknown(data):
    assert images.declared_size(data) is None


@pytest.mark.parametrize("kind", sorted(HEADERS))
def test_an_image_declaring_too_many_pixels_is_a_422_naming_the_limit_before_decoding(tmp_path, kind):
    """No image library is needed to refuse it: the header alone decides (cv2 is imported, so
    a stand-in takes its place and fails the test if it is asked to decode)."""
    import base64
    import types

    data, (width, height) = HEADERS[kind]
    fake = types.ModuleType("cv2")
    fake.error = RuntimeError
    fake.IMREAD_COLOR = 1
    fake.imdecode = lambda *args: pytest.fail("decoded an image whose header is over the limit")
    context = ServerContext(root=tmp_path, model_name="m")
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "cv2", fake)
        with pytest.raises(RequestError) as raised:
            images.decode_image(base64.b64encode(data).decode(), context, "file")
    assert str(raised.value) == (
        f"file: the image declares {width}x{height} pixels, over the limit of {images.MAX_PIXELS} pixels"
    )


def test_opencv_errors_are_422s(tmp_path):
    import base64
    import types

    class CvError(Exception):
        pass

    fake = types.ModuleType("cv2")
    fake.error, fake.IMREAD_COLOR = CvError, 1
    context = ServerContext(root=tmp_path, model_name="m")
    data = base64.b64encode(b"P6\n100000 100000\n255\n").decode()  # a format whose size is not read here
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "cv2", fake)
        fake.imdecode = lambda *args: (_ for _ in ()).throw(
            CvError("(-215:Assertion failed) pixels <= CV_IO_MAX_IMAGE_PIXELS")
        )
        with pytest.raises(
            RequestError, match=f"image: the image declares more than the limit of {images.MAX_PIXELS} pixels"
        ):
            images.decode_image(data, context)
        fake.imdecode = lambda *args: (_ for _ in ()).throw(CvError("OpenEXR codec is disabled"))
        with pytest.raises(RequestError, match="image: not a decodable image"):
            images.decode_image(data, context)


# --- the tracer and the stage metrics ---------------------------------------------------------


def test_unmarked_time_splits_at_the_end_of_the_last_model_run(monkeypatch):
    from hps_server import trace

    now = [100.0]
    monkeypatch.setattr(trace.time, "perf_counter", lambda: now[0])
    clock = trace.start()
    try:
        now[0] = 101.0  # 1 s of preparation
        with trace.stage("decode"):
            now[0] = 101.5
        with trace.stage("inference"):
            now[0] = 103.5
            with trace.stage("inference"):  # nested marks add nothing
                now[0] = 104.0
        now[0] = 104.25  # between the runs: preprocess
        with trace.stage("inference"):
            now[0] = 105.0
        now[0] = 105.5  # after the last run: postprocess
        with trace.stage("encode"):
            now[0] = 105.75
        stages = clock.stages(ended=106.0)
    finally:
        trace.stop()
    assert stages == {"decode": 0.5, "preprocess": 1.25, "inference": 3.25, "postprocess": 0.75, "encode": 0.25}
    assert sum(stages.values()) == 6.0


def test_a_batch_without_model_runs_is_all_preprocess():
    from hps_server import trace

    clock = trace.start()
    trace.stop()
    stages = clock.stages(ended=clock.started + 2.0)
    assert stages["preprocess"] == pytest.approx(2.0) and stages["inference"] == 0.0


def test_stage_names_are_checked():
    from hps_server import trace

    with pytest.raises(ValueError, match="unknown stage 'infer'"):
        trace.stage("infer")


def test_stage_histogram_buckets_are_cumulative():
    from hps_server import metrics

    metrics.reset()
    try:
        metrics.observe_stages("m", {"inference": 0.003, "decode": 0.0}, requests=2)
        metrics.observe_stages("m", {"inference": 20.0})
        figures = metrics.snapshot()["stages"][("m", "inference")]
        buckets = dict(figures["buckets"])
        assert figures["count"] == 3 and figures["sum"] == pytest.approx(20.006)
        assert buckets[0.0025] == 0 and buckets[0.005] == 2 and buckets[10.0] == 2 and buckets[float("inf")] == 3
        assert metrics.snapshot()["stages"][("m", "decode")]["count"] == 3  # a stage not given took 0 s
    finally:
        metrics.reset()


# --- a request alone uses every CPU (hps_server.occupancy, predictor.AdaptivePredictor) --------


def test_an_instance_bursts_only_while_no_other_instance_of_its_model_executes(tmp_path):
    from hps_server import occupancy

    busy = tmp_path / "busy"
    busy.write_bytes(bytes(2))
    first, second = occupancy.Occupancy(busy, 0), occupancy.Occupancy(busy, 1)
    assert not occupancy.bursting()
    with first as alone:
        assert alone and occupancy.bursting() and busy.read_bytes() == b"\x01\x00"
        with second as alone_too:  # the other process, as it would see the file
            assert not alone_too
    assert busy.read_bytes() == b"\x00\x00" and not occupancy.bursting()
    with pytest.raises(ValueError, match="no slot 2 among 2 instances"):
        occupancy.Occupancy(busy, 2)
    assert occupancy.instance_slot("face-recognition-infer_0_1") == 1
    first.close()
    second.close()


def test_the_adaptive_predictor_runs_and_hands_out_the_current_predictors_handles(tmp_path):
    from hps_server import occupancy, predictor

    class Fake:
        def __init__(self, name):
            self.name, self.runs, self.fed = name, 0, None

        def get_input_handle(self, name):
            fake = self

            class Handle:
                def copy_from_cpu(self, value):
                    fake.fed = value

            return Handle()

        def run(self):
            self.runs += 1

    base, burst = Fake("base"), Fake("burst")
    adaptive = predictor.AdaptivePredictor(base, burst)
    handle = adaptive.get_input_handle("x")  # kept from setup, as a pipeline may
    busy = tmp_path / "busy"
    busy.write_bytes(bytes(2))
    with occupancy.Occupancy(busy, 0):
        handle.copy_from_cpu("alone")
        adaptive.run()
    handle.copy_from_cpu("queued")
    adaptive.run()
    assert (burst.fed, burst.runs) == ("alone", 1) and (base.fed, base.runs) == ("queued", 1)


def test_the_burst_plan_comes_from_the_config(tmp_path, monkeypatch):
    import json

    monkeypatch.delenv("HPS_SERVER_ROOT", raising=False)
    monkeypatch.delenv("HPS_CPU_THREADS", raising=False)
    (tmp_path / "busy").write_bytes(bytes(2))
    parameters = {
        "hps_cpu_threads": {"string_value": "1"},
        "hps_burst_threads": {"string_value": "2"},
        "hps_busy_file": {"string_value": str(tmp_path / "busy")},
    }
    args = {**_args(tmp_path), "model_instance_name": "m_0_1", "model_config": json.dumps({"parameters": parameters})}
    context = ServerContext.from_triton_args(args)
    assert (context.threads, context.burst_threads, context.instance_name) == (1, 2, "m_0_1")
    assert context.occupancy_allows_burst()
    busy = context.occupancy()
    with busy as alone:
        assert alone and (tmp_path / "busy").read_bytes() == b"\x00\x01"
    busy.close()
    gpu = ServerContext(
        root=tmp_path,
        model_name="m",
        device="gpu",
        threads=1,
        burst_threads=2,
        busy_file=tmp_path / "busy",
        instance_name="m_0_0",
    )
    assert not gpu.occupancy_allows_burst()

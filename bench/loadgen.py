"""A closed-loop load generator: C clients, each sending the next request as soon as its last one
is answered, for a fixed time; it prints one JSON document of figures per concurrency level.

    python3 loadgen.py --protocol http|grpc|json --port 8000 --model ocr --document req.json \
        --concurrency 1,2,4,8,16 --seconds 10 --warmup 2

  http   Triton's HTTP/REST protocol with the binary tensor extension (what hps_client sends)
  grpc   Triton's gRPC protocol (the request serialised once, sent as bytes)
  json   a plain JSON POST to /<model> (the Flask baseline)

Runs in the bench image next to the server (sharing its network namespace, so no proxy sits in
between). The clients are threads over raw sockets (HTTP) or one gRPC channel each, with the
request built once: about 40 µs of client CPU per HTTP request (`client_cpu_s` says how much it
took). Every answer is checked for `"errorCode":0`; a run with failures says so.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import sys
import threading
import time

OK_MARK = b'"errorCode":0'


class HttpClient:
    """One keep-alive HTTP/1.1 connection (reopened when the server closes it)."""

    def __init__(self, host: str, port: int, payload: bytes):
        self.address, self.payload = (host, port), payload
        self.sock: socket.socket | None = None
        self.buffer = b""

    def _connect(self) -> None:
        self.sock = socket.create_connection(self.address, timeout=300)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def send(self) -> bool:
        for attempt in (0, 1):
            if self.sock is None:
                self._connect()
            try:
                self.sock.sendall(self.payload)
                return self._answer()
            except (ConnectionError, BrokenPipeError):
                self.close()  # a keep-alive connection the server had closed: once more, afresh
                if attempt:
                    raise
        return False

    def _recv(self) -> bytes:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        return chunk

    def _answer(self) -> bool:
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._recv()
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length, closing = 0, lines[0].startswith(b"HTTP/1.0")
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection":
                closing = value.strip().lower() == b"close"
            elif name == b"transfer-encoding":
                raise RuntimeError("chunked answers are not supported")
        while len(rest) < length:
            rest += self._recv()
        body, self.buffer = rest[:length], rest[length:]
        if closing:
            self.close()
        return status == 200 and OK_MARK in body


def http_payload(model: str, document: bytes) -> bytes:
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "datatype": "BYTES",
                    "shape": [1, 1],
                    "parameters": {"binary_data_size": len(document) + 4},
                }
            ],
            "outputs": [{"name": "output", "parameters": {"binary_data": True}}],
        },
        separators=(",", ":"),
    ).encode()
    body = header + struct.pack("<I", len(document)) + document
    return (
        f"POST /v2/models/{model}/infer HTTP/1.1\r\nHost: bench\r\nContent-Type: application/octet-stream\r\n"
        f"Inference-Header-Content-Length: {len(header)}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def json_payload(model: str, document: bytes) -> bytes:
    return (
        f"POST /{model} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(document)}\r\n\r\n"
    ).encode() + document


class GrpcClient:
    def __init__(self, host: str, port: int, payload: bytes):
        import grpc

        self.channel = grpc.insecure_channel(
            f"{host}:{port}", options=[("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
        )
        self.call = self.channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        self.payload = payload

    def send(self) -> bool:
        return OK_MARK in self.call(self.payload, timeout=300)

    def close(self) -> None:
        self.channel.close()


def grpc_payload(model: str, document: bytes) -> bytes:
    from tritonclient.grpc import service_pb2

    request = service_pb2.ModelInferRequest(model_name=model)
    tensor = request.inputs.add()
    tensor.name, tensor.datatype = "input", "BYTES"
    tensor.shape.extend([1, 1])
    request.outputs.add().name = "output"
    request.raw_input_contents.append(struct.pack("<I", len(document)) + document)
    return request.SerializeToString()


def percentile(ordered: list[float], fraction: float) -> float:
    if not ordered:
        return float("nan")
    rank = fraction * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def server_cpu_seconds(path: str | None) -> float | None:
    """CPU seconds the server's cgroup has used: cgroup v1 cpuacct.usage (ns) or v2 cpu.stat."""
    if not path:
        return None
    with open(path, encoding="ascii") as stream:
        text = stream.read()
    if text.startswith("usage_usec"):
        return int(text.split()[1]) / 1e6
    return int(text.split()[0]) / 1e9


def measure(
    make_client, concurrency: int, seconds: float, warmup: float, min_requests: int, server_cpu: str | None = None
) -> dict:
    """Closed loop: figures of the requests that ended inside the window after the warm-up. A
    window with fewer than `min_requests` answers is stretched (up to 3x) for slow work."""
    clients = [make_client() for _ in range(concurrency)]
    done: list[list[tuple[float, float, bool]]] = [[] for _ in range(concurrency)]
    errors: list[str] = []
    stopping = threading.Event()
    begin = time.perf_counter() + 0.2
    start = begin + warmup

    def loop(index: int) -> None:
        client, record = clients[index], done[index]
        while time.perf_counter() < begin:
            time.sleep(0.001)
        try:
            while not stopping.is_set():
                sent = time.perf_counter()
                ok = client.send()
                record.append((sent, time.perf_counter(), ok))
        except Exception as error:  # reported, and the run is marked as failed
            errors.append(f"{type(error).__name__}: {error}")
        finally:
            client.close()

    cpu_before = os.times()
    threads = [threading.Thread(target=loop, args=(index,), daemon=True) for index in range(concurrency)]
    for thread in threads:
        thread.start()
    time.sleep(max(0.0, start - time.perf_counter()))
    server_before = server_cpu_seconds(server_cpu)
    time.sleep(max(0.0, start + seconds - time.perf_counter()))
    while True:
        now = time.perf_counter()
        counted = sum(1 for record in done for _, end, _ in record[-min_requests:] if end >= start)
        if counted >= min_requests or now >= start + 3 * seconds or errors:
            break
        time.sleep(0.05)
    stop = time.perf_counter()
    stopping.set()
    cpu = os.times()
    server_after = server_cpu_seconds(server_cpu)
    for thread in threads:
        thread.join()
    inside = [(end - sent, ok) for record in done for sent, end, ok in record if start <= end <= stop]
    latencies = sorted(value for value, _ in inside)
    return {
        "concurrency": concurrency,
        "seconds": round(stop - start, 3),
        "requests": len(inside),
        "failed": sum(1 for _, ok in inside if not ok),
        "errors": errors[:3],
        "qps": len(inside) / (stop - start),
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p90_ms": percentile(latencies, 0.90) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "mean_ms": sum(latencies) / len(latencies) * 1000 if latencies else float("nan"),
        "client_cpu_s": round((cpu.user + cpu.system) - (cpu_before.user + cpu_before.system), 3),
        # The server's CPU time per answer in the window: what a request costs, whatever else runs.
        "server_cpu_ms": (server_after - server_before) * 1000 / len(inside)
        if server_before is not None and inside
        else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--protocol", choices=("http", "grpc", "json"), required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--document", required=True, help="file holding the request document (JSON)")
    parser.add_argument("--concurrency", default="1,2,4,8,16")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--min-requests", type=int, default=20)
    parser.add_argument("--server-cpu", help="the server cgroup's CPU usage file (v1 cpuacct.usage or v2 cpu.stat)")
    args = parser.parse_args()
    with open(args.document, "rb") as stream:
        document = stream.read()
    if args.protocol == "grpc":
        payload = grpc_payload(args.model, document)
        make = lambda: GrpcClient(args.host, args.port, payload)  # noqa: E731
    else:
        payload = (http_payload if args.protocol == "http" else json_payload)(args.model, document)
        make = lambda: HttpClient(args.host, args.port, payload)  # noqa: E731
    if not make().send():  # one request first: a server that cannot answer is not measured
        print(json.dumps({"error": f"the first request to {args.model} was not answered with errorCode 0"}))
        return 1
    for level in (int(part) for part in args.concurrency.split(",")):
        figures = measure(make, level, args.seconds, args.warmup, args.min_requests, args.server_cpu)
        print(json.dumps(figures), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

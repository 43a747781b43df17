"""Where a server's requests spend their time: the tracer's `hps_stage_seconds` histogram (per
model and stage: decode, preprocess, inference, postprocess, encode) read from Triton's metrics
port, as means and percentiles (estimated within the histogram's buckets, as Prometheus'
histogram_quantile does).

    hps-client stages --metrics-url localhost:8002             # since the server started
    hps-client stages --metrics-url localhost:8002 --watch 30  # over the next 30 s
"""

from __future__ import annotations

import math
import re
import urllib.request
from typing import Dict, List, Optional, Tuple

FAMILY = "hps_stage_seconds"
STAGES = ("decode", "preprocess", "inference", "postprocess", "encode")
_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)\{(?P<labels>[^}]*)\}\s+(?P<value>\S+)")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')

Key = Tuple[str, str]  # (model, stage)


class Histogram:
    """One model's stage: cumulative bucket counts by upper bound, the sum and count."""

    def __init__(self) -> None:
        self.buckets: Dict[float, float] = {}
        self.sum = 0.0
        self.count = 0.0

    def minus(self, other: Optional[Histogram]) -> Histogram:
        result = Histogram()
        result.buckets = {
            bound: value - (other.buckets.get(bound, 0.0) if other else 0.0) for bound, value in self.buckets.items()
        }
        result.sum = self.sum - (other.sum if other else 0.0)
        result.count = self.count - (other.count if other else 0.0)
        return result

    def quantile(self, fraction: float) -> float:
        """Seconds below which `fraction` of the requests fall, interpolated inside its bucket."""
        bounds = sorted(self.buckets)
        total = self.buckets[bounds[-1]] if bounds else 0.0
        if total <= 0:
            return math.nan
        rank, lower, below = fraction * total, 0.0, 0.0
        for bound in bounds:
            cumulative = self.buckets[bound]
            if cumulative >= rank:
                if math.isinf(bound):
                    return lower  # beyond the last finite bucket: its bound is all we know
                inside = cumulative - below
                return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
            lower, below = bound, cumulative
        return lower


def scrape(address: str, timeout: float = 10.0) -> str:
    """The text of http://<address>/metrics."""
    if not address.startswith(("http://", "https://")):
        address = f"http://{address}"
    with urllib.request.urlopen(f"{address.rstrip('/')}/metrics", timeout=timeout) as response:
        return response.read().decode("utf-8", errors="replace")


def parse(text: str) -> Dict[Key, Histogram]:
    """Every hps_stage_seconds histogram in a Prometheus text exposition."""
    found: Dict[Key, Histogram] = {}
    for line in text.splitlines():
        if not line.startswith(FAMILY):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            continue
        labels = dict(_LABEL.findall(match.group("labels")))
        key = (labels.get("model", ""), labels.get("stage", ""))
        value = float(match.group("value"))
        histogram = found.setdefault(key, Histogram())
        name = match.group("name")
        if name == f"{FAMILY}_bucket":
            histogram.buckets[float(labels["le"])] = value
        elif name == f"{FAMILY}_sum":
            histogram.sum = value
        elif name == f"{FAMILY}_count":
            histogram.count = value
    return found


def difference(after: Dict[Key, Histogram], before: Dict[Key, Histogram]) -> Dict[Key, Histogram]:
    return {key: histogram.minus(before.get(key)) for key, histogram in after.items()}


def summary(histograms: Dict[Key, Histogram]) -> List[dict]:
    """One row per model and stage (stages in request order): requests, mean and percentiles (ms)."""
    order = {stage: index for index, stage in enumerate(STAGES)}
    rows = []
    for (model, stage), histogram in sorted(
        histograms.items(), key=lambda item: (item[0][0], order.get(item[0][1], 99))
    ):
        if histogram.count <= 0:
            continue
        rows.append(
            {
                "model": model,
                "stage": stage,
                "requests": int(histogram.count),
                "mean_ms": 1000 * histogram.sum / histogram.count,
                "p50_ms": 1000 * histogram.quantile(0.50),
                "p90_ms": 1000 * histogram.quantile(0.90),
                "p99_ms": 1000 * histogram.quantile(0.99),
            }
        )
    return rows


def table(rows: List[dict]) -> str:
    """The rows as aligned text, with each model's total of the means."""
    lines = [f"{'model':28} {'stage':12} {'requests':>9} {'mean ms':>9} {'p50 ms':>9} {'p90 ms':>9} {'p99 ms':>9}"]
    totals: Dict[str, float] = {}
    for row in rows:
        totals[row["model"]] = totals.get(row["model"], 0.0) + row["mean_ms"]
        lines.append(
            f"{row['model']:28} {row['stage']:12} {row['requests']:9d} {row['mean_ms']:9.2f} "
            f"{row['p50_ms']:9.2f} {row['p90_ms']:9.2f} {row['p99_ms']:9.2f}"
        )
    for model, total in totals.items():
        lines.append(f"{model:28} {'(all)':12} {'':9} {total:9.2f}")
    return "\n".join(lines)

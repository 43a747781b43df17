"""QPS against concurrency, one panel per pipeline and workload, from output/bench/serving.json:
Triton over HTTP and gRPC (and the image measured as "before", when there is one), the best
Flask+gunicorn configuration, and the best in-process throughput as a dashed line.

    python3 plot.py serving.json serving.png        # in the bench image (matplotlib is bench-only)
"""

from __future__ import annotations

import json
import math
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _points(points: list[dict]) -> tuple[list[int], list[float]]:
    ordered = sorted(points, key=lambda point: point["concurrency"])
    return [point["concurrency"] for point in ordered], [point["qps"] for point in ordered]


def main() -> int:
    source, target = sys.argv[1], sys.argv[2]
    with open(source, encoding="utf-8") as stream:
        report = json.load(stream)
    panels = [(pipeline, name, entry) for pipeline, entry in report["pipelines"].items() for name in entry["cases"]]
    columns = 2
    rows = max(1, math.ceil(len(panels) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(6 * columns, 3.6 * rows), squeeze=False)
    for axis in axes.flat[len(panels) :]:
        axis.set_visible(False)
    for axis, (pipeline, name, entry) in zip(axes.flat, panels, strict=False):
        triton = entry["triton"][name]
        before = entry.get("triton_before", {}).get(name, {})
        summary = entry["summary"][name]
        for label, points, style in (
            ("Triton HTTP", triton.get("http", []), "o-"),
            ("Triton gRPC", triton.get("grpc", []), "s-"),
            ("Triton HTTP, before", before.get("http", []), "o:"),
            ("Triton gRPC, before", before.get("grpc", []), "s:"),
        ):
            if points:
                axis.plot(*_points(points), style, label=label)
        if summary.get("flask_best"):
            best = summary["flask_best"]
            axis.plot(*_points(best["points"]), "^--", label=f"Flask+gunicorn ({best['label']})")
        if summary.get("in_process_best"):
            best = summary["in_process_best"]
            axis.axhline(best["qps"], linestyle="--", color="grey", label=f"in-process ({best['label']})")
        axis.set_xscale("log", base=2)
        levels = sorted({point["concurrency"] for point in triton.get("http", []) + triton.get("grpc", [])})
        if levels:
            axis.set_xticks(levels, [str(level) for level in levels])
        axis.set_ylim(bottom=0)
        axis.set_title(f"{pipeline}: {name} ({entry['cases'][name]})", fontsize=10)
        axis.set_xlabel("concurrent clients")
        axis.set_ylabel("requests / s")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    figure.suptitle(f"hpsforge serving benchmark, {report['target']}, {report['cpus']} CPUs", fontsize=12)
    figure.tight_layout()
    figure.savefig(target, dpi=110)
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())

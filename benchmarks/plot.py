"""Accuracy against latency (like Figure 4b of the MiniMaxAD paper) from the result JSONs.

x: CPU latency at batch 1 (median ms, from ``speed_*.json``); y: mean image AUROC (from ``accuracy_*.json``).
Each model of the accuracy run is placed at the latency of its speed row (MiniMaxAD: the fused torch model,
with its other deploy paths as smaller markers at the same accuracy; PatchCore: the row of its coreset
ratio). The speed row is taken at the accuracy run's image size when the speed run has it, else at the
nearest size (said in the title).

Examples:
    python benchmarks/plot.py                       # newest accuracy_*.json and speed_*.json in results/
    python benchmarks/plot.py --accuracy-json a.json --speed-json s.json --out figure.png
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import benchlib

SPEED_ROW = {"minimaxad": "minimaxad_fused", "reverse_distillation": "reverse_distillation"}
MINIMAXAD_EXTRA_ROWS = (
    "minimaxad_eager",
    "minimaxad_fused_reference",
    "minimaxad_onnxruntime",
    "minimaxad_openvino_f32",
    "minimaxad_openvino_bf16",
    "minimaxad_openvino_int8",
)
COLORS = {"minimaxad": "tab:red", "reverse_distillation": "tab:blue", "patchcore": "tab:green"}


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def latency_lookup(speed: dict[str, Any], size: int, device: str = "cpu") -> tuple[dict[str, float], int | None]:
    """Median ms at batch 1 per row at ``size`` (or the nearest measured size)."""
    rows = [r for r in speed["results"] if r["device"] == device and r["batch"] == 1]
    sizes = sorted({r["size"] for r in rows})
    if not sizes:
        return {}, None
    chosen = size if size in sizes else min(sizes, key=lambda s: abs(s - size))
    return {r["row"]: r["median_ms"] for r in rows if r["size"] == chosen}, chosen


def points(accuracy: dict[str, Any], speed: dict[str, Any]) -> tuple[list[dict[str, Any]], int | None]:
    """(model, row, latency, I-AUROC, main point?) for the plot."""
    size = accuracy["config"]["image_size"]
    latencies, chosen = latency_lookup(speed, size)
    coreset = accuracy["config"].get("coreset_ratio", 0.1)
    out = []
    for model, means in accuracy["means"].items():
        auroc = means.get("I-AUROC")
        if auroc is None:
            continue
        row = SPEED_ROW.get(model) or ("patchcore_10pct" if coreset <= 0.1 else "patchcore_100pct")
        if row in latencies:
            out.append({"model": model, "row": row, "latency_ms": latencies[row], "auroc": auroc, "main": True})
        if model == "minimaxad":
            out += [
                {"model": model, "row": extra, "latency_ms": latencies[extra], "auroc": auroc, "main": False}
                for extra in MINIMAXAD_EXTRA_ROWS
                if extra in latencies
            ]
    return out, chosen


def plot(data: list[dict[str, Any]], title: str, out: Path) -> Path:
    import matplotlib as mpl  # noqa: PLC0415

    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
    from matplotlib import ticker  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=150)
    extras = sorted((p for p in data if not p["main"]), key=lambda p: p["latency_ms"])
    for point in data:
        color = COLORS.get(point["model"], "tab:gray")
        size = 90 if point["main"] else 30
        ax.scatter(
            point["latency_ms"], point["auroc"], s=size, color=color, alpha=1.0 if point["main"] else 0.6, zorder=3
        )
        if point["main"]:
            label, offset = point["model"], (5, 6)
        else:  # deploy paths share one accuracy: stagger their labels below the points
            label, offset = point["row"].removeprefix("minimaxad_"), (0, -10 - 8 * (extras.index(point) % 4))
        ax.annotate(
            label,
            (point["latency_ms"], point["auroc"]),
            textcoords="offset points",
            xytext=offset,
            fontsize=6,
            ha="left" if point["main"] else "center",
        )
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    low, high = ax.get_ylim()
    ax.set_ylim(low - 0.18 * (high - low), high)
    ax.set_xlabel("CPU latency, batch 1 (ms, log scale)")
    ax.set_ylabel("mean image AUROC (%)")
    ax.set_title(title, fontsize=8)
    ax.grid(visible=True, which="both", alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--accuracy-json", type=Path, default=None)
    parser.add_argument("--speed-json", type=Path, default=None)
    parser.add_argument("--results-dir", type=Path, default=benchlib.RESULTS_DIR)
    parser.add_argument("--out", type=Path, default=None, help="PNG path (default: next to the accuracy JSON)")
    args = parser.parse_args(argv)
    accuracy_path = args.accuracy_json or benchlib.latest_result(args.results_dir, "accuracy")
    speed_path = args.speed_json or benchlib.latest_result(args.results_dir, "speed")
    if accuracy_path is None or speed_path is None:
        msg = f"need an accuracy_*.json and a speed_*.json in {args.results_dir}: run accuracy.py and speed.py first"
        raise SystemExit(msg)
    accuracy, speed = _load(accuracy_path), _load(speed_path)
    data, chosen = points(accuracy, speed)
    if not data:
        msg = f"no model of {accuracy_path.name} has a batch-1 CPU row in {speed_path.name}"
        raise SystemExit(msg)
    size = accuracy["config"]["image_size"]
    size_note = f"{chosen} px" if chosen == size else f"{chosen} px (accuracy at {size} px)"
    backbones = "ImageNet backbones" if accuracy.get("pre_trained") else "random-init backbones"
    title = (
        f"{accuracy['dataset']}: accuracy ({backbones}, {accuracy['config']['epochs']} epoch(s)) vs latency "
        f"({speed['machine']['cpu']}, {speed['config']['threads']} threads, {size_note})"
    )
    out = args.out or accuracy_path.with_name(accuracy_path.stem.replace("accuracy_", "accuracy_vs_latency_") + ".png")
    plot(data, title, out)
    for point in data:
        print(f"{point['row']:28s} {point['latency_ms']:9.1f} ms  I-AUROC {point['auroc']:.1f}")
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()

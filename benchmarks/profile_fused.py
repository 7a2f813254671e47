"""Where the time of MiniMaxAD's forward goes on the CPU (torch.profiler), with and without the fast CPU path.

Profiles the eval forward of the un-fused model (``eager``), of the fused model as the package computed it
before its fast CPU path (``fused_reference``: ``reparameterize()``, fast path switched off) and of the fused
model as it is now (``fused``: with the fast CPU path of commit cfe615f) at one size/batch/thread count, and
prints:

- operator self time per category (GEMM, convolution, copies, norms, elementwise, reductions, rest) and
  per model part (encoder, bottleneck, decoder, anomaly map + score);
- the top operators with their input shapes;
- interleaved wall-clock timings of the variants (median/min of ``--repeats``) with the ratios
  eager/fused, fused_reference/fused and eager/fused_reference, and the distance to the fp32 FLOP bound.

Examples:
    python benchmarks/profile_fused.py                        # 256 px, batch 1, 2 threads
    python benchmarks/profile_fused.py --threads 1 --variants fused_reference,fused --trace trace.json
    python benchmarks/profile_fused.py --quick
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import benchlib
import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile, record_function

VARIANTS = ("eager", "fused_reference", "fused")
PARTS = ("encoder", "bottleneck", "decoder", "anomaly_map_generator")
CATEGORIES: dict[str, tuple[str, ...]] = {
    "GEMM (Linear)": ("aten::addmm", "aten::mm", "aten::bmm", "aten::baddbmm", "mkldnn::_linear_pointwise"),
    "convolution": ("convolution", "conv2d", "conv_transpose", "conv_depthwise"),
    "copy / layout": ("aten::copy_", "aten::clone", "aten::contiguous", "aten::_to_copy", "aten::cat"),
    "norms (GRN, LayerNorm)": ("norm", "aten::var"),
    "reductions (sum, mean, topk)": ("aten::sum", "aten::mean", "aten::topk", "aten::amax"),
    "elementwise": (
        "aten::add", "aten::mul", "aten::sub", "aten::div", "aten::gelu", "aten::sigmoid", "aten::relu",
        "aten::pow", "aten::sqrt", "aten::rsub", "aten::square", "aten::clamp", "aten::where", "aten::lerp",
    ),
    "resampling": ("upsample", "interpolate"),
}  # fmt: skip


def categorize(name: str) -> str:
    """The category of an operator name."""
    for category, patterns in CATEGORIES.items():
        if any(pattern in name for pattern in patterns):
            return category
    return "other (views, allocations, Python)"


def build_variant(name: str, dims: Sequence[int] | None) -> nn.Module:
    """One of ``eager``, ``fused_reference``, ``fused`` (same random weights)."""
    if name == "eager":
        return benchlib.build_minimaxad(dims)
    if name == "fused_reference":
        return benchlib.build_minimaxad_reference(dims)
    return benchlib.build_minimaxad(dims, fused=True)


def _label_parts(model: nn.Module) -> None:
    """Wrap the forward of each part in a ``record_function`` range."""
    for part in PARTS:
        module = getattr(model, part)
        original = module.forward

        def forward(*args: Any, _original: Any = original, _part: str = part, **kwargs: Any) -> Any:  # noqa: ANN401
            with record_function(f"part::{_part}"):
                return _original(*args, **kwargs)

        module.forward = forward


def profile_variant(model: nn.Module, images: torch.Tensor, runs: int, trace: Path | None) -> dict[str, Any]:
    """Profile ``runs`` forwards (after two warm-ups); per-forward times in ms."""
    _label_parts(model)
    with torch.inference_mode():
        for _ in range(2):
            model(images)
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            for _ in range(runs):
                model(images)
    if trace is not None:
        prof.export_chrome_trace(str(trace))
    events = prof.key_averages(group_by_input_shape=True)
    categories: dict[str, float] = defaultdict(float)
    parts: dict[str, float] = {}
    ops = []
    for event in events:
        if event.key.startswith("part::"):
            parts[event.key.removeprefix("part::")] = (
                parts.get(event.key.removeprefix("part::"), 0.0) + event.cpu_time_total / 1e3 / runs
            )
            continue
        self_ms = event.self_cpu_time_total / 1e3 / runs
        categories[categorize(event.key)] += self_ms
        ops.append({
            "op": event.key,
            "shapes": str(event.input_shapes)[:110],
            "calls": event.count // runs,
            "self_ms": self_ms,
        })
    ops.sort(key=lambda op: -op["self_ms"])
    return {
        "self_ms_total": sum(categories.values()),
        "categories_ms": dict(sorted(categories.items(), key=lambda item: -item[1])),
        "parts_ms": parts,
        "top_ops": ops[:25],
    }


def print_profile(name: str, result: dict[str, Any], top: int) -> None:
    total = result["self_ms_total"]
    print(f"\n## {name}: {total:.1f} ms of operator self time per forward (wall time on the calling thread)\n")
    print(
        benchlib.markdown_table(
            ["category", "ms", "share"],
            [[c, f"{ms:.1f}", f"{100 * ms / total:.0f}%"] for c, ms in result["categories_ms"].items()],
        )
    )
    print()
    print(
        benchlib.markdown_table(
            ["part", "ms (incl. children)"], [[p, f"{ms:.1f}"] for p, ms in result["parts_ms"].items()]
        )
    )
    print()
    print(
        benchlib.markdown_table(
            ["op", "input shapes", "calls", "self ms"],
            [[o["op"], o["shapes"], o["calls"], f"{o['self_ms']:.2f}"] for o in result["top_ops"][:top]],
        )
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variants", type=benchlib.parse_str_list, default=list(VARIANTS))
    parser.add_argument("--runs", type=int, default=3, help="profiled forwards per variant (averaged)")
    parser.add_argument("--repeats", type=int, default=15, help="timed forwards per variant (interleaved)")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--trace", type=Path, default=None, help="write a Chrome trace of the last variant")
    parser.add_argument("--dims", type=str, default=None, help="MiniMaxAD width override (tiny smoke runs only)")
    parser.add_argument("--clock-ghz", type=float, default=None)
    parser.add_argument("--flops-per-cycle", type=int, default=None)
    parser.add_argument("--out-dir", type=Path, default=benchlib.RESULTS_DIR)
    parser.add_argument("--quick", action="store_true", help="64 px, 1 profiled run, 2 timed repeats")
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.runs, args.repeats, args.top = 64, 1, 2, 5
    for variant in args.variants:
        if variant not in VARIANTS:
            parser.error(f"unknown variant {variant!r}; choose from {VARIANTS}")
    args.dims = benchlib.parse_dims(args.dims)
    return args


def main(argv: Sequence[str] | None = None) -> Path:
    args = parse_args(argv)
    benchlib.set_threads(args.threads)
    images = torch.rand(args.batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    models = {name: build_variant(name, args.dims) for name in args.variants}
    profiles = {}
    for index, (name, model) in enumerate(models.items()):
        trace = args.trace if args.trace and index == len(models) - 1 else None
        profiles[name] = profile_variant(model, images, args.runs, trace)
        print_profile(name, profiles[name], args.top)
    # Timing without the profiler, interleaved (fresh models: the profiled ones carry record_function wrappers).
    timed = {name: build_variant(name, args.dims) for name in args.variants}
    runners = {name: (lambda m=model: m(images)) for name, model in timed.items()}
    with torch.inference_mode():
        timings = benchlib.interleaved(runners, repeats=args.repeats, warmup=2)
    summary = {name: t.summary() for name, t in timings.items()}
    gflop = benchlib.count_flops(timed.get("fused") or build_variant("fused", args.dims), images[:1])[0] / 1e9
    peak = benchlib.estimate_fp32_peak(args.threads, args.clock_ghz, args.flops_per_cycle)
    bound_ms = gflop * args.batch / peak.gflops * 1e3
    print(
        f"\n## timings ({args.size} px, batch {args.batch}, {args.threads} threads, {args.repeats} interleaved runs)\n"
    )
    rows = [
        [name, f"{s['median_ms']:.1f}", f"{s['min_ms']:.1f}", f"{s['median_ms'] / bound_ms:.2f}"]
        for name, s in summary.items()
    ]
    print(benchlib.markdown_table(["variant", "median ms", "min ms", "x fp32 FLOP bound"], rows))
    ratios = {}
    for slower, faster in (("eager", "fused"), ("fused_reference", "fused"), ("eager", "fused_reference")):
        if slower in summary and faster in summary:
            ratios[f"{slower}_over_{faster}"] = summary[slower]["median_ms"] / summary[faster]["median_ms"]
    print("\n" + ", ".join(f"{k} = {v:.2f}" for k, v in ratios.items()))
    print(f"fp32 FLOP bound: {gflop:.2f} GFLOP/image (fused) / {peak.assumption} -> {bound_ms:.1f} ms")
    payload = {
        "machine": benchlib.machine_info(args.threads),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "profiles": profiles,
        "timings": summary,
        "ratios": ratios,
        "gflop_per_image_fused": gflop,
        "fp32_peak": peak.as_dict(),
        "fp32_bound_ms": bound_ms,
    }
    path = benchlib.write_json(benchlib.result_path(args.out_dir, "profile"), payload)
    print(f"\nwrote {path}")
    return path


if __name__ == "__main__":
    main()

"""Model size and FLOPs of MiniMaxAD and anomalib's peers, and the share of the fp32 peak MiniMaxAD reaches.

Parameters and fp32 MiB of MiniMaxAD un-fused and fused and of the peers; GFLOPs per image; and, from a
``speed.py`` result, the share of the CPU's fp32 peak that the fastest measured MiniMaxAD path reaches.

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` on one forward of the eval-mode model (a
multiply-add counts as 2 FLOPs; elementwise ops, norms and pooling are not counted, convolutions and matrix
products are). For PatchCore the nearest-neighbour search (a matrix product with the memory bank) is counted.

The fp32 peak is an estimate: cores x clock x FLOPs/cycle/core from the CPU flags (AVX-512 with 2 FMA units:
64; AVX2: 32), printed with its assumptions; ``--clock-ghz`` and ``--flops-per-cycle`` override them. The
best oneDNN GEMM rate measured here is printed beside it as a practical ceiling.

Examples:
    python benchmarks/size_flops.py                                  # reads the newest speed_*.json
    python benchmarks/size_flops.py --speed-json benchmarks/results/speed_host_20250101-120000.json
    python benchmarks/size_flops.py --quick
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import benchlib
import torch

MIB = 1024**2
TORCH_ROWS = (
    "minimaxad_eager",
    "minimaxad_fused_reference",
    "minimaxad_fused",
    "minimaxad_fused_cl",
    "minimaxad_compile",
)


def minimaxad_sizes(dims: Sequence[int] | None) -> list[dict[str, Any]]:
    """Parameters and fp32 MiB of the un-fused model (all, used by the forward, trainable) and the fused one."""
    eager = benchlib.build_minimaxad(dims)
    encoder_all = benchlib.count_parameters(eager.encoder)
    trainable = benchlib.count_parameters(eager.bottleneck) + benchlib.count_parameters(eager.decoder)
    fused = benchlib.build_minimaxad(dims, fused=True)
    rows = [
        ("minimaxad (un-fused, all parameters)", benchlib.count_parameters(eager)),
        ("minimaxad encoder (un-fused)", encoder_all),
        ("minimaxad trainable (bottleneck + decoder)", trainable),
        ("minimaxad fused (reparameterize())", benchlib.count_parameters(fused)),
    ]
    return [{"model": name, "parameters": n, "fp32_mib": n * 4 / MIB} for name, n in rows]


def peer_sizes(size: int) -> list[dict[str, Any]]:
    """Parameters (and PatchCore's memory bank) of the anomalib peers."""
    rows = []
    rd = benchlib.build_reverse_distillation(size)
    n = benchlib.count_parameters(rd)
    rows.append({"model": "reverse_distillation (WRN50-2)", "parameters": n, "fp32_mib": n * 4 / MIB})
    for ratio, label in ((0.1, "10pct"), (1.0, "100pct")):
        bank = benchlib.patchcore_bank_size(size, ratio)
        backbone = benchlib.build_patchcore(size, ratio)
        params = benchlib.count_parameters(backbone)
        bank_mib = bank * benchlib.PATCHCORE_FEATURE_DIM * 4 / MIB
        rows.append({
            "model": f"patchcore_{label} (WRN50-2 to layer3, bank {bank} x {benchlib.PATCHCORE_FEATURE_DIM})",
            "parameters": params,
            "fp32_mib": params * 4 / MIB + bank_mib,
            "memory_bank_mib": bank_mib,
        })
        del backbone
    ead = benchlib.build_efficientad_s()
    n = benchlib.count_parameters(ead)
    rows.append({"model": "efficientad_s", "parameters": n, "fp32_mib": n * 4 / MIB})
    return rows


def flops_table(sizes: Sequence[int], dims: Sequence[int] | None, peers: bool) -> list[dict[str, Any]]:
    """GFLOPs per image for every model at every size."""
    rows = []
    eager = benchlib.build_minimaxad(dims)
    fused = benchlib.build_minimaxad(dims, fused=True)
    for size in sizes:
        images = torch.rand(1, 3, size, size)
        for name, model in (("minimaxad (un-fused)", eager), ("minimaxad fused", fused)):
            total, per_op = benchlib.count_flops(model, images)
            rows.append({
                "model": name,
                "size": size,
                "gflop": total / 1e9,
                "per_op_gflop": {k: v / 1e9 for k, v in per_op.items()},
            })
        if not peers:
            continue
        builders = {
            "reverse_distillation": lambda s=size: benchlib.build_reverse_distillation(s),
            "patchcore_10pct": lambda s=size: benchlib.build_patchcore(s, 0.1),
            "patchcore_100pct": lambda s=size: benchlib.build_patchcore(s, 1.0),
            "efficientad_s": benchlib.build_efficientad_s,
        }
        for name, build in builders.items():
            try:
                total, per_op = benchlib.count_flops(build(), images)
            except RuntimeError as error:  # e.g. EfficientAd needs >= 256 px
                rows.append({"model": name, "size": size, "gflop": None, "error": str(error).splitlines()[0][:120]})
                continue
            rows.append({
                "model": name,
                "size": size,
                "gflop": total / 1e9,
                "per_op_gflop": {k: v / 1e9 for k, v in per_op.items()},
            })
    return rows


def fastest_path(
    speed_json: Path | None,
    flops: Sequence[dict[str, Any]],
    peak: benchlib.PeakEstimate,
    gemm_gflops: float | None = None,
) -> list[dict[str, Any]]:
    """For each (size, batch) of a speed run on the CPU: the fastest MiniMaxAD row and its share of the peak."""
    if speed_json is None or not speed_json.exists():
        return []
    speed = json.loads(speed_json.read_text(encoding="utf-8"))
    fused_gflop = {row["size"]: row["gflop"] for row in flops if row["model"] == "minimaxad fused"}
    recorded = {int(k): v["fused"] / 1e9 for k, v in speed.get("minimaxad_flops_per_image", {}).items()}
    out = []
    groups = {(r["size"], r["batch"]) for r in speed["results"] if r["device"] == "cpu" and r["family"] == "minimaxad"}
    for size, batch in sorted(groups):
        rows = [
            r
            for r in speed["results"]
            if (r["device"], r["size"], r["batch"], r["family"]) == ("cpu", size, batch, "minimaxad")
        ]
        best = min(rows, key=lambda r: r["median_ms"])
        best_fp32 = min((r for r in rows if not r["row"].endswith(("bf16", "int8"))), key=lambda r: r["median_ms"])
        torch_rows = [r for r in rows if r["row"] in TORCH_ROWS]
        gflop = recorded.get(size) or fused_gflop.get(size)
        if gflop is None:
            continue
        bound_ms = gflop * batch / peak.gflops * 1e3
        candidates = [("fastest", best), ("fastest fp32", best_fp32)]
        if torch_rows:
            candidates.append(("fastest torch", min(torch_rows, key=lambda r: r["median_ms"])))
        for label, row in candidates:
            achieved = gflop * batch / (row["median_ms"] / 1e3)
            out.append({
                "which": label,
                "row": row["row"],
                "size": size,
                "batch": batch,
                "median_ms": row["median_ms"],
                "fp32_bound_ms": bound_ms,
                "times_bound": row["median_ms"] / bound_ms,
                "gflop_per_s": achieved,
                "fp32_peak_fraction": achieved / peak.gflops,
                "times_gemm_bound": row["median_ms"] / (gflop * batch / gemm_gflops * 1e3) if gemm_gflops else None,
            })
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=benchlib.parse_int_list, default=[256, 224])
    parser.add_argument("--threads", type=int, default=2, help="cores the peak is computed for")
    parser.add_argument("--no-peers", action="store_true", help="MiniMaxAD only")
    parser.add_argument(
        "--speed-json", type=Path, default=None, help="speed run to rate (default: newest in --out-dir)"
    )
    parser.add_argument("--clock-ghz", type=float, default=None)
    parser.add_argument("--flops-per-cycle", type=int, default=None)
    parser.add_argument("--no-gemm-probe", action="store_true", help="skip measuring the oneDNN GEMM rate")
    parser.add_argument("--dims", type=str, default=None, help="MiniMaxAD width override (tiny smoke runs only)")
    parser.add_argument("--out-dir", type=Path, default=benchlib.RESULTS_DIR)
    parser.add_argument("--quick", action="store_true", help="64 px, MiniMaxAD only, no GEMM probe")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.no_peers, args.no_gemm_probe = [64], True, True
    args.dims = benchlib.parse_dims(args.dims)
    return args


def main(argv: Sequence[str] | None = None) -> Path:
    args = parse_args(argv)
    benchlib.set_threads(args.threads)
    sizes = minimaxad_sizes(args.dims) + ([] if args.no_peers else peer_sizes(max(args.sizes)))
    print(
        benchlib.markdown_table(
            ["model", "parameters (M)", "fp32 MiB"],
            [[r["model"], f"{r['parameters'] / 1e6:.2f}", f"{r['fp32_mib']:.1f}"] for r in sizes],
        )
    )
    flops = flops_table(args.sizes, args.dims, peers=not args.no_peers)
    print()
    print(
        benchlib.markdown_table(
            ["model", "size", "GFLOP / image"],
            [
                [r["model"], r["size"], f"{r['gflop']:.2f}" if r.get("gflop") is not None else r.get("error", "-")]
                for r in flops
            ],
        )
    )
    peak = benchlib.estimate_fp32_peak(args.threads, args.clock_ghz, args.flops_per_cycle)
    print(f"\nfp32 peak estimate: {peak.assumption}")
    gemm = None if args.no_gemm_probe else benchlib.measured_gemm_gflops(args.threads)
    if gemm:
        print(
            f"best fp32 GEMM measured here (2048^3, oneDNN, {args.threads} threads): {gemm:.0f} GFLOP/s "
            f"({100 * gemm / peak.gflops:.0f}% of the estimate; > 100% means the clock estimate is low)"
        )
    speed_json = args.speed_json or benchlib.latest_result(args.out_dir, "speed")
    fastest = fastest_path(speed_json, flops, peak, gemm)
    if fastest:
        print(f"\nfrom {speed_json}:")
        print(
            benchlib.markdown_table(
                [
                    "",
                    "row",
                    "size",
                    "batch",
                    "median ms",
                    "fp32 bound ms",
                    "x bound",
                    "x GEMM-rate bound",
                    "% fp32 peak",
                ],
                [
                    [
                        f["which"],
                        f["row"],
                        f["size"],
                        f["batch"],
                        f"{f['median_ms']:.1f}",
                        f"{f['fp32_bound_ms']:.1f}",
                        f"{f['times_bound']:.2f}",
                        f"{f['times_gemm_bound']:.2f}" if f["times_gemm_bound"] else "-",
                        f"{100 * f['fp32_peak_fraction']:.0f}%",
                    ]
                    for f in fastest
                ],
            )
        )
    payload = {
        "machine": benchlib.machine_info(args.threads),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "flop_counting": "torch.utils.flop_counter.FlopCounterMode, multiply-add = 2 FLOPs, eval forward of one image",
        "sizes": sizes,
        "flops": flops,
        "fp32_peak": peak.as_dict(),
        "measured_gemm_gflops": gemm,
        "speed_json": str(speed_json) if speed_json else None,
        "fastest_paths": fastest,
    }
    path = benchlib.write_json(benchlib.result_path(args.out_dir, "size_flops"), payload)
    print(f"\nwrote {path}")
    return path


if __name__ == "__main__":
    main()

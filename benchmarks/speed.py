"""Inference speed of MiniMaxAD (eager, fused, deploy runtimes) against anomalib's peers.

Latency at batch 1 and throughput at larger batches, per image size, on the CPU (and the GPU when there is
one). What is timed is the *model* forward (the ``torch.nn.Module`` of the model, eval mode), from a
ready input tensor to the anomaly map and image score; anomalib's pre-processing (resize, normalisation)
and post-processing (score normalisation, thresholds) are not included. Exported graphs (ONNX Runtime,
OpenVINO) are exports of the same fused ``MiniMaxADModel.forward``.

All weights are random (``pre_trained=False`` everywhere): speed does not depend on them. PatchCore's
memory bank is random data of the size coreset sampling leaves from an MVTec AD category (209 training
images): 10% and 100% of ``209 * (size / 8) ** 2`` rows of 1536 floats. Rows are timed round-robin
(one call of each model in turn, repeated), after a warm-up, with the same thread count everywhere
(``torch.set_num_threads``, ORT ``intra_op_num_threads``, OpenVINO ``INFERENCE_NUM_THREADS``).

Examples:
    python benchmarks/speed.py                       # full run (takes a while: PatchCore-100% is slow)
    python benchmarks/speed.py --quick               # 64 px, 2 repetitions: checks that everything runs
    python benchmarks/speed.py --models minimaxad_fused,openvino_f32,reverse_distillation --sizes 256
    python benchmarks/speed.py --authors-repo /path/to/MiniMaxAD   # adds the authors' own network's row
    python benchmarks/speed.py --devices cuda --sizes 256 --batches 16 --compile   # GPU, torch.compile row too

The authors' row (``authors_reparameterized``) is their network from a checkout of their repository
(``--authors-repo`` or ``$MINIMAXAD_AUTHORS_REPO``; see ``authors_reference.py``), re-parameterized as their
``fps.py`` does, with our map and score; without a checkout it is skipped with the reason. The column
"x faster than authors" divides its median time by each row's; "paired" is the median, over the rounds of the
interleaved timing, of the authors' call divided by the row's call of the same round.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import authors_reference
import benchlib
import numpy as np
import torch
from torch import nn

FUSED = "minimaxad_fused"
AUTHORS = "authors_reparameterized"


@dataclass(frozen=True)
class Row:
    """One line of the table: a model and how it runs."""

    name: str
    family: str  # "minimaxad", "authors" or "peer"
    includes: str
    default: bool = True


ROWS: dict[str, Row] = {
    row.name: row
    for row in (
        Row(
            "minimaxad_eager",
            "minimaxad",
            "MiniMaxADModel.forward, un-fused (encoder included): encoder, bottleneck, decoder, map, score",
        ),
        Row(
            "minimaxad_fused_reference",
            "minimaxad",
            "fused with reparameterize(fast_cpu=False): standard torch ops only (the plain path)",
        ),
        Row(FUSED, "minimaxad", "after reparameterize() (BNs, branches, layer scales folded), with the fast CPU path"),
        Row("minimaxad_fused_cl", "minimaxad", "fused, model and input in channels_last memory format"),
        Row("minimaxad_fused_bf16", "minimaxad", "fused under bf16 autocast (fast path in bf16); map, score float32"),
        Row("minimaxad_fused_fp16", "minimaxad", "fused under torch.autocast(float16), CUDA only"),
        Row(
            AUTHORS,
            "authors",
            "the authors' encoder+bottleneck+decoder (their code, reparameterize_unireplknet) + our map and score",
        ),
        Row(
            "minimaxad_onnxruntime", "minimaxad", "ONNX export (dynamo, opset 18) of the fused forward, ORT CPU/CUDA EP"
        ),
        Row("minimaxad_openvino_f32", "minimaxad", "OpenVINO (same ONNX), INFERENCE_PRECISION_HINT f32"),
        Row("minimaxad_openvino_bf16", "minimaxad", "OpenVINO, INFERENCE_PRECISION_HINT bf16 (if the CPU has BF16)"),
        Row("minimaxad_openvino_int8", "minimaxad", "OpenVINO, nncf.quantize int8 (random calibration), other ops f32"),
        Row(
            "minimaxad_openvino_int8_bf16",
            "minimaxad",
            "the same int8 model, other ops bf16 (OpenVINO's default hint on CPUs with BF16)",
        ),
        Row(
            "minimaxad_compile",
            "minimaxad",
            "fused, torch.compile (inductor, freezing on CPU); compile time excluded; opt-in (--compile)",
            default=False,
        ),
        Row(
            "reverse_distillation",
            "peer",
            "ReverseDistillationModel.forward: WRN50-2 encoder, bottleneck, decoder, map, max",
        ),
        Row(
            "patchcore_10pct", "peer", "PatchcoreModel.forward: WRN50-2 layer2+3, 9-NN search in a 10% bank, map, score"
        ),
        Row("patchcore_100pct", "peer", "same with a 100% bank (no coreset subsampling)"),
        Row(
            "efficientad_s", "peer", "EfficientAdModel.forward (S): teacher, student, autoencoder, normalised maps, max"
        ),
    )
}


def resolve_rows(names: Sequence[str] | None) -> list[str]:
    """Row names from the command line; ``onnxruntime`` stands for ``minimaxad_onnxruntime`` etc."""
    if not names:
        return [name for name, row in ROWS.items() if row.default]
    resolved = []
    for name in names:
        key = name if name in ROWS else f"minimaxad_{name}"
        if key not in ROWS:
            msg = f"Unknown row {name!r}; choose from: {', '.join(ROWS)}"
            raise SystemExit(msg)
        resolved.append(key)
    return resolved


# ---------------------------------------------------------------- runners


class _ScoreAndMap(nn.Module):
    """Export wrapper: the fused model's ``(pred_score, anomaly_map)``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        output = self.model(images)
        return output.pred_score, output.anomaly_map


@dataclass
class Context:
    """What the runners of one (device, size, batch) share."""

    args: argparse.Namespace
    device: torch.device
    size: int
    batch: int
    images: torch.Tensor
    workdir: Path
    cache: dict[str, Any]

    @property
    def array(self) -> np.ndarray:
        """The input as a numpy array (exported runtimes)."""
        return self.images.cpu().numpy()


def _torch_runner(model: nn.Module, images: torch.Tensor) -> Callable[[], object]:
    def run() -> object:
        with torch.inference_mode():
            return model(images)

    return run


def _autocast_runner(model: nn.Module, images: torch.Tensor, dtype: torch.dtype) -> Callable[[], object]:
    def run() -> object:
        with torch.inference_mode(), torch.autocast(images.device.type, dtype=dtype):
            return model(images)

    return run


def _minimaxad(ctx: Context, fused: bool) -> nn.Module:
    key = f"minimaxad_{'fused' if fused else 'eager'}_{ctx.device}"
    if key not in ctx.cache:
        ctx.cache[key] = benchlib.build_minimaxad(ctx.args.dims, fused=fused).to(ctx.device)
    return ctx.cache[key]


def _onnx_path(ctx: Context) -> Path:
    """Export the fused model once per (size, batch), with static shapes."""
    path = ctx.workdir / f"minimaxad_{ctx.size}_b{ctx.batch}.onnx"
    if not path.exists():
        model = _ScoreAndMap(benchlib.build_minimaxad(ctx.args.dims, fused=True)).eval()
        example = torch.rand(ctx.batch, 3, ctx.size, ctx.size)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (example,),
                str(path),
                dynamo=True,
                opset_version=18,
                input_names=["input"],
                output_names=["pred_score", "anomaly_map"],
            )
    return path


def prepare_row(name: str, ctx: Context) -> tuple[Callable[[], object] | None, str]:  # noqa: C901, PLR0911, PLR0912
    """The runner of one row, or ``None`` and why it is skipped."""
    cpu = ctx.device.type == "cpu"
    images = ctx.images
    if name == "minimaxad_eager":
        return _torch_runner(_minimaxad(ctx, fused=False), images), ""
    if name == FUSED:
        return _torch_runner(_minimaxad(ctx, fused=True), images), ""
    if name in {"minimaxad_fused_bf16", "minimaxad_fused_fp16"}:
        dtype = torch.bfloat16 if name.endswith("bf16") else torch.float16
        if dtype == torch.float16 and cpu:
            return None, "float16 autocast rows run on CUDA only"
        return _autocast_runner(_minimaxad(ctx, fused=True), images, dtype), ""
    if name == AUTHORS:
        try:
            model = authors_reference.build_authors_inference_model(ctx.args.authors_repo, ctx.args.dims)
        except authors_reference.AuthorsReferenceUnavailable as reason:
            return None, str(reason)
        return _torch_runner(model.to(ctx.device), images), ""
    if name == "minimaxad_fused_cl":
        model = benchlib.build_minimaxad(ctx.args.dims, fused=True).to(ctx.device, memory_format=torch.channels_last)
        return _torch_runner(model, images.contiguous(memory_format=torch.channels_last)), ""
    if name == "minimaxad_fused_reference":
        if not benchlib.has_fast_cpu_path():
            return None, "the installed package has no fast CPU path: minimaxad_fused is the reference"
        return _torch_runner(benchlib.build_minimaxad_reference(ctx.args.dims).to(ctx.device), images), ""
    if name == "minimaxad_compile":
        return _compiled_runner(ctx), ""
    if name == "minimaxad_onnxruntime":
        return _onnxruntime_runner(ctx)
    if name.startswith("minimaxad_openvino_"):
        if not cpu:
            return None, "OpenVINO rows run on the CPU only"
        return _openvino_runner(ctx, name.removeprefix("minimaxad_openvino_"))
    if name == "reverse_distillation":
        return _torch_runner(benchlib.build_reverse_distillation(ctx.size).to(ctx.device), images), ""
    if name.startswith("patchcore_"):
        ratio = 0.1 if name == "patchcore_10pct" else 1.0
        model = benchlib.build_patchcore(ctx.size, ratio, train_images=ctx.args.patchcore_train_images)
        return _torch_runner(model.to(ctx.device), images), ""
    if name == "efficientad_s":
        return _torch_runner(benchlib.build_efficientad_s().to(ctx.device), images), ""
    return None, f"unknown row {name}"


def _compiled_runner(ctx: Context) -> Callable[[], object]:
    import torch._inductor.config as inductor_config  # noqa: PLC0415

    inductor_config.freezing = ctx.device.type == "cpu"  # freezing folds weights into CPU kernels
    model = torch.compile(_ScoreAndMap(benchlib.build_minimaxad(ctx.args.dims, fused=True).to(ctx.device)))
    runner = _torch_runner(model, ctx.images)
    runner()  # compile outside the timed region
    return runner


def _onnxruntime_runner(ctx: Context) -> tuple[Callable[[], object] | None, str]:
    import onnxruntime as ort  # noqa: PLC0415

    providers = ["CPUExecutionProvider"]
    if ctx.device.type == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            return None, "onnxruntime has no CUDAExecutionProvider here"
        providers = ["CUDAExecutionProvider"]
    options = ort.SessionOptions()
    options.intra_op_num_threads = ctx.args.threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(_onnx_path(ctx)), options, providers=providers)
    feed = {"input": ctx.array}
    return (lambda: session.run(None, feed)), ""


def _openvino_capabilities() -> set[str]:
    import openvino as ov  # noqa: PLC0415

    return set(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def _openvino_runner(ctx: Context, precision: str) -> tuple[Callable[[], object] | None, str]:
    import openvino as ov  # noqa: PLC0415

    capabilities = _openvino_capabilities()
    weights, _, float_ops = precision.partition("_")  # "f32", "bf16", "int8" or "int8_bf16"
    float_ops = float_ops or ("f32" if weights == "int8" else weights)
    if float_ops == "bf16" and "BF16" not in capabilities:
        return None, f"CPU lacks BF16 (OPTIMIZATION_CAPABILITIES: {sorted(capabilities)})"
    if weights == "int8" and "INT8" not in capabilities:
        return None, f"CPU lacks INT8 (OPTIMIZATION_CAPABILITIES: {sorted(capabilities)})"
    core = ov.Core()
    # convert_model, as anomalib's to_openvino: its front-end passes fold the weights' reshapes, without which
    # NNCF quantises the depthwise kernels per kernel column and the CPU plugin runs them in f32.
    model = ov.convert_model(str(_onnx_path(ctx)))
    if weights == "int8":
        model = _quantize_int8(model, ctx)
    config = {
        "INFERENCE_PRECISION_HINT": float_ops,
        "INFERENCE_NUM_THREADS": ctx.args.threads,
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": 1,
    }
    compiled = core.compile_model(model, "CPU", config)
    return OpenVINORunner(compiled, ctx.array), ""


class OpenVINORunner:
    """One inference request on a ready array; knows the precision each layer of the compiled graph runs in."""

    def __init__(self, compiled: Any, array: np.ndarray) -> None:  # noqa: ANN401 - an openvino.CompiledModel
        self.request = compiled.create_infer_request()
        self.array = array
        self.layer_precisions: dict[str, dict[str, int]] = {}
        for op in compiled.get_runtime_model().get_ordered_ops():
            info = op.get_rt_info()
            by_precision = self.layer_precisions.setdefault(info["layerType"].astype(str), {})
            precision = info["runtimePrecision"].astype(str)
            by_precision[precision] = by_precision.get(precision, 0) + 1

    def __call__(self) -> object:
        """One inference."""
        return self.request.infer([self.array])


def _quantize_int8(model: Any, ctx: Context) -> Any:  # noqa: ANN401
    import nncf  # noqa: PLC0415

    generator = torch.Generator().manual_seed(123)
    samples = [
        torch.rand(ctx.batch, 3, ctx.size, ctx.size, generator=generator).numpy() for _ in range(ctx.args.calib_samples)
    ]
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        return nncf.quantize(model, nncf.Dataset(samples), subset_size=len(samples))


# ---------------------------------------------------------------- checks


def _outputs(result: object) -> tuple[np.ndarray, np.ndarray] | None:
    """(pred_score, anomaly_map) of a runner's result, as numpy."""
    if hasattr(result, "pred_score"):
        return result.pred_score.float().cpu().numpy(), result.anomaly_map.float().cpu().numpy()
    if isinstance(result, (list, tuple)) and len(result) == 2:
        score, amap = (r.float().cpu().numpy() if isinstance(r, torch.Tensor) else np.asarray(r) for r in result)
        return score, amap
    if isinstance(result, dict) or hasattr(result, "to_dict"):  # OpenVINO's OVDict
        values = list(result.values())
        return np.asarray(values[0]), np.asarray(values[1])
    return None


def check_against_fused(result: object, reference: object) -> dict[str, float] | None:
    """Largest absolute differences of score and anomaly map to the fused torch model."""
    got, ref = _outputs(result), _outputs(reference)
    if got is None or ref is None:
        return None
    return {
        "pred_score_max_abs_diff": float(np.abs(got[0].reshape(-1) - ref[0].reshape(-1)).max()),
        "anomaly_map_max_abs_diff": float(np.abs(got[1].reshape(ref[1].shape) - ref[1]).max()),
    }


# ---------------------------------------------------------------- main loop


def measure_group(ctx: Context, names: Sequence[str]) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Prepare, try once, check and time every row for one (device, size, batch)."""
    runners: dict[str, Callable[[], object]] = {}
    layer_precisions: dict[str, dict[str, dict[str, int]]] = {}
    outputs: dict[str, object] = {}
    skipped: list[dict[str, str]] = []
    prepare_seconds: dict[str, float] = {}
    for name in names:
        start = time.perf_counter()
        try:
            runner, reason = prepare_row(name, ctx)
            if runner is not None:
                outputs[name] = runner()  # a first call: fails early (e.g. input too small for the model)
        except Exception as error:  # noqa: BLE001 - a failing runtime must not hide the other rows
            runner, reason = None, f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
        prepare_seconds[name] = time.perf_counter() - start
        if runner is None:
            skipped.append({
                "row": name,
                "device": str(ctx.device),
                "size": ctx.size,
                "batch": ctx.batch,
                "reason": reason,
            })
            print(f"  skip {name}: {reason}")
        else:
            runners[name] = runner
            if isinstance(runner, OpenVINORunner):
                layer_precisions[name] = runner.layer_precisions
    checks = {
        name: check_against_fused(output, outputs[FUSED])
        for name, output in outputs.items()
        if FUSED in outputs and ROWS[name].family == "minimaxad" and name != FUSED
    }
    del outputs
    repeats = ctx.args.repeats if ctx.batch == 1 else ctx.args.throughput_repeats
    warmup = ctx.args.warmup if ctx.batch == 1 else max(1, ctx.args.warmup // 2)
    sync = torch.cuda.synchronize if ctx.device.type == "cuda" else None
    timings = benchlib.interleaved(
        runners, repeats=repeats, warmup=warmup, synchronize=sync, pause_s=ctx.args.pause_ms / 1e3
    )
    records = []
    for name, timing in timings.items():
        stats = timing.summary()
        records.append({
            "row": name,
            "family": ROWS[name].family,
            "includes": ROWS[name].includes,
            "device": str(ctx.device),
            "size": ctx.size,
            "batch": ctx.batch,
            **stats,
            "throughput_img_s": ctx.batch / (stats["median_ms"] / 1e3),
            "check_vs_fused": checks.get(name),
            "prepare_s": prepare_seconds[name],
            "layer_precisions": layer_precisions.get(name),
            "wall_ms": timing.wall_ms,
        })
    return records, skipped


def add_ratios(records: list[dict[str, Any]], flops: dict[int, dict[str, int]], gemm_gflops: float) -> None:
    """Time relative to fused MiniMaxAD in the same group; achieved GFLOP/s and its share of the CPU's GEMM rate.

    ``gemm_gflops`` is the rate of one large fp32 GEMM measured in the same process (same threads, same ISA caps):
    a roof that holds on every CPU, where the peak estimated from the flags does not (Zen 4 executes AVX-512 at
    half the width the flags suggest).
    """
    fused = {(r["device"], r["size"], r["batch"]): r["median_ms"] for r in records if r["row"] == FUSED}
    authors = {(r["device"], r["size"], r["batch"]): r for r in records if r["row"] == AUTHORS}
    for record in records:
        key = (record["device"], record["size"], record["batch"])
        record["time_vs_fused"] = record["median_ms"] / fused[key] if key in fused else None
        reference = authors.get(key)
        record["speedup_vs_authors"] = reference["median_ms"] / record["median_ms"] if reference else None
        # The same ratio call by call: both calls ran in the same round of the interleaved timing, so drifts of
        # a shared machine (load, clock) cancel in it more than in the ratio of two medians.
        record["speedup_vs_authors_paired"] = (
            statistics.median(a / b for a, b in zip(reference["wall_ms"], record["wall_ms"], strict=True))
            if reference
            else None
        )
        gflop = flops.get(record["size"], {}).get("fused")
        if record["family"] == "minimaxad" and gflop:
            rate = gflop * record["batch"] / 1e9 / (record["median_ms"] / 1e3)
            record["gflop_per_s"] = rate
            record["gemm_rate_fraction"] = rate / gemm_gflops if record["device"] == "cpu" else None


def print_tables(records: list[dict[str, Any]], skipped: list[dict[str, str]], machine: dict[str, Any]) -> None:
    """Markdown tables, one per (device, size, batch), headed by the CPU, its ISA and the load."""
    load = machine.get("load_average")
    load_text = f"{load[0]:.2f} at start" if load else "unknown"
    print(f"\nCPU: {machine['cpu']}; ISA: {machine['isa']}; threads: {machine['threads']}; load average {load_text}")
    print(f"fp32 GEMM rate (2048^3, same threads and ISA caps): {machine['gemm_gflops']:.0f} GFLOP/s")
    groups = sorted({(r["device"], r["size"], r["batch"]) for r in records}, key=lambda k: (k[0], -k[1], k[2]))
    for device, size, batch in groups:
        rows = [r for r in records if (r["device"], r["size"], r["batch"]) == (device, size, batch)]
        print(f"\n### {device}, {size}x{size}, batch {batch}\n")
        table = []
        for r in rows:
            ratio = f"{r['time_vs_fused']:.2f}" if r.get("time_vs_fused") else "-"
            versus_authors = f"{r['speedup_vs_authors']:.2f}" if r.get("speedup_vs_authors") else "-"
            paired = f"{r['speedup_vs_authors_paired']:.2f}" if r.get("speedup_vs_authors_paired") else "-"
            rate = f"{r['gflop_per_s']:.0f}" if r.get("gflop_per_s") else "-"
            roof = f"{100 * r['gemm_rate_fraction']:.0f}%" if r.get("gemm_rate_fraction") else "-"
            table.append([
                r["row"],
                f"{r['median_ms']:.1f}",
                f"{r['min_ms']:.1f}",
                f"{r['throughput_img_s']:.2f}",
                ratio,
                versus_authors,
                paired,
                rate,
                roof,
            ])
        headers = [
            "row",
            "median ms",
            "min ms",
            "img/s",
            "time / fused",
            "x faster than authors",
            "paired",
            "GFLOP/s",
            "% GEMM rate",
        ]
        print(benchlib.markdown_table(headers, table))
    print("\nWhat each row times (model forward from a ready tensor to anomaly map + score; no pre/post-processing):")
    for name in dict.fromkeys(r["row"] for r in records):
        print(f"- {name}: {ROWS[name].includes}")
    for skip in skipped:
        print(f"- skipped {skip['row']} ({skip['device']}, {skip['size']} px, batch {skip['batch']}): {skip['reason']}")


def minimaxad_flops(sizes: Sequence[int], dims: Sequence[int] | None) -> dict[int, dict[str, int]]:
    """FLOPs per image (FlopCounterMode, multiply-add = 2) of the un-fused and fused model."""
    eager = benchlib.build_minimaxad(dims)
    fused = benchlib.build_minimaxad(dims, fused=True)
    result = {}
    for size in sizes:
        images = torch.rand(1, 3, size, size)
        result[size] = {
            "unfused": benchlib.count_flops(eager, images)[0],
            "fused": benchlib.count_flops(fused, images)[0],
        }
    return result


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--models", type=benchlib.parse_str_list, default=None, help=f"rows (default all but opt-in): {', '.join(ROWS)}"
    )
    parser.add_argument("--sizes", type=benchlib.parse_int_list, default=[256, 224])
    parser.add_argument("--batches", type=benchlib.parse_int_list, default=[1, 16])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15, help="timed calls per row at batch 1")
    parser.add_argument("--throughput-repeats", type=int, default=5, help="timed calls per row at batch > 1")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--pause-ms", type=float, default=20.0, help="idle time between calls (spinning pools settle)")
    parser.add_argument(
        "--devices",
        type=benchlib.parse_str_list,
        default=None,
        help="cpu and/or cuda (default: cpu, plus cuda if present)",
    )
    parser.add_argument(
        "--authors-repo",
        type=Path,
        default=None,
        help=f"checkout of the authors' repository for the {AUTHORS} row (default ${authors_reference.REPO_ENV})",
    )
    parser.add_argument("--compile", action="store_true", help="add the opt-in minimaxad_compile row")
    parser.add_argument("--calib-samples", type=int, default=16, help="random calibration batches for int8")
    parser.add_argument("--patchcore-train-images", type=int, default=benchlib.MVTEC_TRAIN_IMAGES)
    parser.add_argument("--dims", type=str, default=None, help="MiniMaxAD width override (tiny smoke runs only)")
    parser.add_argument("--clock-ghz", type=float, default=None, help="core clock for the fp32 peak estimate")
    parser.add_argument("--flops-per-cycle", type=int, default=None, help="fp32 FLOP/cycle/core for the peak estimate")
    parser.add_argument("--out-dir", type=Path, default=benchlib.RESULTS_DIR)
    parser.add_argument("--quick", action="store_true", help="64 px, batches 1 and 2, 2 repetitions, 1 warm-up")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.batches, args.repeats, args.throughput_repeats, args.warmup = [64], [1, 2], 2, 1, 1
        args.calib_samples, args.pause_ms = 2, 0.0
    args.dims = benchlib.parse_dims(args.dims)
    if args.compile and args.models is not None and "minimaxad_compile" not in args.models:
        args.models = [*args.models, "minimaxad_compile"]
    if args.devices is None:
        args.devices = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    return args


def main(argv: Sequence[str] | None = None) -> Path:
    args = parse_args(argv)
    names = resolve_rows(args.models)
    if args.compile and "minimaxad_compile" not in names:
        names.append("minimaxad_compile")
    benchlib.set_threads(args.threads)
    peak = benchlib.estimate_fp32_peak(args.threads, args.clock_ghz, args.flops_per_cycle)
    machine = benchlib.machine_info(args.threads)
    machine["gemm_gflops"] = benchlib.measured_gemm_gflops(args.threads)
    print(f"{machine['cpu']} ({machine['isa']}), {args.threads} threads; fp32 peak estimate: {peak.assumption}")
    flops = minimaxad_flops(args.sizes, args.dims)
    records: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="minimaxad_speed_") as workdir:
        for device_name in args.devices:
            device = torch.device(device_name)
            for size in args.sizes:
                cache: dict[str, Any] = {}
                for batch in args.batches:
                    print(f"[{device_name} {size}px batch {batch}] preparing {len(names)} rows ...", flush=True)
                    images = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(size + batch))
                    ctx = Context(args, device, size, batch, images.to(device), Path(workdir), cache)
                    group_records, group_skipped = measure_group(ctx, names)
                    records += group_records
                    skipped += group_skipped
                del cache
                gc.collect()
    add_ratios(records, flops, machine["gemm_gflops"])
    machine["load_average_end"] = benchlib.machine_info()["load_average"]
    print_tables(records, skipped, machine)
    payload = {
        "machine": machine,
        "fp32_peak": peak.as_dict(),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "timed": "model forward (torch nn.Module or its export) from an input tensor to anomaly map + score",
        "weights": "random (pre_trained=False); PatchCore memory bank random, sized as for MVTec AD bottle",
        "minimaxad_flops_per_image": flops,
        "results": records,
        "skipped": skipped,
    }
    path = benchlib.write_json(benchlib.result_path(args.out_dir, "speed"), payload)
    print(f"\nwrote {path}")
    return path


if __name__ == "__main__":
    main()

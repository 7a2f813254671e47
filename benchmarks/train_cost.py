"""Training cost: seconds per optimizer step and peak memory, MiniMaxAD against Reverse Distillation.

One full step = forward, loss, backward, optimizer step, on random images (cost does not depend on the
data), in the model's own training setup:

- MiniMaxAD: frozen encoder under ``no_grad``, ``ADCLoss`` (``MiniMaxAD(loss="adc")``), AdamW on bottleneck
  and decoder (lr 5e-3, weight decay 1e-5), as ``MiniMaxAD.configure_optimizers``;
- Reverse Distillation (anomalib): frozen WRN50-2 encoder, ``ReverseDistillationLoss``, Adam on bottleneck and
  decoder (lr 5e-3, betas (0.5, 0.99)), as ``ReverseDistillation.configure_optimizers``.

``bf16-mixed`` runs forward and loss under ``torch.autocast(<device>, dtype=torch.bfloat16)`` with fp32 weights
and optimizer (what Lightning's ``precision="bf16-mixed"`` does); the losses compute in fp32.

Every configuration runs in a fresh subprocess, so that its peak memory is its own: on the CPU the peak
resident set size of that process (``getrusage(RUSAGE_SELF).ru_maxrss``), reported with the RSS after imports
and model construction as the baseline; on a GPU ``torch.cuda.max_memory_allocated``.

Examples:
    python benchmarks/train_cost.py                      # batch 16 and 4 at 256 px, fp32 and bf16-mixed
    python benchmarks/train_cost.py --quick              # 64 px, batch 2, 1 timed step
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import benchlib

MODELS = ("minimaxad", "reverse_distillation")
PRECISIONS = ("fp32", "bf16-mixed")
RESULT_MARKER = "TRAIN_COST_RESULT "


# ---------------------------------------------------------------- child: one configuration


def _rss_mib() -> float:
    """Current resident set size (MiB) from /proc, or the peak where /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return _peak_rss_mib()


def _peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform != "darwin" else peak / 1024**2


def _build(model_name: str, size: int, dims: Sequence[int] | None) -> tuple[Any, Any, Any]:
    """(model in train mode, loss callable(model output, images), optimizer)."""
    import torch  # noqa: PLC0415

    if model_name == "minimaxad":
        from anomalib_minimaxad.loss import ADCLoss  # noqa: PLC0415
        from anomalib_minimaxad.torch_model import MiniMaxADModel  # noqa: PLC0415

        model = MiniMaxADModel(dims=dims).train()
        criterion = ADCLoss()
        parameters = [*model.bottleneck.parameters(), *model.decoder.parameters()]
        optimizer = torch.optim.AdamW(parameters, lr=5e-3, betas=(0.9, 0.999), weight_decay=1e-5)

        def loss_fn(output: Any, images: Any) -> Any:  # noqa: ANN401
            return criterion(*output, images.shape[-2:])

        return model, loss_fn, optimizer
    from anomalib.models.image.reverse_distillation.loss import ReverseDistillationLoss  # noqa: PLC0415

    model = benchlib.build_reverse_distillation(size).train()
    criterion = ReverseDistillationLoss()
    parameters = [*model.decoder.parameters(), *model.bottleneck.parameters()]
    optimizer = torch.optim.Adam(parameters, lr=0.005, betas=(0.5, 0.99))

    def rd_loss(output: Any, images: Any) -> Any:  # noqa: ANN401, ARG001
        return criterion(*output)

    return model, rd_loss, optimizer


def run_child(args: argparse.Namespace) -> dict[str, Any]:
    """Time ``args.steps`` optimizer steps of one configuration in this (fresh) process."""
    import torch  # noqa: PLC0415

    benchlib.set_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    model, loss_fn, optimizer = _build(args.model, args.size, benchlib.parse_dims(args.dims))
    model.to(device)
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(args.batch, 3, args.size, args.size, generator=generator).to(device)
    baseline_mib = _rss_mib()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    autocast = args.precision == "bf16-mixed"

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            output = model(images)
            loss = loss_fn(output, images)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(args.warmup):
        step()
    sync()
    seconds = []
    for _ in range(args.steps):
        start = time.perf_counter()
        loss = step()
        sync()
        seconds.append(time.perf_counter() - start)
    result = {
        "model": args.model,
        "precision": args.precision,
        "batch": args.batch,
        "size": args.size,
        "device": args.device,
        "threads": args.threads,
        "step_seconds": seconds,
        "median_step_s": sorted(seconds)[len(seconds) // 2],
        "min_step_s": min(seconds),
        "last_loss": loss,
        "rss_after_setup_mib": baseline_mib,
        "peak_rss_mib": _peak_rss_mib(),
    }
    if device.type == "cuda":
        result["cuda_max_allocated_mib"] = torch.cuda.max_memory_allocated(device) / 1024**2
    return result


# ---------------------------------------------------------------- parent: all configurations


def run_configuration(args: argparse.Namespace, model: str, precision: str, batch: int) -> dict[str, Any]:
    """Run one configuration in a fresh interpreter; its result, or the error."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        f"--model={model}",
        f"--precision={precision}",
        f"--batch={batch}",
        f"--size={args.size}",
        f"--steps={args.steps}",
        f"--warmup={args.warmup}",
        f"--threads={args.threads}",
        f"--device={args.device}",
    ]
    if args.dims:
        command.append(f"--dims={args.dims}")
    start = time.perf_counter()
    process = subprocess.run(command, capture_output=True, text=True, check=False, timeout=args.timeout)  # noqa: S603
    for line in process.stdout.splitlines():
        if line.startswith(RESULT_MARKER):
            result = json.loads(line.removeprefix(RESULT_MARKER))
            result["process_seconds"] = time.perf_counter() - start
            return result
    tail = (process.stderr or process.stdout).strip().splitlines()[-3:]
    return {
        "model": model,
        "precision": precision,
        "batch": batch,
        "error": " | ".join(tail),
        "returncode": process.returncode,
    }


def print_table(results: Sequence[dict[str, Any]]) -> None:
    rows = []
    for r in results:
        if "error" in r:
            rows.append([r["model"], r["precision"], r["batch"], "failed", "", "", "", r["error"][:80]])
            continue
        gpu = f"{r['cuda_max_allocated_mib']:.0f}" if "cuda_max_allocated_mib" in r else "-"
        rows.append(
            [
                r["model"],
                r["precision"],
                r["batch"],
                f"{r['median_step_s']:.2f}",
                f"{r['batch'] / r['median_step_s']:.2f}",
                f"{r['peak_rss_mib']:.0f}",
                f"{r['peak_rss_mib'] - r['rss_after_setup_mib']:.0f}",
                gpu,
            ]
        )
    headers = [
        "model",
        "precision",
        "batch",
        "s/step (median)",
        "img/s",
        "peak RSS MiB",
        "peak - setup MiB",
        "CUDA max alloc MiB",
    ]
    print(benchlib.markdown_table(headers, rows))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", type=benchlib.parse_str_list, default=list(MODELS))
    parser.add_argument("--precisions", type=benchlib.parse_str_list, default=list(PRECISIONS))
    parser.add_argument("--batches", type=benchlib.parse_int_list, default=[16, 4])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per configuration")
    parser.add_argument(
        "--warmup", type=int, default=2, help="untimed steps first (allocator, oneDNN primitive caches)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dims", type=str, default=None, help="MiniMaxAD width override (tiny smoke runs only)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per configuration")
    parser.add_argument("--out-dir", type=Path, default=benchlib.RESULTS_DIR)
    parser.add_argument("--quick", action="store_true", help="64 px, batch 2, 1 warm-up and 1 timed step")
    # one configuration, in the child process
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", default="minimaxad", help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=16, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.batches, args.steps, args.warmup = 64, [2], 1, 1
    for model in args.models:
        if model not in MODELS:
            parser.error(f"unknown model {model!r}; choose from {MODELS}")
    for precision in args.precisions:
        if precision not in PRECISIONS:
            parser.error(f"unknown precision {precision!r}; choose from {PRECISIONS}")
    return args


def main(argv: Sequence[str] | None = None) -> Path | None:
    args = parse_args(argv)
    if args.child:
        print(RESULT_MARKER + json.dumps(run_child(args)), flush=True)
        return None
    results = []
    for batch in args.batches:
        for model in args.models:
            for precision in args.precisions:
                print(f"[{model} {precision} batch {batch} {args.size}px] ...", flush=True)
                results.append(run_configuration(args, model, precision, batch))
    print()
    print_table(results)
    payload = {
        "machine": benchlib.machine_info(args.threads),
        "config": {
            k: (str(v) if isinstance(v, Path) else v)
            for k, v in vars(args).items()
            if k not in {"child", "model", "precision", "batch"}
        },
        "step": "forward + loss + backward + optimizer step, random images, weights random (pre_trained=False)",
        "memory": "peak RSS of a fresh process per configuration (includes Python, torch and the model)",
        "results": results,
    }
    path = benchlib.write_json(benchlib.result_path(args.out_dir, "train_cost"), payload)
    print(f"\nwrote {path}")
    return path


if __name__ == "__main__":
    main()

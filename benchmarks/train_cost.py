"""Training cost: seconds per optimizer step and peak memory, MiniMaxAD against the authors' loop and peers.

One full step = forward, loss, backward, optimizer step, on random images (cost does not depend on the
data), side by side in one run, in each model's own training setup:

- ``authors``: the authors' own networks and loop (``authors_reference.build_authors_training_setup``, from a
  checkout of their repository, ``--authors-repo`` or ``$MINIMAXAD_AUTHORS_REPO``): the frozen encoder runs
  *with* gradients (their ``train_*.py`` calls it outside ``no_grad``), fp32, NCHW, global cosine loss,
  AdamW(lr 5e-3, weight decay 1e-5) on bottleneck and decoder. Skipped with the reason without a checkout.
- ``minimaxad`` (ours): frozen encoder under ``no_grad`` (no graph through it), the same loss (``--loss``,
  default the authors' global cosine; ``adc`` for ``ADCLoss``) and optimizer, in each ``--memory-formats``
  (``channels_last``, ``contiguous``) and ``--precisions``;
- ``reverse_distillation`` (anomalib, opt-in): frozen WRN50-2 encoder, its loss, Adam(lr 5e-3, betas (0.5, 0.99)).

``bf16-mixed`` (and ``16-mixed``, CUDA only, with a gradient scaler) runs forward and loss under
``torch.autocast`` with fp32 weights and optimizer, as Lightning's ``precision`` does; the losses compute in
fp32. Loss parity: every run of ours starts from the same weights and images, so its first loss (before any
update) is compared with ours at fp32 in the same memory format; the table prints the difference.

Every configuration runs in a fresh subprocess, so that its peak memory is its own: on the CPU the peak
resident set size of that process (``getrusage(RUSAGE_SELF).ru_maxrss``), reported with the RSS after imports
and model construction as the baseline; on a GPU ``torch.cuda.max_memory_allocated``.

Examples:
    python benchmarks/train_cost.py --authors-repo /path/to/MiniMaxAD   # batch 16 at 256 px: authors vs ours
    python benchmarks/train_cost.py --quick                                # 64 px, batch 2, 1 timed step
    python benchmarks/train_cost.py --device cuda --precisions fp32,bf16-mixed,16-mixed --compile
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import authors_reference
import benchlib

MODELS = ("minimaxad", "authors", "reverse_distillation")
PRECISIONS = ("fp32", "bf16-mixed", "16-mixed")
MEMORY_FORMATS = ("channels_last", "contiguous")
LOSSES = ("global", "adc")
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


def _minimaxad_step(args: argparse.Namespace, images: Any) -> Callable[[], float]:  # noqa: ANN401
    """One optimizer step of ours: frozen encoder under ``no_grad`` (inside the model), AdamW on the rest."""
    import torch  # noqa: PLC0415

    from anomalib_minimaxad.loss import ADCLoss, GlobalCosineLoss  # noqa: PLC0415
    from anomalib_minimaxad.torch_model import MiniMaxADModel  # noqa: PLC0415

    torch.manual_seed(0)
    model = MiniMaxADModel(dims=benchlib.parse_dims(args.dims)).train().to(images.device)
    if args.memory_format == "channels_last":
        model = model.to(memory_format=torch.channels_last)
    criterion = ADCLoss() if args.loss == "adc" else GlobalCosineLoss()
    parameters = [*model.bottleneck.parameters(), *model.decoder.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=5e-3, betas=(0.9, 0.999), weight_decay=1e-5)
    forward = torch.compile(model) if args.compile else model
    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(args.precision)
    scaler = torch.amp.GradScaler(images.device.type, enabled=dtype == torch.float16)

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(images.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            encoder_features, decoder_features = forward(images)
            loss = criterion(encoder_features, decoder_features, images.shape[-2:])
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return float(loss.detach())

    return step


def _reverse_distillation_step(args: argparse.Namespace, images: Any) -> Callable[[], float]:  # noqa: ANN401
    import torch  # noqa: PLC0415
    from anomalib.models.image.reverse_distillation.loss import ReverseDistillationLoss  # noqa: PLC0415

    model = benchlib.build_reverse_distillation(args.size).train().to(images.device)
    criterion = ReverseDistillationLoss()
    optimizer = torch.optim.Adam(
        [*model.decoder.parameters(), *model.bottleneck.parameters()], lr=5e-3, betas=(0.5, 0.99)
    )
    autocast = args.precision == "bf16-mixed"

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=autocast):
            loss = criterion(*model(images))
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    return step


def _authors_step(args: argparse.Namespace, images: Any) -> Callable[[], float]:  # noqa: ANN401
    setup = authors_reference.build_authors_training_setup(args.authors_repo, benchlib.parse_dims(args.dims))
    for network in (setup.encoder, setup.bottleneck, setup.decoder):
        network.to(images.device)
    return lambda: setup.step(images)


def run_child(args: argparse.Namespace) -> dict[str, Any]:
    """Time ``args.steps`` optimizer steps of one configuration in this (fresh) process."""
    import torch  # noqa: PLC0415

    benchlib.set_threads(args.threads)
    device = torch.device(args.device)
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(args.batch, 3, args.size, args.size, generator=generator).to(device)
    if args.model == "minimaxad" and args.memory_format == "channels_last":
        images = images.contiguous(memory_format=torch.channels_last)
    builders = {
        "minimaxad": _minimaxad_step,
        "authors": _authors_step,
        "reverse_distillation": _reverse_distillation_step,
    }
    step = builders[args.model](args, images)
    baseline_mib = _rss_mib()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    first_loss = step()  # before any update: the same weights and images for every run of one model
    for _ in range(args.warmup - 1):
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
        "memory_format": args.memory_format,
        "batch": args.batch,
        "size": args.size,
        "device": args.device,
        "threads": args.threads,
        "step_seconds": seconds,
        "median_step_s": sorted(seconds)[len(seconds) // 2],
        "min_step_s": min(seconds),
        "first_loss": first_loss,
        "last_loss": loss,
        "rss_after_setup_mib": baseline_mib,
        "peak_rss_mib": _peak_rss_mib(),
    }
    if device.type == "cuda":
        result["cuda_max_allocated_mib"] = torch.cuda.max_memory_allocated(device) / 1024**2
    return result


# ---------------------------------------------------------------- parent: all configurations


@dataclass(frozen=True)
class Configuration:
    """One row of the table."""

    model: str
    precision: str
    memory_format: str
    batch: int


def configurations(args: argparse.Namespace) -> list[Configuration]:
    """The authors' loop as they run it (fp32, NCHW), then ours in every format and precision, then peers."""
    rows = []
    for batch in args.batches:
        for model in args.models:
            if model == "authors":
                rows.append(Configuration(model, "fp32", "contiguous", batch))
            elif model == "minimaxad":
                rows += [
                    Configuration(model, precision, memory_format, batch)
                    for memory_format in args.memory_formats
                    for precision in args.precisions
                ]
            else:
                rows += [Configuration(model, precision, "contiguous", batch) for precision in args.precisions]
    return rows


def run_configuration(args: argparse.Namespace, config: Configuration) -> dict[str, Any]:
    """Run one configuration in a fresh interpreter; its result, or why it was skipped or failed."""
    record: dict[str, Any] = {
        "model": config.model,
        "precision": config.precision,
        "memory_format": config.memory_format,
        "batch": config.batch,
    }
    if config.precision == "16-mixed" and args.device == "cpu":
        return {**record, "skipped": "16-mixed runs on CUDA only"}
    if config.model == "authors":
        try:
            authors_reference.resolve_repo(args.authors_repo)
        except authors_reference.AuthorsReferenceUnavailable as reason:
            return {**record, "skipped": str(reason)}
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        f"--model={config.model}",
        f"--precision={config.precision}",
        f"--memory-format={config.memory_format}",
        f"--batch={config.batch}",
        f"--size={args.size}",
        f"--steps={args.steps}",
        f"--warmup={args.warmup}",
        f"--threads={args.threads}",
        f"--device={args.device}",
        f"--loss={args.loss}",
    ]
    if args.dims:
        command.append(f"--dims={args.dims}")
    if args.authors_repo:
        command.append(f"--authors-repo={args.authors_repo}")
    if args.compile:
        command.append("--compile")
    start = time.perf_counter()
    process = subprocess.run(command, capture_output=True, text=True, check=False, timeout=args.timeout)  # noqa: S603
    for line in process.stdout.splitlines():
        if line.startswith(RESULT_MARKER):
            result = json.loads(line.removeprefix(RESULT_MARKER))
            result["process_seconds"] = time.perf_counter() - start
            return result
    tail = (process.stderr or process.stdout).strip().splitlines()[-3:]
    return {**record, "error": " | ".join(tail), "returncode": process.returncode}


def add_comparisons(results: Sequence[dict[str, Any]]) -> None:
    """Time and memory relative to the authors' loop (same batch); loss difference to ours at fp32."""
    authors = {r["batch"]: r for r in results if r["model"] == "authors" and "median_step_s" in r}
    ours_fp32 = {
        (r["batch"], r["memory_format"]): r
        for r in results
        if r["model"] == "minimaxad" and r["precision"] == "fp32" and "first_loss" in r
    }
    for r in results:
        if "median_step_s" not in r:
            continue
        reference = authors.get(r["batch"])
        if reference is not None:
            r["time_vs_authors"] = r["median_step_s"] / reference["median_step_s"]
            r["memory_vs_authors"] = _memory_mib(r) / _memory_mib(reference)
        fp32 = ours_fp32.get((r["batch"], r["memory_format"]))
        if r["model"] == "minimaxad" and fp32 is not None:
            r["first_loss_diff_vs_fp32"] = abs(r["first_loss"] - fp32["first_loss"])


def _memory_mib(result: dict[str, Any]) -> float:
    """The memory a step adds: CUDA max allocated on a GPU, else peak RSS above the set-up RSS."""
    if "cuda_max_allocated_mib" in result:
        return result["cuda_max_allocated_mib"]
    return result["peak_rss_mib"] - result["rss_after_setup_mib"]


def print_table(results: Sequence[dict[str, Any]], machine: dict[str, Any]) -> None:
    """Markdown table headed by the CPU, its ISA and the load."""
    load = machine.get("load_average")
    print(f"CPU: {machine['cpu']}; ISA: {machine['isa']}; threads: {machine['threads']}; load average {load}")
    rows = []
    for r in results:
        label = [r["model"], r["precision"], r["memory_format"], r["batch"]]
        if "median_step_s" not in r:
            status, reason = ("skipped", r["skipped"]) if "skipped" in r else ("failed", r["error"])
            rows.append([*label, status, *[""] * 7, reason[:100]])
            continue
        gpu = f"{r['cuda_max_allocated_mib']:.0f}" if "cuda_max_allocated_mib" in r else "-"
        versus = [f"{r[k]:.2f}" if k in r else "-" for k in ("time_vs_authors", "memory_vs_authors")]
        loss_diff = f"{r['first_loss_diff_vs_fp32']:.1e}" if "first_loss_diff_vs_fp32" in r else "-"
        rows.append([
            *label,
            f"{r['median_step_s']:.2f}",
            f"{r['batch'] / r['median_step_s']:.2f}",
            f"{r['peak_rss_mib']:.0f}",
            f"{r['peak_rss_mib'] - r['rss_after_setup_mib']:.0f}",
            gpu,
            *versus,
            f"{r['first_loss']:.5f}",
            loss_diff,
        ])
    headers = [
        "model",
        "precision",
        "memory format",
        "batch",
        "s/step (median)",
        "img/s",
        "peak RSS MiB",
        "peak - setup MiB",
        "CUDA max alloc MiB",
        "time / authors",
        "memory / authors",
        "first loss",
        "|loss - fp32 loss|",
    ]
    print(benchlib.markdown_table(headers, rows))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", type=benchlib.parse_str_list, default=["authors", "minimaxad"])
    parser.add_argument("--precisions", type=benchlib.parse_str_list, default=["fp32", "bf16-mixed"])
    parser.add_argument("--memory-formats", type=benchlib.parse_str_list, default=list(MEMORY_FORMATS))
    parser.add_argument("--batches", type=benchlib.parse_int_list, default=[16])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--loss", choices=LOSSES, default="global", help="our loss (the authors' loop: global)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per configuration")
    parser.add_argument(
        "--warmup", type=int, default=2, help="untimed steps first (allocator, oneDNN primitive caches); at least 1"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    parser.add_argument("--authors-repo", type=Path, default=None, help=f"default ${authors_reference.REPO_ENV}")
    parser.add_argument("--compile", action="store_true", help="torch.compile our model (opt-in)")
    parser.add_argument("--dims", type=str, default=None, help="width override (tiny smoke runs only)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per configuration")
    parser.add_argument("--out-dir", type=Path, default=benchlib.RESULTS_DIR)
    parser.add_argument("--quick", action="store_true", help="64 px, batch 2, 1 warm-up and 1 timed step")
    # one configuration, in the child process
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", default="minimaxad", help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    parser.add_argument("--memory-format", default="contiguous", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=16, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.batches, args.steps, args.warmup = 64, [2], 1, 1
    for name, values, choices in (
        ("model", args.models, MODELS),
        ("precision", args.precisions, PRECISIONS),
        ("memory format", args.memory_formats, MEMORY_FORMATS),
    ):
        for value in values:
            if value not in choices:
                parser.error(f"unknown {name} {value!r}; choose from {choices}")
    if args.warmup < 1:
        parser.error(
            f"--warmup must be at least 1 (the first step gives the loss before any update), got {args.warmup}"
        )
    if args.device is None:
        import torch  # noqa: PLC0415

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    return args


def main(argv: Sequence[str] | None = None) -> Path | None:
    args = parse_args(argv)
    if args.child:
        print(RESULT_MARKER + json.dumps(run_child(args)), flush=True)
        return None
    machine = benchlib.machine_info(args.threads)
    results = []
    for config in configurations(args):
        print(
            f"[{config.model} {config.precision} {config.memory_format} batch {config.batch} {args.size}px] ...",
            flush=True,
        )
        results.append(run_configuration(args, config))
    add_comparisons(results)
    machine["load_average_end"] = benchlib.machine_info()["load_average"]
    print()
    print_table(results, machine)
    payload = {
        "machine": machine,
        "config": {
            k: (str(v) if isinstance(v, Path) else v)
            for k, v in vars(args).items()
            if k not in {"child", "model", "precision", "memory_format", "batch"}
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

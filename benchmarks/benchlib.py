"""Shared helpers of the benchmark scripts: machine facts, threads, timing, model builders, output files.

Nothing here is part of the ``anomalib_minimaxad`` package; the scripts in this folder import it by name
(``python benchmarks/<script>.py`` puts this folder on ``sys.path``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

BENCHMARKS_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCHMARKS_DIR / "results"
REPO_ROOT = BENCHMARKS_DIR.parent

#: MVTec AD "bottle" has 209 training images: the size of PatchCore's memory bank before coreset sampling.
MVTEC_TRAIN_IMAGES = 209
#: PatchCore's embedding (wide_resnet50_2 layer2 + layer3) and its stride.
PATCHCORE_FEATURE_DIM = 1536
PATCHCORE_STRIDE = 8


# ---------------------------------------------------------------- command line


def parse_int_list(text: str) -> list[int]:
    """``"256,224"`` -> ``[256, 224]``."""
    return [int(part) for part in text.split(",") if part.strip()]


def parse_str_list(text: str) -> list[str]:
    """``"a, b"`` -> ``["a", "b"]``."""
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_dims(text: str | None) -> tuple[int, ...] | None:
    """Optional MiniMaxAD width override (``"16,32,64,128"``) for tiny smoke runs."""
    return tuple(parse_int_list(text)) if text else None


# ---------------------------------------------------------------- machine


def _lscpu() -> dict[str, str]:
    try:
        output = subprocess.run(["lscpu"], capture_output=True, text=True, check=False, timeout=10).stdout  # noqa: S607
    except (OSError, subprocess.SubprocessError):
        return {}
    info = {}
    for line in output.splitlines():
        key, _, value = line.partition(":")
        info[key.strip()] = value.strip()
    return info


def _cpuinfo_field(name: str) -> str | None:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return None
    match = re.search(rf"^{re.escape(name)}\s*:\s*(.+)$", text, flags=re.MULTILINE)
    return match.group(1).strip() if match else None


def cpu_flags() -> set[str]:
    """The CPU's feature flags (``avx2``, ``avx512f``, ``avx512_bf16``, ``amx_tile`` ...)."""
    flags = _lscpu().get("Flags") or _cpuinfo_field("flags") or ""
    return set(flags.split())


def cpu_name() -> str:
    """Model name of the CPU."""
    return _lscpu().get("Model name") or _cpuinfo_field("model name") or platform.processor() or "unknown-cpu"


def physical_cores() -> int:
    """Physical cores (``os.cpu_count()`` when lscpu does not tell)."""
    info = _lscpu()
    try:
        return int(info["Core(s) per socket"]) * int(info.get("Socket(s)", "1"))
    except (KeyError, ValueError):
        return os.cpu_count() or 1


def clock_ghz() -> tuple[float, str]:
    """Best guess of the sustained core clock and where it came from."""
    info = _lscpu()
    if info.get("CPU max MHz"):
        return float(info["CPU max MHz"]) / 1000, "lscpu 'CPU max MHz'"
    mhz = _cpuinfo_field("cpu MHz")
    if mhz:
        return float(mhz) / 1000, "/proc/cpuinfo 'cpu MHz' (often the base/TSC clock; boost may be higher)"
    return 2.5, "unknown, assumed 2.5 GHz"


@dataclass
class PeakEstimate:
    """Theoretical fp32 peak: cores x clock x FLOPs per cycle per core."""

    cores: int
    clock_ghz: float
    flops_per_cycle: int
    assumption: str

    @property
    def gflops(self) -> float:
        """Peak in GFLOP/s."""
        return self.cores * self.clock_ghz * self.flops_per_cycle

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "cores": self.cores,
            "clock_ghz": self.clock_ghz,
            "flops_per_cycle": self.flops_per_cycle,
            "gflops": self.gflops,
            "assumption": self.assumption,
        }


def estimate_fp32_peak(threads: int, clock: float | None = None, flops_per_cycle: int | None = None) -> PeakEstimate:
    """fp32 peak of ``threads`` cores from the CPU flags (2 FMA units assumed).

    AVX-512: 2 FMA x 16 lanes x 2 FLOPs = 64 FLOP/cycle/core; AVX2: 32; SSE: 16. Some CPUs have a single
    AVX-512 FMA unit (32) or run AVX-512 at a lower clock; pass ``clock``/``flops_per_cycle`` to override.
    """
    flags = cpu_flags()
    if flops_per_cycle is None:
        if "avx512f" in flags:
            flops_per_cycle, isa = 64, "AVX-512, 2 FMA units"
        elif "avx2" in flags and "fma" in flags:
            flops_per_cycle, isa = 32, "AVX2, 2 FMA units"
        else:
            flops_per_cycle, isa = 16, "SSE, 2 FMA units"
    else:
        isa = "given"
    source = "given"
    if clock is None:
        clock, source = clock_ghz()
    cores = min(threads, physical_cores())
    assumption = (
        f"{cores} cores x {clock:.2f} GHz ({source}) x {flops_per_cycle} fp32 FLOP/cycle ({isa}) "
        f"= {cores * clock * flops_per_cycle:.0f} GFLOP/s"
    )
    return PeakEstimate(cores, clock, flops_per_cycle, assumption)


def measured_gemm_gflops(threads: int, size: int = 2048, repeats: int = 5) -> float:
    """Best fp32 GEMM rate (oneDNN inner product when available, else ``torch.mm``) as an empirical roof."""
    torch.set_num_threads(threads)
    a = torch.randn(size, size)
    b = torch.randn(size, size)
    onednn = hasattr(torch.ops, "mkldnn") and hasattr(torch.ops.mkldnn, "_linear_pointwise")

    def gemm() -> torch.Tensor:
        if onednn:
            return torch.ops.mkldnn._linear_pointwise(a, b, None, "none", [], "")  # noqa: SLF001
        return a @ b

    gemm()
    best = min(_timed(gemm) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def _timed(function: Callable[[], object]) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


#: The CPU flags that decide which kernels oneDNN, MKL and OpenVINO run (recorded with every result).
ISA_FLAGS = ("avx2", "fma", "avx_vnni", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")
#: Environment variables that cap the ISA the libraries use (``ONEDNN_MAX_CPU_ISA=AVX2`` emulates an AVX2 CPU).
ISA_LIMIT_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "MKL_DEBUG_CPU_TYPE")


def isa_summary() -> str:
    """One line for tables: the widest vector ISA and its int8/bf16 extensions, plus any ISA cap in effect.

    Example: ``"AVX-512 (VNNI, BF16, AMX-BF16, AMX-INT8)"`` or ``"AVX2 (FMA) [ONEDNN_MAX_CPU_ISA=AVX2]"``.
    """
    flags = cpu_flags()
    if "avx512f" in flags:
        base = "AVX-512"
        extras = [
            label
            for flag, label in (
                ("avx512_vnni", "VNNI"),
                ("avx512_bf16", "BF16"),
                ("amx_bf16", "AMX-BF16"),
                ("amx_int8", "AMX-INT8"),
            )
            if flag in flags
        ]
    elif "avx2" in flags:
        base = "AVX2"
        extras = [label for flag, label in (("fma", "FMA"), ("avx_vnni", "AVX-VNNI")) if flag in flags]
    else:
        base, extras = "SSE", []
    text = f"{base} ({', '.join(extras)})" if extras else base
    limits = [f"{name}={os.environ[name]}" for name in ISA_LIMIT_VARIABLES if name in os.environ]
    return f"{text} [{', '.join(limits)}]" if limits else text


def machine_info(threads: int | None = None) -> dict[str, Any]:
    """Facts about this machine and the software, stored with every result."""
    import numpy as np  # noqa: PLC0415

    info: dict[str, Any] = {
        "hostname": socket.gethostname(),
        "cpu": cpu_name(),
        # VMs often report only "AMD EPYC": family and model tell e.g. Zen 4 (25/17) from Zen 5 (26/...)
        "cpu_family_model": [_cpuinfo_field("cpu family"), _cpuinfo_field("model")],
        "physical_cores": physical_cores(),
        "logical_cpus": os.cpu_count(),
        "isa_flags": sorted(cpu_flags() & set(ISA_FLAGS)),
        "isa": isa_summary(),
        "isa_limits": {name: os.environ[name] for name in ISA_LIMIT_VARIABLES if name in os.environ},
        "clock_ghz": clock_ghz()[0],
        "threads": threads,
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    for module in ("onnxruntime", "openvino", "nncf", "anomalib"):
        info[module] = _version_of(module)
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _version_of(module: str) -> str | None:
    from importlib import metadata  # noqa: PLC0415

    try:
        return metadata.version(module)
    except metadata.PackageNotFoundError:
        return None


def set_threads(threads: int) -> None:
    """Same thread count for torch (intra-op) everywhere; one inter-op thread."""
    torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):  # only settable before the first parallel work
        torch.set_num_interop_threads(1)


# ---------------------------------------------------------------- output


def machine_tag() -> str:
    """File-name friendly ``<hostname>`` (falls back to the CPU name)."""
    name = socket.gethostname() or cpu_name()
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")[:40] or "machine"


def result_path(out_dir: str | Path, prefix: str, suffix: str = ".json") -> Path:
    """``<out_dir>/<prefix>_<machine>_<UTC timestamp><suffix>``."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    return Path(out_dir) / f"{prefix}_{machine_tag()}_{stamp}{suffix}"


def write_json(path: Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (atomically) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def latest_result(out_dir: str | Path, prefix: str) -> Path | None:
    """Newest ``<prefix>_*.json`` in ``out_dir``."""
    candidates = sorted(Path(out_dir).glob(f"{prefix}_*.json"), key=lambda p: p.stat().st_mtime)
    return candidates[-1] if candidates else None


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------- timing


@dataclass
class Timings:
    """Per-call wall and process-CPU times (ms) of one runner."""

    wall_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        """Median and min wall time, median CPU time."""
        return {
            "median_ms": statistics.median(self.wall_ms),
            "min_ms": min(self.wall_ms),
            "mean_ms": statistics.fmean(self.wall_ms),
            "cpu_median_ms": statistics.median(self.cpu_ms),
            "runs": len(self.wall_ms),
        }


def interleaved(
    runners: dict[str, Callable[[], object]],
    repeats: int,
    warmup: int,
    synchronize: Callable[[], None] | None = None,
    pause_s: float = 0.0,
) -> dict[str, Timings]:
    """Time every runner ``repeats`` times, round-robin, after ``warmup`` calls each.

    Round-robin (model A, B, C, A, B, C, ...) spreads slow drifts of the machine (other load, clock, thermal)
    evenly over all runners instead of penalising whichever happens to run during them. ``pause_s`` of idle
    time before each timed call (not timed) lets the previous runtime's spinning worker threads go to sleep.
    """
    sync = synchronize or (lambda: None)
    for run in runners.values():
        for _ in range(warmup):
            run()
        sync()
    timings = {name: Timings() for name in runners}
    for _ in range(repeats):
        for name, run in runners.items():
            sync()
            if pause_s > 0:
                time.sleep(pause_s)
            cpu_start, wall_start = time.process_time(), time.perf_counter()
            run()
            sync()
            wall, cpu = time.perf_counter() - wall_start, time.process_time() - cpu_start
            timings[name].wall_ms.append(wall * 1e3)
            timings[name].cpu_ms.append(cpu * 1e3)
    return timings


# ---------------------------------------------------------------- models


def randomize_norm_statistics(model: nn.Module, seed: int = 0) -> None:
    """Non-trivial BN statistics, layer scales and GRN parameters (random weights, but every term matters)."""
    from anomalib_minimaxad.components.layers import GRN, UniRepLKNetBlock  # noqa: PLC0415

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1, generator=generator)
                module.running_var.uniform_(0.5, 2.0, generator=generator)
                module.weight.uniform_(0.5, 1.5, generator=generator)
                module.bias.uniform_(-0.1, 0.1, generator=generator)
            elif isinstance(module, GRN):
                module.gamma.normal_(generator=generator)
                if module.beta is not None:
                    module.beta.normal_(std=0.1, generator=generator)
            elif isinstance(module, UniRepLKNetBlock) and module.gamma is not None:
                module.gamma.uniform_(0.1, 1.0, generator=generator)


def build_minimaxad(dims: Sequence[int] | None = None, fused: bool = False, seed: int = 0) -> nn.Module:
    """A randomly initialised :class:`MiniMaxADModel` in eval mode (``pre_trained=False``).

    Un-fused means the whole network as built, the encoder included (``fuse_frozen_encoder = False``: training
    and validation run the frozen encoder as a fused copy).
    """
    from anomalib_minimaxad.torch_model import MiniMaxADModel  # noqa: PLC0415

    torch.manual_seed(seed)
    model = MiniMaxADModel(dims=dims).eval()
    randomize_norm_statistics(model, seed)
    if fused:
        return model.reparameterize()
    model.fuse_frozen_encoder = False
    return model


def has_fast_cpu_path() -> bool:
    """Whether this torch build has the kernels of the fused model's fast CPU path (components/fast_cpu.py)."""
    from anomalib_minimaxad.components import fast_cpu  # noqa: PLC0415

    return fast_cpu.is_available()


@contextlib.contextmanager
def fast_cpu_path_disabled() -> Iterator[None]:
    """Switch the package's fast CPU inference path off (blocks and LayerNorm2d take the standard path)."""
    from anomalib_minimaxad.components import fast_cpu  # noqa: PLC0415

    original = fast_cpu.applies
    fast_cpu.applies = lambda _x: False
    try:
        yield
    finally:
        fast_cpu.applies = original


def build_minimaxad_reference(dims: Sequence[int] | None = None, seed: int = 0) -> nn.Module:
    """The fused model without the package's fast CPU path (``reparameterize(fast_cpu=False)``), same weights."""
    from anomalib_minimaxad.torch_model import MiniMaxADModel  # noqa: PLC0415

    torch.manual_seed(seed)
    model = MiniMaxADModel(dims=dims).eval()
    randomize_norm_statistics(model, seed)
    return model.reparameterize(fast_cpu=False)


def patchcore_bank_size(image_size: int, coreset_ratio: float, train_images: int = MVTEC_TRAIN_IMAGES) -> int:
    """Memory-bank rows of PatchCore trained on ``train_images`` images at ``image_size`` px."""
    patches = train_images * (image_size // PATCHCORE_STRIDE) ** 2
    return max(1, round(patches * coreset_ratio))


def build_reverse_distillation(image_size: int, seed: int = 0) -> nn.Module:
    """Anomalib's ``ReverseDistillationModel`` as ``ReverseDistillation()`` builds it, random weights."""
    from anomalib.models.image.reverse_distillation.anomaly_map import AnomalyMapGenerationMode  # noqa: PLC0415
    from anomalib.models.image.reverse_distillation.torch_model import ReverseDistillationModel  # noqa: PLC0415

    torch.manual_seed(seed)
    return ReverseDistillationModel(
        backbone="wide_resnet50_2",
        input_size=(image_size, image_size),
        layers=("layer1", "layer2", "layer3"),
        anomaly_map_mode=AnomalyMapGenerationMode.ADD,  # the Lightning module's default
        pre_trained=False,
    ).eval()


def build_patchcore(
    image_size: int, coreset_ratio: float, seed: int = 0, train_images: int = MVTEC_TRAIN_IMAGES
) -> nn.Module:
    """Anomalib's ``PatchcoreModel`` (wide_resnet50_2, layer2+layer3, 9 neighbours) with a random memory bank.

    The bank has the size coreset sampling would leave from ``train_images`` images: no sampling is run
    (nearest-neighbour search cost depends on the bank's size, not its content).
    """
    from anomalib.models.image.patchcore.torch_model import PatchcoreModel  # noqa: PLC0415

    torch.manual_seed(seed)
    model = PatchcoreModel(layers=("layer2", "layer3"), backbone="wide_resnet50_2", pre_trained=False, num_neighbors=9)
    rows = patchcore_bank_size(image_size, coreset_ratio, train_images)
    model.memory_bank = torch.randn(rows, PATCHCORE_FEATURE_DIM)
    return model.eval()


def build_efficientad_s(seed: int = 0) -> nn.Module:
    """Anomalib's ``EfficientAdModel`` size S with normalisation statistics and quantiles set (as after fit)."""
    from anomalib.models.image.efficient_ad.torch_model import EfficientAdModel, EfficientAdModelSize  # noqa: PLC0415

    torch.manual_seed(seed)
    model = EfficientAdModel(teacher_out_channels=384, model_size=EfficientAdModelSize.S, padding=False, pad_maps=True)
    with torch.no_grad():
        model.mean_std["mean"].normal_()
        model.mean_std["std"].uniform_(0.5, 2.0)
        for name, value in zip(("qa_st", "qb_st", "qa_ae", "qb_ae"), (0.1, 0.9, 0.1, 0.9), strict=True):
            model.quantiles[name].fill_(value)
    return model.eval()


def count_parameters(module: nn.Module) -> int:
    """Parameters (not buffers)."""
    return sum(p.numel() for p in module.parameters())


def count_flops(module: nn.Module, inputs: torch.Tensor) -> tuple[int, dict[str, int]]:
    """FLOPs of one forward (a multiply-add counts 2) with torch's ``FlopCounterMode``, and per operator.

    MiniMaxAD is counted on its standard path (the fast CPU path computes the same products with kernels
    the counter does not see).
    """
    from torch.utils.flop_counter import FlopCounterMode  # noqa: PLC0415

    counter = FlopCounterMode(display=False)
    # The package's fast CPU path calls oneDNN ops that FlopCounterMode does not know: count the standard graph.
    with torch.no_grad(), fast_cpu_path_disabled(), counter:
        module(inputs)
    per_op = {str(op): int(n) for op, n in counter.get_flop_counts().get("Global", {}).items()}
    return int(counter.get_total_flops()), per_op

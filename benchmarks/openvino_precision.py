"""OpenVINO f32, bf16 and INT8 (NNCF PTQ / ACQ) of one trained MiniMaxAD: latency, accuracy, per-layer profile.

Trains MiniMaxAD on one demo category (``anomalib_minimaxad.demo``, MVTec AD layout) through anomalib's
``Engine``, exports it with ``Engine.export`` to OpenVINO in float and with ``compression_type`` ``int8_ptq``
(and ``int8_acq`` with ``--compressions float,int8_ptq,int8_acq``: it validates the model many times and
takes far longer), then, for every export and OpenVINO ``INFERENCE_PRECISION_HINT`` (f32; bf16 where the CPU
has it; for an int8 export it sets the precision of the layers left in float), measures:

- latency at batch 1 (the exported graph with anomalib's pre- and post-processing, from a ready image
  array), all variants timed round-robin with the same thread count;
- image and pixel AUROC on the category's test images through anomalib's ``OpenVINOInferencer`` and the
  drop against the float export at f32;
- where the time goes: OpenVINO's performance counters per layer, summed by the precision each layer ran
  in (the kernel name's ``I8``/``U8``, ``BF16`` or ``FP32``) and by layer type.

The weights are trained on the demo data with a randomly initialised encoder unless ``--pre-trained`` (needs
the ImageNet weights): the AUROC differences say how much quantisation costs this model on this data.

Examples:
    python benchmarks/openvino_precision.py                  # gravel, 256 px, 5 epochs, float + int8_ptq
    python benchmarks/openvino_precision.py --compressions float,int8_ptq,int8_acq
    python benchmarks/openvino_precision.py --quick          # tiny model, 64 px: checks that everything runs
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import benchlib
import numpy as np

COMPRESSIONS = ("float", "int8_ptq", "int8_acq")
SEED = 111
PROFILE_RUNS = 5
#: Kernel-name suffixes of OpenVINO's CPU plugin, by the precision they run in.
_PRECISION_PATTERN = re.compile(r"(I8|U8|BF16|FP16|FP32|F32|I32)$", re.IGNORECASE)


@contextlib.contextmanager
def _working_directory(path: Path) -> Iterator[None]:
    """OpenVINOInferencer writes an ``openvino_cache`` folder where it runs: keep it in the scratch folder."""
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def train_and_export(args: argparse.Namespace, workdir: Path) -> tuple[Path, dict[str, Path]]:
    """Train on one demo category and export it once per compression; the data root and each model.xml."""
    from anomalib.data import MVTecAD  # noqa: PLC0415
    from anomalib.deploy import CompressionType, ExportType  # noqa: PLC0415
    from anomalib.engine import Engine  # noqa: PLC0415
    from lightning.pytorch import seed_everything  # noqa: PLC0415

    from anomalib_minimaxad import MiniMaxAD  # noqa: PLC0415
    from anomalib_minimaxad.demo.dataset import generate_demo_dataset  # noqa: PLC0415

    root = generate_demo_dataset(
        args.data_root or workdir / "data",
        categories=(args.category,),
        image_size=args.image_size,
        num_train=args.num_train,
        num_test_good=args.num_test,
        num_test_defect=args.num_test,
    )
    seed_everything(SEED, workers=True)
    datamodule = MVTecAD(
        root=root, category=args.category, train_batch_size=args.batch, eval_batch_size=args.batch, num_workers=0
    )
    model = MiniMaxAD(
        pre_trained=args.pre_trained,
        dims=benchlib.parse_dims(args.dims),
        pre_processor=MiniMaxAD.configure_pre_processor(image_size=(args.image_size, args.image_size)),
        visualizer=False,
    )
    engine = Engine(
        max_epochs=args.epochs,
        default_root_dir=workdir / "run",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        devices=1,
    )
    engine.fit(model=model, datamodule=datamodule)
    exports = {}
    for compression in args.compressions:
        print(f"exporting {compression} ...", flush=True)
        exports[compression] = engine.export(
            model=model,
            export_type=ExportType.OPENVINO,
            export_root=workdir / "export" / compression,
            compression_type=None if compression == "float" else CompressionType(compression),
            datamodule=datamodule if compression != "float" else None,
        )
    return root / args.category / "test", exports


def _config(hint: str, threads: int, profile: bool = False) -> dict[str, Any]:
    return {
        "INFERENCE_PRECISION_HINT": hint,
        "INFERENCE_NUM_THREADS": threads,
        "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": 1,
        "PERF_COUNT": profile,
    }


def test_images(folder: Path) -> list[tuple[Path, Path | None]]:
    """(image, mask or None for a normal image) for every test image, in a fixed order."""
    pairs = []
    for image in sorted(folder.rglob("*.png")):
        defect = image.parent.name
        mask = None if defect == "good" else folder.parent / "ground_truth" / defect / f"{image.stem}_mask.png"
        pairs.append((image, mask))
    return pairs


def accuracy(inferencer: Any, images: list[tuple[Path, Path | None]]) -> dict[str, float]:  # noqa: ANN401
    """Image and pixel AUROC of one OpenVINO model on the test images."""
    import torch  # noqa: PLC0415
    from anomalib.data.utils import read_mask  # noqa: PLC0415
    from torchmetrics.functional.classification import binary_auroc  # noqa: PLC0415

    scores, labels, maps, masks = [], [], [], []
    for image, mask in images:
        prediction = inferencer.predict(image)
        scores.append(float(np.asarray(prediction.pred_score).reshape(-1)[0]))
        labels.append(int(mask is not None))
        anomaly_map = np.asarray(prediction.anomaly_map, dtype=np.float32).squeeze()
        maps.append(anomaly_map.reshape(-1))
        truth = np.zeros(anomaly_map.shape, bool) if mask is None else read_mask(mask, as_tensor=False) > 0
        if truth.shape != anomaly_map.shape:
            msg = f"mask {mask} is {truth.shape}, the map {anomaly_map.shape}: generate the data at the export size"
            raise ValueError(msg)
        masks.append(truth.reshape(-1))
    return {
        "image_AUROC": float(binary_auroc(torch.tensor(scores), torch.tensor(labels))),
        "pixel_AUROC": float(
            binary_auroc(torch.from_numpy(np.concatenate(maps)), torch.from_numpy(np.concatenate(masks)).long())
        ),
    }


def precision_of(exec_type: str) -> str:
    """The precision a layer ran in, from its kernel name (e.g. ``brgconv_avx512_I8`` -> ``int8``)."""
    match = _PRECISION_PATTERN.search(exec_type)
    if match is None:
        return "other"
    token = match.group(1).upper()
    return {"I8": "int8", "U8": "int8", "BF16": "bf16", "FP16": "fp16", "I32": "int32"}.get(token, "fp32")


def profile(model_xml: Path, hint: str, threads: int, image: np.ndarray) -> dict[str, Any]:
    """Per-layer time of one compiled model, summed by precision and by (layer type, precision)."""
    import openvino as ov  # noqa: PLC0415

    compiled = ov.Core().compile_model(str(model_xml), "CPU", _config(hint, threads, profile=True))
    request = compiled.create_infer_request()
    by_precision: dict[str, float] = defaultdict(float)
    by_layer: dict[str, float] = defaultdict(float)
    for _ in range(PROFILE_RUNS):
        request.infer([image])
    for info in request.profiling_info:
        if info.status != ov.ProfilingInfo.Status.EXECUTED:
            continue
        milliseconds = info.real_time.total_seconds() * 1e3
        precision = precision_of(info.exec_type)
        by_precision[precision] += milliseconds
        by_layer[f"{info.node_type} ({precision})"] += milliseconds
    total = sum(by_precision.values()) or 1.0
    top = sorted(by_layer.items(), key=lambda item: -item[1])[:8]
    return {
        "total_ms": total,
        "share_by_precision": {key: value / total for key, value in sorted(by_precision.items())},
        "top_layers": [{"layer": key, "ms": value, "share": value / total} for key, value in top],
    }


def variants(args: argparse.Namespace) -> list[tuple[str, str, str]]:
    """(name, export, inference precision hint) of every row; the bf16 hint only where the CPU has BF16.

    The hint sets the precision of what runs in float: all of the float export, the layers NNCF left unquantised
    in an int8 one (OpenVINO's default hint is bf16 on CPUs with BF16, f32 elsewhere).
    """
    import openvino as ov  # noqa: PLC0415

    hints = ["f32"]
    if "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        hints.append("bf16")
    rows = []
    for compression in args.compressions:
        for hint in hints:
            name = hint if compression == "float" else compression if hint == "f32" else f"{compression}_{hint}"
            rows.append((name, compression, hint))
    return rows


def measure(args: argparse.Namespace, images_dir: Path, exports: dict[str, Path]) -> list[dict[str, Any]]:
    """Accuracy, latency and profile of every variant."""
    from anomalib.deploy import OpenVINOInferencer  # noqa: PLC0415

    images = test_images(images_dir)
    records, runners = [], {}
    for name, export, hint in variants(args):
        inferencer = OpenVINOInferencer(path=exports[export], device="CPU", config=_config(hint, args.threads))
        record = {"variant": name, "export": export, "inference_precision_hint": hint}
        record.update(accuracy(inferencer, images))
        array = inferencer.pre_process(np.asarray(_read_rgb(images[0][0]), dtype=np.float32) / 255.0)
        input_name = inferencer.input_blob.any_name
        runners[name] = _runner(inferencer.model, input_name, array)
        record["profile"] = profile(exports[export], hint, args.threads, array)
        records.append(record)
    timings = benchlib.interleaved(runners, repeats=args.repeats, warmup=args.warmup, pause_s=0.02)
    reference = next(record for record in records if record["variant"] == "f32")
    for record in records:
        record.update(timings[record["variant"]].summary())
        record["speedup_vs_f32"] = reference["median_ms"] / record["median_ms"]
        for metric in ("image_AUROC", "pixel_AUROC"):
            record[f"{metric}_drop_points"] = 100 * (reference[metric] - record[metric])
    return records


def _read_rgb(path: Path) -> np.ndarray:
    from PIL import Image  # noqa: PLC0415

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _runner(compiled: Any, input_name: str, array: np.ndarray) -> Callable[[], object]:  # noqa: ANN401
    return lambda: compiled({input_name: array})


def print_tables(records: Sequence[dict[str, Any]], machine: dict[str, Any]) -> None:
    print(f"\n{machine['cpu']}; {machine['isa']}; {machine['threads']} threads; load {machine['load_average']}")
    print(
        benchlib.markdown_table(
            ["variant", "batch 1 ms", "x f32", "image AUROC", "drop (points)", "pixel AUROC", "drop (points)"],
            [
                [
                    r["variant"],
                    f"{r['median_ms']:.1f}",
                    f"{r['speedup_vs_f32']:.2f}",
                    f"{r['image_AUROC']:.4f}",
                    f"{r['image_AUROC_drop_points']:+.2f}",
                    f"{r['pixel_AUROC']:.4f}",
                    f"{r['pixel_AUROC_drop_points']:+.2f}",
                ]
                for r in records
            ],
        )
    )
    print("\nWhere the time goes (OpenVINO performance counters, share of the summed layer time):")
    for r in records:
        shares = ", ".join(f"{key} {value:.0%}" for key, value in r["profile"]["share_by_precision"].items())
        top = "; ".join(f"{layer['layer']} {layer['share']:.0%}" for layer in r["profile"]["top_layers"][:5])
        print(f"- {r['variant']}: {shares}. Top: {top}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--compressions", type=benchlib.parse_str_list, default=["float", "int8_ptq"])
    parser.add_argument("--category", default="gravel", help="demo category")
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--num-train", type=int, default=60, help="normal training images (the demo's count)")
    parser.add_argument("--num-test", type=int, default=20, help="good and defective test images each")
    parser.add_argument("--pre-trained", action="store_true", help="ImageNet encoder (needs the weights)")
    parser.add_argument("--dims", type=str, default=None, help="width override (tiny smoke runs only)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--data-root", type=Path, default=None, help="demo data folder (default: a temporary one)")
    parser.add_argument("--out-dir", type=Path, default=benchlib.RESULTS_DIR)
    parser.add_argument("--quick", action="store_true", help="64 px, tiny model, 1 epoch, few images")
    args = parser.parse_args(argv)
    unknown = [name for name in args.compressions if name not in COMPRESSIONS]
    if unknown or "float" not in args.compressions:
        parser.error(f"--compressions must include 'float' and only name {', '.join(COMPRESSIONS)}; got {unknown}")
    if args.quick:
        args.image_size, args.epochs, args.num_train, args.num_test, args.batch = 64, 1, 8, 4, 4
        args.dims = args.dims or "16,32,64,128"
        args.repeats, args.warmup = 2, 1
    return args


def main(argv: Sequence[str] | None = None) -> Path:
    args = parse_args(argv)
    benchlib.set_threads(args.threads)
    machine = benchlib.machine_info(args.threads)
    with tempfile.TemporaryDirectory(prefix="minimaxad_openvino_precision_") as scratch:
        workdir = Path(scratch)
        images_dir, exports = train_and_export(args, workdir)
        with _working_directory(workdir):
            records = measure(args, images_dir, exports)
    machine["load_average_end"] = benchlib.machine_info()["load_average"]
    print_tables(records, machine)
    payload = {
        "machine": machine,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "weights": "ImageNet encoder" if args.pre_trained else "random encoder, trained on the demo data",
        "results": records,
    }
    path = benchlib.write_json(benchlib.result_path(args.out_dir, "openvino_precision"), payload)
    print(f"\nwrote {path}")
    return path


if __name__ == "__main__":
    main()

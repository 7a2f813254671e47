"""End-to-end check of MiniMaxAD through anomalib's ``Engine`` on one device: fit, test, export, with timings.

Generates one demo category (``anomalib_minimaxad.demo``, MVTec AD layout), then ``Engine.fit`` for
``--epochs`` (one epoch of the demo by default), ``Engine.test``, and ``Engine.export`` to torch, ONNX and
OpenVINO, on ``--accelerator`` (``cuda`` on a GPU) with ``--precision``. Each stage's seconds, the test
metrics and any error are written to ``results/engine_check_<host>_<utc>.json``; the exit status is 1 when a
stage failed. Weights are random (``pre_trained=False``): this checks that everything runs on the device,
the metrics only say that they were computed.

Examples:
    python benchmarks/engine_check.py --accelerator cuda --precision bf16-mixed
    python benchmarks/engine_check.py --accelerator cpu --quick      # tiny model, 64 px, a few images
"""

from __future__ import annotations

import argparse
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import benchlib

EXPORTS = ("torch", "onnx", "openvino")


def _stage(record: dict[str, Any], name: str, action: Callable[[], Any]) -> Any:  # noqa: ANN401
    """Run one stage, recording its seconds or its error (the other stages still run)."""
    start = time.perf_counter()
    try:
        value = action()
    except Exception as error:  # noqa: BLE001 - a failing stage is the result, reported in the JSON
        record[name] = {"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()[-2000:]}
        print(f"  {name}: FAILED {type(error).__name__}: {error}", flush=True)
        return None
    record[name] = {"seconds": time.perf_counter() - start}
    print(f"  {name}: {record[name]['seconds']:.1f} s", flush=True)
    return value


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Every stage, in order; the record of each."""
    from anomalib.data import MVTecAD  # noqa: PLC0415
    from anomalib.deploy import ExportType  # noqa: PLC0415
    from anomalib.engine import Engine  # noqa: PLC0415
    from lightning.pytorch import seed_everything  # noqa: PLC0415

    from anomalib_minimaxad import MiniMaxAD  # noqa: PLC0415
    from anomalib_minimaxad.demo.dataset import generate_demo_dataset  # noqa: PLC0415

    record: dict[str, Any] = {}
    root = _stage(
        record,
        "generate_data",
        lambda: generate_demo_dataset(
            args.data_root or workdir / "data",
            categories=(args.category,),
            image_size=args.image_size,
            num_train=args.num_train,
            num_test_good=args.num_test,
            num_test_defect=args.num_test,
        ),
    )
    if root is None:
        return record
    seed_everything(111, workers=True)
    datamodule = MVTecAD(
        root=root,
        category=args.category,
        train_batch_size=args.batch,
        eval_batch_size=args.batch,
        num_workers=args.num_workers,
    )
    model = MiniMaxAD(
        pre_trained=False,
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
        accelerator=args.accelerator,
        devices=1,
        precision=args.precision,
    )
    _stage(record, "fit", lambda: engine.fit(model=model, datamodule=datamodule))
    if "error" in record["fit"]:
        return record
    tested = _stage(record, "test", lambda: engine.test(model=model, datamodule=datamodule, verbose=False))
    if tested:
        record["test"]["metrics"] = {key: float(value) for key, value in tested[0].items()}
    for export in args.exports:
        path = _stage(
            record,
            f"export_{export}",
            lambda export=export: engine.export(
                model=model, export_type=ExportType(export), export_root=workdir / "export" / export
            ),
        )
        if path is not None:
            record[f"export_{export}"]["bytes"] = Path(path).stat().st_size
    return record


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--accelerator", default="auto", help="cpu, cuda or auto (cuda when present)")
    parser.add_argument("--precision", default="32", help="Lightning precision: 32, bf16-mixed, 16-mixed")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--category", default="brick", help="demo category")
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--num-train", type=int, default=60, help="normal training images (the demo's count)")
    parser.add_argument("--num-test", type=int, default=20, help="good and defective test images each")
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--exports", type=benchlib.parse_str_list, default=list(EXPORTS), help=", ".join(EXPORTS))
    parser.add_argument("--data-root", type=Path, default=None, help="demo data folder (default: a temporary one)")
    parser.add_argument("--dims", type=str, default=None, help="width override (tiny smoke runs only)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out-dir", type=Path, default=benchlib.RESULTS_DIR)
    parser.add_argument("--quick", action="store_true", help="64 px, 4 training and 2+2 test images, batch 2")
    args = parser.parse_args(argv)
    if args.quick:
        args.image_size, args.num_train, args.num_test, args.batch = 64, 4, 2, 2
    for export in args.exports:
        if export not in EXPORTS:
            parser.error(f"unknown export {export!r}; choose from {EXPORTS}")
    return args


def main(argv: Sequence[str] | None = None) -> tuple[Path, bool]:
    """Run the check; the JSON's path and whether every stage passed."""
    args = parse_args(argv)
    benchlib.set_threads(args.threads)
    machine = benchlib.machine_info(args.threads)
    print(f"engine check on {args.accelerator} ({machine.get('gpu', machine['cpu'])}), precision {args.precision}")
    with tempfile.TemporaryDirectory(prefix="minimaxad_engine_check_") as workdir:
        stages = run(args, Path(workdir))
    passed = all("error" not in stage for stage in stages.values())
    machine["load_average_end"] = benchlib.machine_info()["load_average"]
    payload = {
        "machine": machine,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "weights": "random (pre_trained=False): metrics only show that they were computed",
        "passed": passed,
        "stages": stages,
    }
    path = benchlib.write_json(benchlib.result_path(args.out_dir, "engine_check"), payload)
    print(f"{'passed' if passed else 'FAILED'}; wrote {path}")
    return path, passed


if __name__ == "__main__":
    raise SystemExit(0 if main()[1] else 1)

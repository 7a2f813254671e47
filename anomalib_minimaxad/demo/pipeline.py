# Copyright (C) 2026 anomalib-minimaxad developers
# SPDX-License-Identifier: Apache-2.0
"""The end-to-end demo: data, training, test, OpenVINO export and inference, pictures.

Per category of the bundled demo dataset (real texture photographs from scikit-image,
with synthetic defects; ``gravel`` by default, ``all`` for the three) it runs what a user would:

1. ``anomalib fit --config <package>/configs/demo_cpu.yaml --data.root R --data.category C``
   (anomalib's own CLI, with Lightning's progress bars);
2. ``Engine.test`` on the checkpoint, for the metrics as numbers;
3. ``anomalib export --model MiniMaxAD --export_type openvino --ckpt_path ...``;
4. OpenVINO inference (anomalib's ``OpenVINOInferencer``) on every test image, timed;

then prints a metrics table, writes it as ``metrics.json`` and ``metrics.md``, draws one PNG grid per
category (image, ground truth, anomaly heat map, predicted mask) and one ``overview.png`` of all
categories (metrics and image / heat-map pairs). The same seed and thread count give the same metrics.

No download is needed. ImageNet weights for the encoder are used when they can be had
(``$MINIMAXAD_WEIGHTS_DIR`` or the Hugging Face cache/hub); otherwise the demo says so and
trains with a randomly initialised encoder.

Example:
    >>> from anomalib_minimaxad.demo import DemoSettings, run_demo
    >>> run_demo(DemoSettings(output=Path("demo_output")))  # doctest: +SKIP
"""

import json
import logging
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anomalib_minimaxad.demo.dataset import DEMO_CATEGORIES, generate_demo_dataset
from anomalib_minimaxad.demo.overview import draw_category_grid, draw_overview

__all__ = ["DEFAULT_CATEGORIES", "DemoSettings", "resolve_categories", "run_demo"]

logger = logging.getLogger(__name__)

DEFAULT_CONFIG = Path(__file__).parent.parent / "configs" / "demo_cpu.yaml"
#: Metrics shown in the table: (anomalib's name, column title).
METRIC_COLUMNS = (
    ("image_AUROC", "Image AUROC"),
    ("pixel_AUROC", "Pixel AUROC"),
    ("pixel_AUPRO", "AUPRO"),
    ("image_F1Score", "Image F1"),
)
#: What ``demo`` trains without ``--categories``: one category keeps the first run within minutes.
DEFAULT_CATEGORIES: tuple[str, ...] = ("gravel",)


@dataclass
class DemoSettings:
    """What the demo runs on and where it writes.

    Attributes:
        data_root: Folder of the generated dataset (reused when complete).
        output: Folder for runs, exports, pictures and the metrics table.
        categories: Demo categories to train, one model each.
        config: anomalib CLI config of the training run.
        image_size: Side of the generated images.
        num_train: Normal training images per category.
        num_test_good: Normal test images per category.
        num_test_defect: Defective test images per category.
        extra_train_args: Further ``anomalib train`` arguments (e.g. ``--trainer.max_epochs 1``).
    """

    data_root: Path = Path("datasets/minimaxad_demo")
    output: Path = Path("demo_output")
    categories: Sequence[str] = DEFAULT_CATEGORIES
    config: Path = DEFAULT_CONFIG
    image_size: int = 256
    num_train: int = 60
    num_test_good: int = 20
    num_test_defect: int = 20
    extra_train_args: Sequence[str] = field(default_factory=tuple)


def resolve_categories(names: Sequence[str] | None) -> tuple[str, ...]:
    """The categories to run: ``DEFAULT_CATEGORIES`` for none, all of them for ``["all"]``.

    Example:
        >>> resolve_categories(["all"])
        ('brick', 'grass', 'gravel')
    """
    if not names:
        return DEFAULT_CATEGORIES
    if list(names) == ["all"]:
        return DEMO_CATEGORIES
    return tuple(names)


#: Seed of the demo's training runs (``anomalib``'s CLI reads ``seed_everything`` from a config but never applies it).
DEMO_SEED = 111

#: ``anomalib`` run after ``seed_everything(argv[1])``: model init, data order and epochs repeat run to run.
_SEEDED_ANOMALIB = (
    "import sys; from lightning.pytorch import seed_everything; from anomalib.cli.cli import main; "
    "seed_everything(int(sys.argv.pop(1)), workers=True); sys.argv[0] = 'anomalib'; sys.exit(main())"
)


def _anomalib_command() -> list[str]:
    """The ``anomalib`` console script of this interpreter's environment."""
    script = Path(sys.executable).parent / "anomalib"
    if not script.exists():
        msg = f"anomalib's console script is missing next to {sys.executable}; install anomalib-minimaxad first."
        raise FileNotFoundError(msg)
    return [str(script)]


def _run(command: list[str]) -> None:
    """Run an anomalib command in this terminal, so that Lightning's progress bars show."""
    print("$ " + " ".join(command), flush=True)
    # Python warnings of the libraries would bury the progress bars; anomalib's own log lines stay.
    environment = {**os.environ, "PYTHONWARNINGS": "ignore"}
    returncode = subprocess.run(command, env=environment, check=False).returncode  # noqa: S603
    if returncode != 0:
        msg = f"`{' '.join(command[:2])} ...` failed with exit code {returncode} (its output is above)"
        raise RuntimeError(msg)


def _hub_reachable(host: str = "huggingface.co", timeout_s: float = 3.0) -> bool:
    """Whether the Hugging Face hub answers at all (one connection attempt)."""
    try:
        with socket.create_connection((host, 443), timeout=timeout_s):
            return True
    except OSError:
        return False


def encoder_weights_argument() -> str:
    """``--model.pre_trained`` value: the ImageNet weights when they can be had, else ``false``."""
    from anomalib_minimaxad.components.pretrained import (
        WEIGHTS_DIR_ENV,
        CheckpointError,
        PretrainedWeightsUnavailableError,
        resolve_imagenet_state_dict,
    )

    if not os.environ.get(WEIGHTS_DIR_ENV) and not _hub_reachable():
        # Only the local Hugging Face cache can help: skip huggingface_hub's retries (about 20 s),
        # here and in the anomalib commands started below.
        os.environ["HF_HUB_OFFLINE"] = "1"
        from huggingface_hub import constants

        constants.HF_HUB_OFFLINE = True
    try:
        _, source = resolve_imagenet_state_dict("unireplknet_n", pre_trained=True)
    except (PretrainedWeightsUnavailableError, CheckpointError) as error:
        print(
            "\nNo ImageNet weights for the UniRepLKNet-N encoder could be had, so this demo runs with a RANDOMLY "
            f"INITIALISED encoder (accuracy will be well below the paper's).\n  Reason: {error}\n",
            flush=True,
        )
        return "false"
    print(f"Using ImageNet encoder weights from {source}", flush=True)
    return source if Path(source).is_file() else "true"


def _model_arguments(arguments: Sequence[str]) -> list[str]:
    """The ``--model.*`` options (with their values) among ``anomalib train`` arguments."""
    selected: list[str] = []
    for index, argument in enumerate(arguments):
        if argument.startswith("--model."):
            selected.append(argument)
            if "=" not in argument and index + 1 < len(arguments):
                selected.append(arguments[index + 1])
    return selected


def _find_checkpoint(run_dir: Path) -> Path:
    checkpoints = sorted(run_dir.rglob("*.ckpt"), key=lambda p: p.stat().st_mtime)
    if not checkpoints:
        msg = f"anomalib train wrote no checkpoint under {run_dir}"
        raise FileNotFoundError(msg)
    return checkpoints[-1]


def _test_metrics(
    checkpoint: Path,
    data_root: Path,
    category: str,
    run_dir: Path,
) -> tuple[dict[str, float], list[int] | None]:
    """Metrics of the checkpoint on the category's test split (anomalib's Engine), and the model's input size."""
    from anomalib.data import MVTecAD
    from anomalib.engine import Engine

    from anomalib_minimaxad.lightning_model import MiniMaxAD

    model = MiniMaxAD.load_from_checkpoint(checkpoint)
    datamodule = MVTecAD(root=data_root, category=category, eval_batch_size=16, num_workers=0)
    engine = Engine(logger=False, default_root_dir=run_dir / "test", enable_progress_bar=False)
    results = engine.test(model=model, datamodule=datamodule, verbose=False)
    return {name: float(value) for name, value in results[0].items()}, _resize_size(model)


def _resize_size(model: Any) -> list[int] | None:  # noqa: ANN401 - a MiniMaxAD module
    """``[height, width]`` of the pre-processor's ``Resize``: what the model trained and tested at."""
    from torchvision.transforms import v2

    transform = getattr(model.pre_processor, "transform", None)
    transforms = transform.transforms if isinstance(transform, v2.Compose) else [transform]
    for step in transforms:
        if isinstance(step, v2.Resize):
            size = [step.size] * 2 if isinstance(step.size, int) else list(step.size)
            return [int(side) for side in size]
    return None


def _openvino_predictions(model_xml: Path, images: list[Path]) -> tuple[list[Any], list[float]]:
    """Predict every image with OpenVINO (f32) and time each call in milliseconds."""
    from anomalib.deploy import OpenVINOInferencer

    # OpenVINO runs bf16 on CPUs with AMX unless asked for f32; keep the exported precision.
    inferencer = OpenVINOInferencer(path=model_xml, device="CPU", config={"INFERENCE_PRECISION_HINT": "f32"})
    inferencer.predict(images[0])  # warm-up: first call compiles kernels
    predictions, latencies = [], []
    for image in images:
        start = time.perf_counter()
        predictions.append(inferencer.predict(image))
        latencies.append((time.perf_counter() - start) * 1000)
    return predictions, latencies


def _test_images(category_root: Path) -> list[tuple[Path, Path | None]]:
    """Test images with their mask (``None`` for normal ones)."""
    pairs = []
    for image in sorted((category_root / "test").glob("*/*.png")):
        defect = image.parent.name
        mask = category_root / "ground_truth" / defect / f"{image.stem}_mask.png"
        pairs.append((image, mask if defect != "good" else None))
    return pairs


def _markdown_table(rows: dict[str, dict[str, float]]) -> str:
    header = "| Category | " + " | ".join(title for _, title in METRIC_COLUMNS) + " | OpenVINO ms/image |"
    lines = [header, "|" + "---|" * (len(METRIC_COLUMNS) + 2)]
    for category, values in rows.items():
        cells = [f"{values[name]:.3f}" if name in values else "n/a" for name, _ in METRIC_COLUMNS]
        lines.append(f"| {category} | " + " | ".join(cells) + f" | {values['latency_ms']:.1f} |")
    return "\n".join(lines)


def run_demo(settings: DemoSettings) -> dict[str, dict[str, float]]:
    """Run the whole demo; return the metrics per category.

    Raises:
        RuntimeError: An anomalib command failed (its log is named).
    """
    started = time.perf_counter()
    output = settings.output.resolve()
    output.mkdir(parents=True, exist_ok=True)
    data_root = generate_demo_dataset(
        settings.data_root,
        settings.categories,
        image_size=settings.image_size,
        num_train=settings.num_train,
        num_test_good=settings.num_test_good,
        num_test_defect=settings.num_test_defect,
    ).resolve()
    print(f"Demo data (MVTec AD layout): {data_root}", flush=True)
    pre_trained = encoder_weights_argument()
    anomalib = _anomalib_command()
    rows: dict[str, dict[str, float]] = {}
    drawn: dict[str, tuple[list, list, dict[str, float]]] = {}
    model_input_size = None
    overview = output / "overview.png"
    for category in settings.categories:
        print(f"\n=== {category} ===", flush=True)
        run_dir = output / "runs" / category
        shutil.rmtree(run_dir, ignore_errors=True)  # a fresh run; an old checkpoint must not be picked up
        run_dir.mkdir(parents=True)
        fit = [sys.executable, "-c", _SEEDED_ANOMALIB, str(DEMO_SEED), "fit", "--config", str(settings.config)]
        fit += ["--data.root", str(data_root)]
        fit += ["--data.category", category, "--default_root_dir", str(run_dir), "--model.pre_trained", pre_trained]
        _run([*fit, *settings.extra_train_args])
        checkpoint = _find_checkpoint(run_dir)
        metrics, model_input_size = _test_metrics(checkpoint, data_root, category, run_dir)
        export_root = output / "export" / category
        export = [*anomalib, "export", "--model", "MiniMaxAD", "--export_type", "openvino"]
        export += ["--ckpt_path", str(checkpoint), "--export_root", str(export_root)]
        export += _model_arguments(settings.extra_train_args)  # the model must be built as it was trained
        _run(export)
        model_xml = next(export_root.rglob("*.xml"))
        pairs = _test_images(data_root / category)
        predictions, latencies = _openvino_predictions(model_xml, [image for image, _ in pairs])
        metrics["latency_ms"] = statistics.median(latencies)
        rows[category] = metrics
        drawn[category] = (pairs, predictions, metrics)
        grid = output / f"{category}_grid.png"
        draw_category_grid(pairs, predictions, f"MiniMaxAD on {category} (OpenVINO)", grid)
        draw_overview(drawn, overview)  # redrawn after each category, so the first picture comes early
        print(f"\n{_markdown_table({category: metrics})}\nPictures: {overview}, {grid}", flush=True)

    table = _markdown_table(rows)
    minutes = (time.perf_counter() - started) / 60
    encoder = "ImageNet-pretrained" if pre_trained != "false" else "randomly initialised (offline)"
    summary = {
        "encoder": encoder,
        "model_input_size": model_input_size,
        "dataset_image_size": settings.image_size,
        "config": str(settings.config),
        "extra_train_args": list(settings.extra_train_args),
        "minutes": round(minutes, 2),
        "torch_threads": _torch_threads(),
        "categories": rows,
    }
    (output / "metrics.json").write_text(json.dumps(summary, indent=2))
    (output / "metrics.md").write_text(f"Encoder: {encoder}\n\n{table}\n")
    print(f"\nMiniMaxAD demo results (encoder {encoder}; {minutes:.1f} min):\n\n{table}\n")
    print(f"Metrics: {output / 'metrics.json'}; pictures: {overview}, {output}/<category>_grid.png")
    return rows


def _torch_threads() -> int:
    """The intra-op thread count torch uses here, as in the ``anomalib`` processes started by the demo."""
    import torch

    return torch.get_num_threads()

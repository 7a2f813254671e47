"""Accuracy of MiniMaxAD beside Reverse Distillation and PatchCore, one-class per category, via anomalib's Engine.

For every category: train (``engine.fit``) and test (``engine.test``) each model under identical conditions
(same datamodule, image size, batch size, epochs for the trained models, seed, evaluator), then write the
per-category image AUROC (I-AUROC), pixel AUROC (P-AUROC), AUPRO and pixel AUPR and their mean, as CSV and
JSON under ``benchmarks/results/``, and print them beside the paper's figures (``paper_results.json``).

Datasets: ``demo`` (generated here from scikit-image textures, see ``anomalib_minimaxad.demo.dataset``),
and, when you have them on disk (``--root``): ``mvtec`` (MVTec AD), ``visa`` (VisA, anomalib's ``Visa``
datamodule prepares its split), ``goodsad``, ``aebad_s`` and ``mad`` (read with anomalib's ``Folder``
datamodule from an MVTec-like layout: ``<category>/train/good``, ``<category>/test/<defect>``,
``<category>/ground_truth/<defect>``; masks are paired with images by sorted file name).

Backbones: ``--pre-trained`` loads ImageNet weights for all models (MiniMaxAD's UniRepLKNet from
``$MINIMAXAD_WEIGHTS_DIR`` or the Hugging Face hub, the peers' WRN50-2 through timm). Without it (the
default, and the only option offline) every backbone is randomly initialised: the numbers then compare
the methods under that condition only and are far below the papers'.

With ``--preset <name>`` it instead reproduces one table of the paper: it runs a packaged preset
(``anomalib_minimaxad/configs/<name>.yaml``, the authors' recipe and test protocol for that table) through
anomalib's CLI parser and Engine, one model per category for the one-class presets or one model for all
categories for the unified ones, and prints MiniMaxAD's per-category I-AUROC, P-AUROC, AUPRO and P-AUPR with the
paper's figure in brackets, rows = categories then Mean, as the paper's tables. ``--epochs``, ``--image-size``,
``--dims``, ``--categories`` and ``--pre-trained false`` shrink a run (the demo data has no paper figures).

Examples:
    python benchmarks/accuracy.py --preset mvtec_unified --root ./datasets/MVTecAD
    python benchmarks/accuracy.py --preset minimaxad --root ./datasets/minimaxad_demo --pre-trained false \
        --epochs 1 --image-size 64
    python benchmarks/accuracy.py --dataset demo --quick
    python benchmarks/accuracy.py --dataset demo --epochs 20
    python benchmarks/accuracy.py --dataset mvtec --root ./datasets/MVTecAD --pre-trained --categories bottle,cable
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import shlex
import statistics
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import benchlib

MODELS = ("minimaxad", "reverse_distillation", "patchcore")
METRICS = {  # our column -> anomalib metric name in engine.test() results
    "I-AUROC": "image_AUROC",
    "P-AUROC": "pixel_AUROC",
    "AUPRO": "pixel_AUPRO",
    "P-AUPR": "pixel_AUPR",
}
PAPER_RESULTS = benchlib.BENCHMARKS_DIR / "paper_results.json"


@dataclass(frozen=True)
class DatasetSpec:
    """Defaults of one dataset. ``protocol_source`` says where the training settings come from."""

    kind: str  # demo | mvtec | visa | folder
    categories: tuple[str, ...]
    image_size: int
    epochs: int
    loss: str
    protocol_source: str
    augment: bool = False


MVTEC_CATEGORIES = (
    "bottle", "cable", "capsule", "carpet", "grid", "hazelnut", "leather", "metal_nut",
    "pill", "screw", "tile", "toothbrush", "transistor", "wood", "zipper",
)  # fmt: skip
VISA_CATEGORIES = (
    "candle", "capsules", "cashew", "chewinggum", "fryum", "macaroni1",
    "macaroni2", "pcb1", "pcb2", "pcb3", "pcb4", "pipe_fryum",
)  # fmt: skip
AUTHORS = "the authors' training scripts (see /work/shared/reference/README.md, 'Training facts')"
DATASETS: dict[str, DatasetSpec] = {
    "demo": DatasetSpec(
        "demo", ("brick", "grass", "gravel"), 256, 20, "adc", "not in the paper: a demo of the pipeline"
    ),
    "mvtec": DatasetSpec(
        "mvtec",
        MVTEC_CATEGORIES,
        256,
        160,
        "adc",
        f"{AUTHORS}: 160 epochs for unified MVTec AD; one-class epochs not stated",
    ),
    "visa": DatasetSpec(
        "visa", VISA_CATEGORIES, 256, 150, "global", f"{AUTHORS}: single-class VisA, global loss, 256 px, 150 epochs"
    ),
    "goodsad": DatasetSpec("folder", (), 224, 240, "adc", f"{AUTHORS}: GoodsAD, ADC loss, 224 px, 240 epochs"),
    "aebad_s": DatasetSpec(
        "folder",
        ("AeBAD_S",),
        224,
        130,
        "global",
        f"{AUTHORS}: AeBAD-S, global loss, 224 px, 130 epochs, RandomResizedCrop(0.7-1) + flip",
        augment=True,
    ),
    "mad": DatasetSpec(
        "folder",
        (),
        400,
        100,
        "adc",
        "image size 400 from the paper's MAD setting; epochs and loss NOT known (assumed 100, adc)",
    ),
}


# ---------------------------------------------------------------- data


def demo_root(args: argparse.Namespace, categories: Sequence[str]) -> Path:
    """Generate (or reuse) the demo dataset and return its root."""
    from anomalib_minimaxad.demo.dataset import generate_demo_dataset  # noqa: PLC0415

    root = args.root or (benchlib.REPO_ROOT / "datasets" / f"minimaxad_demo_{args.image_size}")
    return Path(
        generate_demo_dataset(
            root,
            categories=tuple(categories),
            image_size=args.image_size,
            num_train=args.demo_train,
            num_test_good=args.demo_test_good,
            num_test_defect=args.demo_test_defect,
        )
    )


def discover_categories(root: Path) -> tuple[str, ...]:
    """Sub-folders of ``root`` that hold a ``train`` folder."""
    return tuple(sorted(p.name for p in root.iterdir() if (p / "train").is_dir())) if root.is_dir() else ()


def make_datamodule(spec: DatasetSpec, root: Path, category: str, args: argparse.Namespace) -> Any:  # noqa: ANN401
    """The anomalib datamodule of one category."""
    common = {
        "train_batch_size": args.batch_size,
        "eval_batch_size": args.batch_size,
        "num_workers": args.num_workers,
        "seed": args.seed,
    }
    if spec.augment:
        from torchvision.transforms import v2  # noqa: PLC0415

        size = (args.image_size, args.image_size)
        common["train_augmentations"] = v2.Compose([
            v2.RandomResizedCrop(size, scale=(0.7, 1.0)),
            v2.RandomHorizontalFlip(),
        ])
    if spec.kind in {"demo", "mvtec"}:
        from anomalib.data import MVTecAD  # noqa: PLC0415

        return MVTecAD(root=root, category=category, **common)
    if spec.kind == "visa":
        from anomalib.data import Visa  # noqa: PLC0415

        return Visa(root=root, category=category, **common)
    from anomalib.data import Folder  # noqa: PLC0415

    folder = root / category
    defects = sorted(p.name for p in (folder / "test").iterdir() if p.is_dir() and p.name != "good")
    masks = [folder / "ground_truth" / d for d in defects if (folder / "ground_truth" / d).is_dir()]
    return Folder(
        name=category,
        root=folder,
        normal_dir="train/good",
        abnormal_dir=[f"test/{d}" for d in defects],
        normal_test_dir="test/good",
        mask_dir=masks if len(masks) == len(defects) else None,
        val_split_mode="same_as_test",
        **common,
    )


# ---------------------------------------------------------------- models


def make_model(name: str, spec: DatasetSpec, args: argparse.Namespace) -> Any:  # noqa: ANN401
    """A fresh model with the shared evaluator and pre-processing (resize to the image size, ImageNet norm)."""
    from anomalib.models import Patchcore, ReverseDistillation  # noqa: PLC0415

    from anomalib_minimaxad import MiniMaxAD  # noqa: PLC0415

    size = (args.image_size, args.image_size)
    common = {"evaluator": MiniMaxAD.configure_evaluator(), "visualizer": False}
    if name == "minimaxad":
        return MiniMaxAD(
            pre_trained=args.pre_trained,
            loss=args.loss or spec.loss,
            dims=benchlib.parse_dims(args.dims),
            pre_processor=MiniMaxAD.configure_pre_processor(image_size=size),
            **common,
        )
    if name == "reverse_distillation":
        return ReverseDistillation(
            pre_trained=args.pre_trained,
            pre_processor=ReverseDistillation.configure_pre_processor(image_size=size),
            **common,
        )
    return Patchcore(
        pre_trained=args.pre_trained,
        coreset_sampling_ratio=args.coreset_ratio,
        pre_processor=Patchcore.configure_pre_processor(image_size=size),
        **common,
    )


def run_one(
    model_name: str, category: str, spec: DatasetSpec, root: Path, args: argparse.Namespace, workdir: Path
) -> dict[str, Any]:
    """Fit and test one model on one category; metrics in percent."""
    from anomalib.engine import Engine  # noqa: PLC0415
    from lightning.pytorch import seed_everything  # noqa: PLC0415

    seed_everything(args.seed, workers=True)
    datamodule = make_datamodule(spec, root, category, args)
    model = make_model(model_name, spec, args)
    engine = Engine(
        max_epochs=args.epochs,
        default_root_dir=workdir / model_name / category,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator=args.accelerator,
        devices=1,
    )
    start = time.perf_counter()
    engine.fit(model=model, datamodule=datamodule)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    tested = engine.test(model=model, datamodule=datamodule, verbose=False)
    test_s = time.perf_counter() - start
    scores = tested[0] if tested else {}
    metrics = {column: 100 * float(scores[key]) if key in scores else None for column, key in METRICS.items()}
    return {"model": model_name, "category": category, **metrics, "fit_s": fit_s, "test_s": test_s}


# ---------------------------------------------------------------- report


def load_paper(dataset: str) -> dict[str, Any]:
    """The paper's figures for ``dataset`` from ``paper_results.json`` (may be empty)."""
    if not PAPER_RESULTS.exists():
        return {}
    return json.loads(PAPER_RESULTS.read_text(encoding="utf-8")).get("datasets", {}).get(dataset) or {}


#: The categories the paper's figures of each dataset are computed over (its means average all of them).
PAPER_CATEGORIES = {"mvtec": MVTEC_CATEGORIES, "visa": VISA_CATEGORIES}


def describe_categories(categories: Sequence[str]) -> str:
    """``"2 (brick, grass)"``: how many categories a run has, and which."""
    return f"{len(categories)} ({', '.join(categories)})"


def comparable_paper(paper: dict[str, Any], dataset: str | None, categories: Sequence[str]) -> str | None:
    """Why the paper's figures must not stand beside a run over ``categories``, or None when they may.

    A mean over another category set is another quantity (the unified MVTec AD preset on two categories is not
    the paper's 15-category 98.7), so the paper's figures are shown only beside a run over exactly its categories.
    """
    expected = PAPER_CATEGORIES.get(dataset or "", ())
    if not paper or set(categories) == set(expected):
        return None
    return (
        f"Paper figures: not shown ('-'): paper: {len(expected)} categories of {dataset}; "
        f"here: {describe_categories(categories)}; a mean over other categories is not the paper's."
    )


def summarize(results: Sequence[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """Mean of every metric per model."""
    means = {}
    for model in dict.fromkeys(r["model"] for r in results):
        rows = [r for r in results if r["model"] == model]
        means[model] = {
            column: statistics.fmean(values) if (values := [r[column] for r in rows if r[column] is not None]) else None
            for column in METRICS
        }
    return means


def _fmt(value: float | None) -> str:
    return f"{value:.1f}" if value is not None else "-"


def print_report(
    results: Sequence[dict[str, Any]], means: dict[str, dict[str, float | None]], paper: dict[str, Any], condition: str
) -> None:
    paper_categories = paper.get("per_category", {}) or {}
    paper_mean = paper.get("mean", {}) or {}
    for model, model_means in means.items():
        print(f"\n### {model}\n")
        rows = []
        for r in (r for r in results if r["model"] == model):
            paper_row = paper_categories.get(r["category"], {}) if model == "minimaxad" else {}
            rows.append([
                r["category"],
                *(f"{_fmt(r[c])} ({_fmt(paper_row.get(c))})" for c in METRICS),
                f"{r['fit_s']:.0f}",
            ])
        paper_row = paper_mean if model == "minimaxad" else {}
        rows.append(["**mean**", *(f"{_fmt(model_means[c])} ({_fmt(paper_row.get(c))})" for c in METRICS), ""])
        print(benchlib.markdown_table(["category", *(f"{c} (paper)" for c in METRICS), "fit s"], rows))
    print(f"\nCondition: {condition}")
    if paper:
        print(f"Paper figures: {paper.get('setting', '')}; {paper.get('source', '')}")


def write_outputs(out_dir: Path, dataset: str, payload: dict[str, Any]) -> Path:
    """JSON with everything, and a CSV with one line per (model, category) plus the means."""
    path = benchlib.write_json(benchlib.result_path(out_dir, f"accuracy_{dataset}"), payload)
    with path.with_suffix(".csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["model", "category", *METRICS, "fit_s", "test_s"])
        for r in payload["results"]:
            writer.writerow([
                r["model"],
                r["category"],
                *(r[c] for c in METRICS),
                f"{r['fit_s']:.1f}",
                f"{r['test_s']:.1f}",
            ])
        for model, means in payload["means"].items():
            writer.writerow([model, "mean", *(means[c] for c in METRICS), "", ""])
    return path


# ---------------------------------------------------------------- presets (--preset)  # noqa: ERA001

#: ``paper_results.json`` dataset whose figures belong beside a preset's table. It holds unified-setting figures
#: only (one model for all categories), so only the unified presets of those datasets have a paper column.
PRESET_PAPER = {"mvtec_unified": "mvtec", "visa_unified": "visa"}
#: Input size of presets without a pre-processor of their own (MiniMaxAD's default: Resize 256).
DEFAULT_INPUT_SIZE = 256
#: Transforms whose ``size`` ``--image-size`` scales, in the model's pre-processor and the data augmentations.
SIZED_TRANSFORMS = ("Resize", "CenterCrop", "RandomResizedCrop")
AUGMENTATION_KEYS = ("augmentations", "train_augmentations", "val_augmentations", "test_augmentations")
#: The AUPRO column: anomalib's dataset-wide AUPRO or the per-image one (``aupro: per_image`` presets).
AUPRO_KEYS = ("pixel_AUPRO", "pixel_PerImageAUPRO")
#: Options of the ``--dataset`` comparison that a preset run does not use, with their defaults.
DATASET_ONLY_OPTIONS = {
    "dataset": "demo",
    "models": list(MODELS),
    "loss": None,
    "coreset_ratio": 0.1,
    "quick": False,
    "demo_train": 60,
    "demo_test_good": 20,
    "demo_test_defect": 20,
}


def parse_bool(text: str) -> bool:
    """``true``/``false`` (also ``1``/``0``, ``yes``/``no``) -> bool."""
    value = text.strip().lower()
    if value in {"true", "1", "yes"}:
        return True
    if value in {"false", "0", "no"}:
        return False
    msg = f"expected true or false, got {text!r}"
    raise argparse.ArgumentTypeError(msg)


def check_preset_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    """Check the options of a ``--preset`` run; ``parser.error`` (exit 2) names the first bad one."""
    import yaml  # noqa: PLC0415

    from anomalib_minimaxad.presets import preset_path  # noqa: PLC0415

    try:
        args.preset_file = preset_path(args.preset)
    except FileNotFoundError as exc:
        parser.error(f"--preset: {exc}")
    args.preset = args.preset_file.stem
    args.preset_config = yaml.safe_load(args.preset_file.read_text(encoding="utf-8"))
    if args.root is None:
        parser.error(f"--root is required with --preset {args.preset} (the folder of the preset's dataset)")
    if not args.root.is_dir():
        parser.error(f"--root {args.root} is no folder")
    unused = [
        f"--{name.replace('_', '-')}" for name, default in DATASET_ONLY_OPTIONS.items() if vars(args)[name] != default
    ]
    if unused:
        parser.error(f"{', '.join(unused)}: not used with --preset (the preset sets the data, model and loss)")
    for name in ("epochs", "image_size", "batch_size"):
        if vars(args)[name] is not None and vars(args)[name] < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {vars(args)[name]}")
    if args.image_size is not None and args.image_size < 32:
        parser.error(f"--image-size must be at least 32 (the encoder's stride), got {args.image_size}")
    try:
        args.dims_tuple = benchlib.parse_dims(args.dims)
    except ValueError:
        parser.error(f"--dims: expected comma-separated integers like 16,32,64,128, got {args.dims!r}")
    return args


def preset_data_class(config: dict[str, Any]) -> type:
    """The datamodule class named by the preset's ``data.class_path``."""
    import importlib  # noqa: PLC0415

    module_name, _, name = config["data"]["class_path"].rpartition(".")
    return getattr(importlib.import_module(module_name), name)


def is_multi_category(config: dict[str, Any]) -> bool:
    """Whether the preset trains one model for all categories (``Unified``, or the domains of ``AeBADS``)."""
    from anomalib_minimaxad.data.per_category import MultiCategoryDataModule  # noqa: PLC0415

    return issubclass(preset_data_class(config), MultiCategoryDataModule)


def oneclass_categories(config: dict[str, Any], root: Path) -> list[str]:
    """Every category under ``root`` that the preset's datamodule reads, for one model per category.

    Raises:
        FileNotFoundError: No category folder under ``root``.
    """
    from anomalib.data import RealIAD, Visa  # noqa: PLC0415

    data_class = preset_data_class(config)
    if issubclass(data_class, RealIAD):  # <root>/realiad_<resolution>/<category>/{OK,NG}
        folder = root / f"realiad_{config['data']['init_args'].get('resolution', 512)}"
        found = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    elif issubclass(data_class, Visa):  # the split anomalib's Visa makes; before it, the official list
        folder = root / "visa_pytorch"
        found = list(discover_categories(folder)) if folder.is_dir() else list(VISA_CATEGORIES)
    else:
        folder = root
        found = list(discover_categories(folder))
    if not found:
        msg = f"no category folder under {folder} for {data_class.__name__}; pass --categories"
        raise FileNotFoundError(msg)
    return found


def scale_sizes(spec: Any, factor: float) -> Any:  # noqa: ANN401 - a YAML tree
    """A copy of a transform spec (class_path/init_args tree) with every sized transform's size times ``factor``."""
    if isinstance(spec, list):
        return [scale_sizes(item, factor) for item in spec]
    if not isinstance(spec, dict):
        return spec
    scaled = {key: scale_sizes(value, factor) for key, value in spec.items()}
    init_args = scaled.get("init_args") or {}
    if str(scaled.get("class_path", "")).rpartition(".")[2] in SIZED_TRANSFORMS and "size" in init_args:
        size = init_args["size"]
        sizes = size if isinstance(size, list) else [size]
        init_args["size"] = [round(value * factor) for value in sizes]
    return scaled


def first_resize(spec: Any) -> int | None:  # noqa: ANN401 - a YAML tree
    """Side of the first ``Resize`` in a transform spec (the model's input size), if any."""
    if isinstance(spec, list):
        return next((side for item in spec if (side := first_resize(item)) is not None), None)
    if not isinstance(spec, dict):
        return None
    if str(spec.get("class_path", "")).endswith(".Resize"):
        size = spec["init_args"]["size"]
        return int(size[0] if isinstance(size, list) else size)
    return next((side for value in spec.values() if (side := first_resize(value)) is not None), None)


def image_size_overrides(config: dict[str, Any], image_size: int) -> list[str]:
    """CLI options that resize the preset to ``image_size``: its pre-processor and augmentations, scaled alike.

    AeBAD-S's Resize 256 + CenterCrop 224 at 224 px becomes Resize 73 + CenterCrop 64 at 64 px, for example.
    """
    pre_processor = config["model"].get("init_args", {}).get("pre_processor", True)
    if isinstance(pre_processor, dict):
        factor = image_size / (first_resize(pre_processor) or DEFAULT_INPUT_SIZE)
        pre_processor = scale_sizes(pre_processor, factor)
    else:  # the model's default pre-processor, at the new size
        factor = image_size / DEFAULT_INPUT_SIZE
        transforms = [
            {
                "class_path": "torchvision.transforms.v2.Resize",
                "init_args": {"size": [image_size] * 2, "antialias": True},
            },
            {
                "class_path": "torchvision.transforms.v2.Normalize",
                "init_args": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
            },
        ]
        pre_processor = {
            "class_path": "anomalib.pre_processing.PreProcessor",
            "init_args": {
                "transform": {
                    "class_path": "torchvision.transforms.v2.Compose",
                    "init_args": {"transforms": transforms},
                }
            },
        }
    overrides = ["--model.pre_processor", json.dumps(pre_processor)]
    data_args = config["data"].get("init_args", {})
    for key in AUGMENTATION_KEYS:
        if isinstance(data_args.get(key), dict):
            overrides += [f"--data.{key}", json.dumps(scale_sizes(data_args[key], factor))]
    return overrides


def preset_cli_args(args: argparse.Namespace, workdir: Path, category: str | None) -> list[str]:
    """``anomalib train`` arguments of one run of the preset with this script's overrides."""
    config = args.preset_config
    cli_args = ["train", "--config", str(args.preset_file), "--data.root", str(args.root)]
    cli_args += ["--seed_everything", str(args.seed), "--default_root_dir", str(workdir)]
    cli_args += ["--trainer.accelerator", args.accelerator, "--trainer.logger", "false"]
    cli_args += ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
    cli_args += ["--model.visualizer", "false"]  # no result images: only the metrics are reported
    cli_args += ["--data.num_workers", str(args.num_workers)]
    cli_args += ["--data.train_batch_size", str(args.batch_size), "--data.eval_batch_size", str(args.batch_size)]
    if category is not None:
        cli_args += ["--data.category", category]
    elif args.categories:
        # Unified takes the categories, AeBADS its test domains
        key = "categories" if "Unified" in config["data"]["class_path"] else "domains"
        cli_args += [f"--data.{key}", ",".join(args.categories)]
    if args.epochs is not None:
        # validate (thresholds, normalisation) at the last epoch at least, as the preset's own run does
        every = min(int(config["trainer"].get("check_val_every_n_epoch", 1)), args.epochs)
        cli_args += ["--trainer.max_epochs", str(args.epochs), "--trainer.check_val_every_n_epoch", str(every)]
    if args.pre_trained is not None:
        cli_args += ["--model.pre_trained", str(args.pre_trained).lower()]
    if args.dims_tuple is not None:
        cli_args += ["--model.dims", json.dumps(list(args.dims_tuple))]
    if args.image_size is not None:
        cli_args += image_size_overrides(config, args.image_size)
    return cli_args


def preset_metrics(scores: dict[str, float], prefix: str = "") -> dict[str, float | None]:
    """Our columns (percent) from ``engine.test`` results; ``prefix`` is ``"<category>/"`` for multi-category runs."""
    keys = {**METRICS, "AUPRO": next((k for k in AUPRO_KEYS if f"{prefix}{k}" in scores), AUPRO_KEYS[0])}
    values = {column: scores.get(f"{prefix}{key}") for column, key in keys.items()}
    return {c: 100 * float(v) if v is not None and math.isfinite(float(v)) else None for c, v in values.items()}


def run_preset_once(args: argparse.Namespace, workdir: Path, category: str | None) -> dict[str, Any]:
    """Build one run through anomalib's CLI parser, fit and test it with its Engine; metrics per category."""
    from anomalib.cli.cli import AnomalibCLI  # noqa: PLC0415
    from lightning.pytorch import seed_everything  # noqa: PLC0415

    cli_args = preset_cli_args(args, workdir, category)
    print(f"anomalib {shlex.join(cli_args)}", flush=True)
    # anomalib 2.7's CLI parses --seed_everything but never calls it: seed here, before the parser builds the
    # model (initial weights) and the datamodule (split; the training order draws from torch's global generator).
    seed_everything(args.seed, workers=True)
    cli = AnomalibCLI(cli_args, run=False)
    start = time.perf_counter()
    cli.engine.fit(model=cli.model, datamodule=cli.datamodule)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    tested = cli.engine.test(model=cli.model, datamodule=cli.datamodule, verbose=False)
    test_s = time.perf_counter() - start
    scores = tested[0] if tested else {}
    if category is not None:
        per_category = {category: preset_metrics(scores)}
    else:
        per_category = {c: preset_metrics(scores, f"{c}/") for c in cli.datamodule.test_categories}
    return {"categories": list(per_category), "per_category": per_category, "fit_s": fit_s, "test_s": test_s}


def preset_mean(per_category: dict[str, dict[str, float | None]]) -> dict[str, float | None]:
    """Mean of each column over the categories where it is defined (the Mean row)."""
    return {
        column: statistics.fmean(values)
        if (values := [r[column] for r in per_category.values() if r[column] is not None])
        else None
        for column in METRICS
    }


def print_preset_table(
    per_category: dict[str, dict[str, float | None]], mean: dict[str, float | None], paper: dict[str, Any]
) -> None:
    """Rows = categories then Mean, columns = I-AUROC, P-AUROC, AUPRO, P-AUPR: ours (paper's)."""
    paper_rows = paper.get("per_category") or {}
    rows = [
        [category, *(f"{_fmt(values[c])} ({_fmt(paper_rows.get(category, {}).get(c))})" for c in METRICS)]
        for category, values in per_category.items()
    ]
    rows.append(["Mean", *(f"{_fmt(mean[c])} ({_fmt((paper.get('mean') or {}).get(c))})" for c in METRICS)])
    print(benchlib.markdown_table(["Category", *(f"{c} (paper)" for c in METRICS)], rows))


def run_preset(args: argparse.Namespace) -> Path:
    """Run the preset (one model per category, or one for all), print the table beside the paper's, write JSON."""
    benchlib.set_threads(args.threads)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    logging.getLogger("anomalib").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    multi = is_multi_category(args.preset_config)
    categories = None if multi else (args.categories or oneclass_categories(args.preset_config, args.root))
    found = describe_categories(categories) if categories else "those the datamodule finds, printed at the end"
    print(f"Categories: {found}", flush=True)
    mode = "one model for all categories" if multi else "one model per category"
    backbone = {None: "the preset's encoder weights", True: "ImageNet encoder", False: "RANDOMLY INITIALISED encoder"}
    overrides = {k: v for k, v in (("epochs", args.epochs), ("image_size", args.image_size), ("dims", args.dims)) if v}
    condition = (
        f"preset {args.preset} ({args.preset_file.name}), {mode}, {backbone[args.pre_trained]}; "
        f"overrides: {overrides or 'none'}; seed {args.seed}, batch {args.batch_size}"
    )
    print(condition, flush=True)
    with tempfile.TemporaryDirectory(prefix="minimaxad_preset_") as workdir:
        runs = [
            run_preset_once(args, Path(workdir) / (category or "unified"), category)
            for category in categories or [None]
        ]
    per_category = {c: values for run in runs for c, values in run["per_category"].items()}
    mean = preset_mean(per_category)
    paper_dataset = PRESET_PAPER.get(args.preset)
    paper = load_paper(paper_dataset) if paper_dataset else {}
    refusal = comparable_paper(paper, paper_dataset, list(per_category))
    if refusal:
        paper = {}
    print()
    print_preset_table(per_category, mean, paper)
    print(f"\nCondition: {condition}")
    print(f"Categories here: {describe_categories(list(per_category))}.")
    if refusal:
        print(refusal)
    elif paper:
        verified = "checked against the paper" if paper.get("verified") else "NOT checked against the paper"
        print(f"Paper figures ({PAPER_RESULTS.name}, {paper_dataset}): {paper.get('setting', '')}; {verified}")
    else:
        print(f"Paper figures: none for preset {args.preset} in {PAPER_RESULTS.name} ('-').")
    payload = {
        "machine": benchlib.machine_info(args.threads),
        "preset": args.preset,
        "preset_file": str(args.preset_file),
        "mode": mode,
        "condition": condition,
        "pre_trained": args.pre_trained,
        "config": {k: v for k, v in vars(args).items() if k not in {"preset_config", "preset_file", "dims_tuple"}},
        "metrics": {c: f"anomalib {k} on engine.test(), in percent" for c, k in METRICS.items()}
        | {"AUPRO": f"anomalib {' or '.join(AUPRO_KEYS)} (the preset's aupro) on engine.test(), in percent"},
        "runs": [{k: run[k] for k in ("categories", "fit_s", "test_s")} for run in runs],
        "per_category": per_category,
        "mean": mean,
        "paper_dataset": paper_dataset,
        "paper": paper,
        "paper_refused": refusal,
    }
    path = benchlib.write_json(benchlib.result_path(args.out_dir, f"accuracy_preset_{args.preset}"), payload)
    print(f"\nwrote {path}")
    return path


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="demo")
    parser.add_argument(
        "--preset", default=None, help="run this packaged preset (anomalib_minimaxad/configs/<name>.yaml) instead"
    )
    parser.add_argument("--root", type=Path, default=None, help="dataset root (demo: where to generate it)")
    parser.add_argument("--categories", type=benchlib.parse_str_list, default=None, help="default: all of the dataset")
    parser.add_argument("--models", type=benchlib.parse_str_list, default=list(MODELS))
    parser.add_argument("--image-size", type=int, default=None, help="default: the dataset's (see DATASETS)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs of MiniMaxAD and RD (PatchCore: 1 pass)")
    parser.add_argument("--loss", default=None, help="MiniMaxAD loss (adc, global, ...); default: the dataset's")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--coreset-ratio", type=float, default=0.1, help="PatchCore coreset sampling ratio")
    parser.add_argument(
        "--pre-trained",
        type=parse_bool,
        nargs="?",
        const=True,
        default=None,
        help="ImageNet backbones (needs the weights); default: off for --dataset, the preset's for --preset",
    )
    parser.add_argument("--dims", type=str, default=None, help="MiniMaxAD width override (tiny smoke runs only)")
    parser.add_argument("--demo-train", type=int, default=60)
    parser.add_argument("--demo-test-good", type=int, default=20)
    parser.add_argument("--demo-test-defect", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--num-workers", type=int, default=0)
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument("--seed", type=int, default=111, help="the authors' seed")
    parser.add_argument("--out-dir", type=Path, default=benchlib.RESULTS_DIR)
    parser.add_argument("--quick", action="store_true", help="demo: 1 category, 64 px, 8/4/4 images, 1 epoch, batch 4")
    args = parser.parse_args(argv)
    if args.preset is not None:
        return check_preset_args(parser, args)
    args.pre_trained = bool(args.pre_trained)
    spec = DATASETS[args.dataset]
    if args.quick:
        args.categories = args.categories or list(spec.categories[:1])
        args.image_size = args.image_size or 64
        args.epochs = args.epochs or 1
        args.batch_size = min(args.batch_size, 4)
        args.demo_train, args.demo_test_good, args.demo_test_defect = 8, 4, 4
    args.image_size = args.image_size or spec.image_size
    args.epochs = args.epochs or spec.epochs
    for model in args.models:
        if model not in MODELS:
            parser.error(f"unknown model {model!r}; choose from {MODELS}")
    if spec.kind != "demo" and args.root is None:
        parser.error(f"--root is required for --dataset {args.dataset}")
    return args


def main(argv: Sequence[str] | None = None) -> Path:
    args = parse_args(argv)
    if args.preset is not None:
        return run_preset(args)
    spec = DATASETS[args.dataset]
    benchlib.set_threads(args.threads)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    logging.getLogger("anomalib").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    categories = list(args.categories or spec.categories)
    if spec.kind == "demo":
        root = demo_root(args, categories)
    else:
        root = args.root
        categories = categories or list(discover_categories(root))
    backbones = (
        "ImageNet-pretrained backbones"
        if args.pre_trained
        else "RANDOMLY INITIALISED backbones (pre_trained=False) for all models"
    )
    condition = (
        f"{args.dataset}, one-class per category, {backbones}; {args.image_size} px, batch {args.batch_size}, "
        f"{args.epochs} epochs for MiniMaxAD (loss {args.loss or spec.loss}) and Reverse Distillation, one pass for "
        f"PatchCore (coreset {args.coreset_ratio}); seed {args.seed}; same datamodule and evaluator for all."
    )
    print(condition)
    print(f"Categories: {describe_categories(categories)}", flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="minimaxad_accuracy_") as workdir:
        for category in categories:
            for model_name in args.models:
                print(f"[{category}] {model_name} ...", flush=True)
                results.append(run_one(model_name, category, spec, root, args, Path(workdir)))
    means = summarize(results)
    paper = load_paper(args.dataset)
    refusal = comparable_paper(paper, args.dataset, categories)
    print_report(results, means, {} if refusal else paper, condition)
    print(f"Categories here: {describe_categories(categories)}.")
    if refusal:
        print(refusal)
    elif not paper:
        print("Paper figures: none for this dataset ('-').")
    payload = {
        "machine": benchlib.machine_info(args.threads),
        "dataset": args.dataset,
        "condition": condition,
        "pre_trained": args.pre_trained,
        "protocol_source": spec.protocol_source,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "metrics": {c: f"anomalib {k} on engine.test(), in percent" for c, k in METRICS.items()},
        "categories": categories,
        "results": results,
        "means": means,
        "paper": {} if refusal else paper,
        "paper_refused": refusal,
    }
    path = write_outputs(args.out_dir, args.dataset, payload)
    print(f"\nwrote {path} and {path.with_suffix('.csv').name}")
    return path


if __name__ == "__main__":
    main()

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

Examples:
    python benchmarks/accuracy.py --dataset demo --quick
    python benchmarks/accuracy.py --dataset demo --epochs 20
    python benchmarks/accuracy.py --dataset mvtec --root ./datasets/MVTecAD --pre-trained --categories bottle,cable
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
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
        common["train_augmentations"] = v2.Compose(
            [v2.RandomResizedCrop(size, scale=(0.7, 1.0)), v2.RandomHorizontalFlip()]
        )
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
            rows.append(
                [r["category"], *(f"{_fmt(r[c])} ({_fmt(paper_row.get(c))})" for c in METRICS), f"{r['fit_s']:.0f}"]
            )
        paper_row = paper_mean if model == "minimaxad" else {}
        rows.append(["**mean**", *(f"{_fmt(model_means[c])} ({_fmt(paper_row.get(c))})" for c in METRICS), ""])
        print(benchlib.markdown_table(["category", *(f"{c} (paper)" for c in METRICS), "fit s"], rows))
    print(f"\nCondition: {condition}")
    if paper:
        print(f"Paper figures: {paper.get('setting', '')}; {paper.get('source', '')}")
    else:
        print("Paper figures: none for this dataset ('-').")


def write_outputs(out_dir: Path, dataset: str, payload: dict[str, Any]) -> Path:
    """JSON with everything, and a CSV with one line per (model, category) plus the means."""
    path = benchlib.write_json(benchlib.result_path(out_dir, f"accuracy_{dataset}"), payload)
    with path.with_suffix(".csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["model", "category", *METRICS, "fit_s", "test_s"])
        for r in payload["results"]:
            writer.writerow(
                [r["model"], r["category"], *(r[c] for c in METRICS), f"{r['fit_s']:.1f}", f"{r['test_s']:.1f}"]
            )
        for model, means in payload["means"].items():
            writer.writerow([model, "mean", *(means[c] for c in METRICS), "", ""])
    return path


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="demo")
    parser.add_argument("--root", type=Path, default=None, help="dataset root (demo: where to generate it)")
    parser.add_argument("--categories", type=benchlib.parse_str_list, default=None, help="default: all of the dataset")
    parser.add_argument("--models", type=benchlib.parse_str_list, default=list(MODELS))
    parser.add_argument("--image-size", type=int, default=None, help="default: the dataset's (see DATASETS)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs of MiniMaxAD and RD (PatchCore: 1 pass)")
    parser.add_argument("--loss", default=None, help="MiniMaxAD loss (adc, global, ...); default: the dataset's")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--coreset-ratio", type=float, default=0.1, help="PatchCore coreset sampling ratio")
    parser.add_argument("--pre-trained", action="store_true", help="ImageNet backbones (needs the weights)")
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
    results = []
    with tempfile.TemporaryDirectory(prefix="minimaxad_accuracy_") as workdir:
        for category in categories:
            for model_name in args.models:
                print(f"[{category}] {model_name} ...", flush=True)
                results.append(run_one(model_name, category, spec, root, args, Path(workdir)))
    means = summarize(results)
    paper = load_paper(args.dataset)
    print_report(results, means, paper, condition)
    payload = {
        "machine": benchlib.machine_info(args.threads),
        "dataset": args.dataset,
        "condition": condition,
        "pre_trained": args.pre_trained,
        "protocol_source": spec.protocol_source,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "metrics": {c: f"anomalib {k} on engine.test(), in percent" for c, k in METRICS.items()},
        "results": results,
        "means": means,
        "paper": paper,
    }
    path = write_outputs(args.out_dir, args.dataset, payload)
    print(f"\nwrote {path} and {path.with_suffix('.csv').name}")
    return path


if __name__ == "__main__":
    main()

"""Generated data sets at scale, written fast: the MVTec AD layout (``eval_scale.py``) and Real-IAD's (``--realiad``).

Thousands of images are needed to measure how evaluation grows with the test set, so they are cheap to make:
each image is a random window of a smooth random texture (one per category), a defective image carries one
rectangle of another colour, and its mask is that rectangle. PNGs are written with zlib level 1. The content
is irrelevant to memory and time (the networks of the benchmark have random weights), but every image differs
and every defect has a pixel-exact mask, so the metrics are defined.

A finished set is marked by a ``.complete`` file holding its parameters: the same call reuses it, other
parameters regenerate it. Test sets of several sizes share their files (hard links to the largest one).

Example:
    >>> root = write_mvtec_layout("/tmp/scale", "tex256", image_size=256, num_train=8, num_test=3200)
    >>> link_mvtec_subset(root / "tex256", root / "n200", num_test=200)
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

COMPLETE_MARKER = ".complete"
#: Fastest zlib level: a 512-px PNG in a few ms (compression ratio does not matter here).
PNG_COMPRESS_LEVEL = 1
DEFECT = "defect"
#: Real-IAD's normal class and the defect class written here ("AK", pit, is one of Real-IAD's).
REALIAD_NORMAL = "OK"
REALIAD_DEFECT = "AK"
#: Side of the random grid that is upsampled into a category's texture (smooth: compresses and decodes fast).
_TEXTURE_GRID = 24


def _texture(rng: np.random.Generator, side: int) -> np.ndarray:
    """A smooth random RGB texture, ``(side, side, 3)`` uint8."""
    grid = rng.integers(40, 216, size=(_TEXTURE_GRID, _TEXTURE_GRID, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(grid).resize((side, side), Image.Resampling.BICUBIC))


def _image(
    texture: np.ndarray, rng: np.random.Generator, size: int, defective: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """A ``size`` window of ``texture`` at a random place and, if ``defective``, a rectangle and its mask."""
    top, left = rng.integers(0, texture.shape[0] - size, size=2)
    image = texture[top : top + size, left : left + size].copy()
    if not defective:
        return image, None
    height, width = rng.integers(size // 20 + 1, size // 5 + 2, size=2)
    row, col = rng.integers(0, size - height), rng.integers(0, size - width)
    image[row : row + height, col : col + width] = rng.integers(0, 256, size=3, dtype=np.uint8)
    mask = np.zeros((size, size), dtype=np.uint8)
    mask[row : row + height, col : col + width] = 255
    return image, mask


def _save(array: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".png":
        Image.fromarray(array).save(path, compress_level=PNG_COMPRESS_LEVEL)
    else:
        Image.fromarray(array).save(path, quality=90)


def _is_complete(folder: Path, parameters: dict[str, Any]) -> bool:
    marker = folder / COMPLETE_MARKER
    return marker.is_file() and json.loads(marker.read_text(encoding="utf-8")) == parameters


def _start(folder: Path) -> None:
    """Empty ``folder`` (a set with other parameters or an interrupted one)."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)


def _finish(folder: Path, parameters: dict[str, Any]) -> None:
    (folder / COMPLETE_MARKER).write_text(json.dumps(parameters), encoding="utf-8")


def write_mvtec_layout(
    root: str | Path, category: str, image_size: int, num_train: int, num_test: int, seed: int = 0
) -> Path:
    """One category in the MVTec AD layout: ``train/good``, ``test/{good,defect}``, ``ground_truth/defect``.

    Half the test images (rounded down) are normal. Returns ``root``.
    """
    root = Path(root)
    folder = root / category
    parameters = {
        "layout": "mvtec",
        "image_size": image_size,
        "num_train": num_train,
        "num_test": num_test,
        "seed": seed,
    }
    if _is_complete(folder, parameters):
        return root
    _start(folder)
    rng = np.random.default_rng(seed)
    texture = _texture(rng, 2 * image_size)
    for index in range(num_train):
        _save(_image(texture, rng, image_size, defective=False)[0], folder / "train" / "good" / f"{index:05d}.png")
    for index in range(num_test):
        defective = index % 2 == 1
        image, mask = _image(texture, rng, image_size, defective)
        label = DEFECT if defective else "good"
        _save(image, folder / "test" / label / f"{index:05d}.png")
        if mask is not None:
            _save(mask, folder / "ground_truth" / DEFECT / f"{index:05d}_mask.png")
    _finish(folder, parameters)
    return root


def link_mvtec_subset(source: Path, target: Path, num_test: int) -> Path:
    """``target``: the category ``source`` with its first ``num_test`` test images, as hard links (no copies)."""
    parameters = {"layout": "mvtec-subset", "source": str(source), "num_test": num_test}
    if _is_complete(target, parameters):
        return target
    available = len(list((source / "test").rglob("*.png")))
    if num_test > available:
        msg = f"{source} has {available} test images, fewer than the {num_test} asked for."
        raise ValueError(msg)
    _start(target)
    files = sorted((source / "train").rglob("*.png"))
    tests = sorted((source / "test").rglob("*.png"), key=lambda path: path.name)[:num_test]
    files += tests
    files += [
        source / "ground_truth" / DEFECT / f"{path.stem}_mask.png" for path in tests if path.parent.name == DEFECT
    ]
    for path in files:
        link = target / path.relative_to(source)
        link.parent.mkdir(parents=True, exist_ok=True)
        os.link(path, link)
    _finish(target, parameters)
    return target


def write_realiad_layout(
    root: str | Path,
    categories: Sequence[str],
    num_test: int,
    num_train: int,
    image_size: int = 256,
    seed: int = 0,
) -> Path:
    """A Real-IAD folder as anomalib's ``RealIAD`` reads it, ``num_test`` test images per category.

    ``<root>/realiad_<image_size>/<category>/OK/S<nnnn>/<category>_<nnnn>_OK_C1_0.jpg``, defective samples under
    ``NG/AK/S<nnnn>/`` with ``..._mask.png`` beside them, and the multi-view sample lists
    ``<root>/realiad_jsons/realiad_jsons/<category>.json`` (``train`` and ``test``: ``category``,
    ``anomaly_class``, ``image_path`` and ``mask_path`` relative to the category folder). Half the test samples
    (rounded down) are normal. Categories must be Real-IAD's (anomalib checks the names). Returns ``root``.
    """
    root = Path(root)
    parameters = {
        "layout": "realiad",
        "categories": list(categories),
        "num_test": num_test,
        "num_train": num_train,
        "image_size": image_size,
        "seed": seed,
    }
    if _is_complete(root, parameters):
        return root
    _start(root)
    for offset, category in enumerate(categories):
        rng = np.random.default_rng([seed, offset])
        texture = _texture(rng, 2 * image_size)
        folder = root / f"realiad_{image_size}" / category
        lists: dict[str, list[dict[str, Any]]] = {"train": [], "test": []}
        for index in range(num_train + num_test):
            split = "train" if index < num_train else "test"
            defective = split == "test" and (index - num_train) % 2 == 1
            image, mask = _image(texture, rng, image_size, defective)
            label = REALIAD_DEFECT if defective else REALIAD_NORMAL
            stem = f"{category}_{index:04d}_{'NG' if defective else 'OK'}_C1_0"
            sample_dir = Path("NG", label) if defective else Path(REALIAD_NORMAL)
            image_path = sample_dir / f"S{index:04d}" / f"{stem}.jpg"
            _save(image, folder / image_path)
            mask_path = None
            if mask is not None:
                mask_path = sample_dir / f"S{index:04d}" / f"{stem}_mask.png"
                _save(mask, folder / mask_path)
            lists[split].append({
                "category": category,
                "anomaly_class": label,
                "image_path": str(image_path),
                "mask_path": str(mask_path) if mask_path else None,
            })  # fmt: skip
        json_file = root / REALIAD_JSON_PATH.format(category=category)
        json_file.parent.mkdir(parents=True, exist_ok=True)
        meta = {"prefix": "", "normal_class": REALIAD_NORMAL, "pixel_anomaly_classes": {REALIAD_DEFECT: "pit"}}
        json_file.write_text(json.dumps({"meta": meta, **lists}), encoding="utf-8")
    _finish(root, parameters)
    return root


#: The sample lists anomalib's ``RealIAD`` reads by default (relative to the Real-IAD folder).
REALIAD_JSON_PATH = "realiad_jsons/realiad_jsons/{category}.json"


def write_realiad_subset_lists(root: str | Path, categories: Sequence[str], num_test: int) -> str:
    """Sample lists with the first ``num_test`` test samples of each category; returns their ``json_path``."""
    json_path = f"realiad_jsons/first_{num_test}/{{category}}.json"
    for category in categories:
        full = json.loads((Path(root) / REALIAD_JSON_PATH.format(category=category)).read_text(encoding="utf-8"))
        subset = Path(root) / json_path.format(category=category)
        subset.parent.mkdir(parents=True, exist_ok=True)
        subset.write_text(json.dumps({**full, "test": full["test"][:num_test]}), encoding="utf-8")
    return json_path

# Copyright (C) 2026 anomalib-minimaxad developers
# SPDX-License-Identifier: Apache-2.0
"""Deterministic demo dataset in the MVTec AD layout, built from real texture photographs.

The images come from the texture photographs that scikit-image ships inside its package
(``skimage.data.brick()``, ``grass()`` and ``gravel()``, 512x512 grayscale), so no download is needed.
Normal images are random crops of a photograph; defective images are crops with one synthetic defect
painted in, and each defect has a pixel-exact ground-truth mask. The result can be read by anomalib's
``MVTecAD`` datamodule without any conversion::

    <root>/
    └── <category>/                      # brick, grass or gravel
        ├── .complete                    # JSON with the generation parameters, written last
        ├── train/
        │   └── good/000.png ...         # normal crops from the left 60% of the photograph
        ├── test/
        │   ├── good/000.png ...         # normal crops from the right 40% (never seen in training)
        │   └── <defect>/000.png ...     # scratch, stain, hole, color_spot, cut_paste
        └── ground_truth/
            └── <defect>/000_mask.png    # single-channel 0/255 mask, same size as the image

Images are 3-channel RGB PNGs of ``image_size`` x ``image_size`` pixels. The same arguments always produce
byte-identical files: every image draws from its own ``numpy`` random generator seeded from
``(seed, category, stream, image index)``, so changing one count does not change the other images.

Each category is written into a hidden sibling folder (``<root>/.<category>.tmp-<pid>``) and renamed into
place only when complete, so an interrupted run never leaves a half-written category behind.

Example:
    >>> from anomalib.data import MVTecAD
    >>> root = generate_demo_dataset("./datasets/minimaxad_demo", categories=("brick",))
    >>> datamodule = MVTecAD(root=root, category="brick")
"""

from __future__ import annotations

import colorsys
import functools
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["DEFECT_TYPES", "DEMO_CATEGORIES", "generate_demo_dataset"]

DEMO_CATEGORIES: tuple[str, ...] = ("brick", "grass", "gravel")
"""Categories, each named after the ``skimage.data`` photograph it is cropped from."""

DEFECT_TYPES: tuple[str, ...] = ("scratch", "stain", "hole", "color_spot", "cut_paste")
"""Defect kinds; the defective test images are spread over them in this order."""

MIN_IMAGE_SIZE = 32
COMPLETE_MARKER = ".complete"

# Bump when the generated pixels change, so an old dataset is not silently mixed with a new one.
_FORMAT_VERSION = 1

# Train crops come from the columns left of this fraction, test crops from the rest. The split is by columns
# because the brick photograph has vertical perspective: every column range sees the same brick sizes.
_TRAIN_COLUMN_FRACTION = 0.6
# Crop side in source pixels; a small spread mimics a camera at slightly varying distance.
_CROP_SIDE_RANGE = (176, 200)
# 90-degree rotations keep grass and gravel looking normal, but would turn the vertical bricks sideways.
_ROTATION_INVARIANT_CATEGORIES = frozenset({"grass", "gravel"})

# Random streams of one category: train, test/good, then one per defect kind.
_TRAIN_STREAM = 0
_TEST_GOOD_STREAM = 1
_FIRST_DEFECT_STREAM = 2

# A pixel counts as defective when the defect contributes at least this much of its colour.
_SOFT_MASK_THRESHOLD = 0.25
_HALF = 0.5


@dataclass(frozen=True)
class _Canvas:
    """A normal crop that a defect is painted onto, plus what cut_paste needs to fetch a patch."""

    image: np.ndarray  # float32 (size, size, 3) in [0, 255]
    texture: np.ndarray  # the whole grayscale source photograph
    source_pixels_per_image_pixel: float  # keeps pasted patches at the scale of the crop


def generate_demo_dataset(
    root: str | Path,
    categories: Sequence[str] = DEMO_CATEGORIES,
    *,
    image_size: int = 256,
    num_train: int = 60,
    num_test_good: int = 20,
    num_test_defect: int = 20,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Generate (or reuse) a small anomaly detection dataset in the MVTec AD layout.

    A category whose folder is already complete with the same parameters is reused as it is. Generation takes
    about a second per category at the default settings.

    Args:
        root: Folder that receives one sub-folder per category; created if missing.
        categories: Which categories to generate, any of ``DEMO_CATEGORIES``.
        image_size: Side length in pixels of the square images and masks, at least 32.
        num_train: Number of normal training images per category.
        num_test_good: Number of normal test images per category.
        num_test_defect: Number of defective test images per category, spread as evenly as possible over
            ``DEFECT_TYPES`` (the first kinds get one more when it does not divide evenly).
        seed: Non-negative seed; the same arguments always produce byte-identical files.
        overwrite: Regenerate categories that already exist instead of reusing them.

    Returns:
        ``root`` as a ``Path``.

    Raises:
        ValueError: If an argument is invalid, or if a category folder exists with other parameters (or
            was not made by this function) and ``overwrite`` is ``False``.
        ImportError: If scikit-image, which provides the source photographs, is not installed.

    Example:
        >>> root = generate_demo_dataset("/tmp/minimaxad_demo", categories=("grass",), image_size=128)
        >>> sorted(path.name for path in (root / "grass" / "test").iterdir())
        ['color_spot', 'cut_paste', 'good', 'hole', 'scratch', 'stain']
    """
    counts = {"num_train": num_train, "num_test_good": num_test_good, "num_test_defect": num_test_defect}
    selected_categories = _validate_arguments(categories, image_size=image_size, seed=seed, **counts)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)

    # Check every existing category before generating anything, so a mismatch fails fast.
    to_generate = []
    for category in selected_categories:
        parameters = _generation_parameters(category, image_size=image_size, seed=seed, **counts)
        category_dir = root / category
        if category_dir.exists() and not overwrite:
            _check_existing_category(category_dir, parameters)
        else:
            to_generate.append(parameters)

    for parameters in to_generate:
        _remove_stale_work_folders(root, parameters["category"])
        _generate_category_atomically(root, parameters, overwrite=overwrite)
    return root


def _validate_arguments(
    categories: Sequence[str],
    *,
    image_size: int,
    num_train: int,
    num_test_good: int,
    num_test_defect: int,
    seed: int,
) -> tuple[str, ...]:
    """Check the arguments of ``generate_demo_dataset`` and return the categories without duplicates."""
    if isinstance(categories, str):  # a lone name would otherwise be iterated letter by letter
        categories = (categories,)
    selected = tuple(dict.fromkeys(categories))
    if not selected:
        msg = f"`categories` is empty; choose from {list(DEMO_CATEGORIES)}."
        raise ValueError(msg)
    unknown = [category for category in selected if category not in DEMO_CATEGORIES]
    if unknown:
        msg = f"Unknown demo categories {unknown}; choose from {list(DEMO_CATEGORIES)}."
        raise ValueError(msg)
    if not _is_int(image_size) or image_size < MIN_IMAGE_SIZE:
        msg = f"`image_size` must be an integer of at least {MIN_IMAGE_SIZE}, got {image_size!r}."
        raise ValueError(msg)
    counts = {"num_train": num_train, "num_test_good": num_test_good, "num_test_defect": num_test_defect}
    for name, count in counts.items():
        if not _is_int(count) or count < 1:
            msg = f"`{name}` must be an integer of at least 1, got {count!r}."
            raise ValueError(msg)
    if not _is_int(seed) or seed < 0:
        msg = f"`seed` must be a non-negative integer, got {seed!r}."
        raise ValueError(msg)
    return selected


def _is_int(value: object) -> bool:
    """Whether ``value`` is an integer (``bool`` is not accepted as one)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _generation_parameters(
    category: str,
    *,
    image_size: int,
    num_train: int,
    num_test_good: int,
    num_test_defect: int,
    seed: int,
) -> dict[str, int | str]:
    """Everything that determines a category's files; stored in its completeness marker."""
    return {
        "format_version": _FORMAT_VERSION,
        "category": category,
        "image_size": int(image_size),
        "num_train": int(num_train),
        "num_test_good": int(num_test_good),
        "num_test_defect": int(num_test_defect),
        "seed": int(seed),
    }


def _check_existing_category(category_dir: Path, parameters: dict[str, int | str]) -> None:
    """Accept an existing category folder only if it was completed with exactly ``parameters``."""
    marker = category_dir / COMPLETE_MARKER
    try:
        stored = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        stored = None
    if stored == parameters:
        return
    if isinstance(stored, dict):
        differences = ", ".join(
            f"{key}={stored.get(key)!r} (requested {value!r})"
            for key, value in parameters.items()
            if stored.get(key) != value
        )
        found = f"it was generated with other parameters: {differences}"
    else:
        found = f"it has no valid {COMPLETE_MARKER} marker, so it is incomplete or not made by generate_demo_dataset"
    msg = (
        f"The demo dataset folder {category_dir} already exists, but {found}. "
        "Pass overwrite=True (CLI: --overwrite) to regenerate it, or use another root."
    )
    raise ValueError(msg)


def _remove_stale_work_folders(root: Path, category: str) -> None:
    """Delete work folders of ``category`` left by runs that were killed before they could clean up."""
    for pattern in (f".{category}.tmp-*", f".{category}.old-*"):
        for work_dir in root.glob(pattern):
            owner_pid = work_dir.name.rpartition("-")[2]
            # A concurrent run (e.g. another training process) may still be writing into its folder.
            if owner_pid.isdigit() and int(owner_pid) != os.getpid() and _process_is_alive(int(owner_pid)):
                continue
            shutil.rmtree(work_dir, ignore_errors=True)


def _process_is_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (always ``False`` on Windows)."""
    if sys.platform == "win32":  # os.kill(pid, 0) would terminate the process there
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, but belongs to another user
        return True
    except OSError:
        return False
    return True


def _generate_category_atomically(root: Path, parameters: dict[str, int | str], *, overwrite: bool) -> None:
    """Write a category into a work folder and move it into place only once it is complete."""
    category = str(parameters["category"])
    category_dir = root / category
    work_dir = root / f".{category}.tmp-{os.getpid()}"
    shutil.rmtree(work_dir, ignore_errors=True)
    try:
        _write_category(work_dir, parameters)
        # The marker goes last: its presence means every image and mask was written.
        (work_dir / COMPLETE_MARKER).write_text(json.dumps(parameters, indent=2, sort_keys=True) + "\n", "utf-8")
        if category_dir.exists():
            if not overwrite:
                # Another process finished the same category first; keep its copy if it is the same.
                _check_existing_category(category_dir, parameters)
                shutil.rmtree(work_dir)
                return
            # Move the old copy aside first, so the final path is never empty for longer than a rename.
            old_dir = root / f".{category}.old-{os.getpid()}"
            shutil.rmtree(old_dir, ignore_errors=True)
            category_dir.rename(old_dir)
            work_dir.rename(category_dir)
            shutil.rmtree(old_dir, ignore_errors=True)
        else:
            work_dir.rename(category_dir)
    except BaseException:  # also on Ctrl-C: leave nothing half-written behind
        shutil.rmtree(work_dir, ignore_errors=True)
        raise


def _write_category(category_dir: Path, parameters: dict[str, int | str]) -> None:
    """Write all images and masks of one category into ``category_dir``."""
    category = str(parameters["category"])
    image_size = int(parameters["image_size"])
    seed = int(parameters["seed"])
    category_index = DEMO_CATEGORIES.index(category)  # fixed order, so results do not depend on the selection
    texture = _load_texture(category)
    split_column = int(texture.shape[1] * _TRAIN_COLUMN_FRACTION)
    train_columns = (0, split_column)
    test_columns = (split_column, texture.shape[1])
    allow_rot90 = category in _ROTATION_INVARIANT_CATEGORIES

    def crop(stream: int, index: int, columns: tuple[int, int]) -> tuple[np.ndarray, float, np.random.Generator]:
        rng = np.random.default_rng([seed, category_index, stream, index])
        image, scale = _random_normal_crop(texture, rng, columns, image_size, allow_rot90=allow_rot90)
        return image, scale, rng

    num_train = int(parameters["num_train"])
    for index in range(num_train):
        image, _, _ = crop(_TRAIN_STREAM, index, train_columns)
        _write_png(category_dir / "train" / "good" / _image_name(index, num_train), image)

    num_test_good = int(parameters["num_test_good"])
    for index in range(num_test_good):
        image, _, _ = crop(_TEST_GOOD_STREAM, index, test_columns)
        _write_png(category_dir / "test" / "good" / _image_name(index, num_test_good), image)

    for kind_index, (defect, count) in enumerate(_defect_counts(int(parameters["num_test_defect"]))):
        for index in range(count):
            image, scale, rng = crop(_FIRST_DEFECT_STREAM + kind_index, index, test_columns)
            defective, mask = _DEFECT_PAINTERS[defect](_Canvas(image, texture, scale), rng)
            name = _image_name(index, count)
            _write_png(category_dir / "test" / defect / name, defective)
            mask_name = f"{Path(name).stem}_mask.png"
            _write_png(category_dir / "ground_truth" / defect / mask_name, mask.astype(np.uint8) * 255)


def _defect_counts(num_test_defect: int) -> list[tuple[str, int]]:
    """Spread the defective images over the defect kinds; kinds that get none are left out."""
    base, remainder = divmod(num_test_defect, len(DEFECT_TYPES))
    counts = [(defect, base + (index < remainder)) for index, defect in enumerate(DEFECT_TYPES)]
    return [(defect, count) for defect, count in counts if count > 0]


def _image_name(index: int, count: int) -> str:
    """MVTec-style zero-padded name (``000.png``), wider only when a folder holds 1000+ images."""
    return f"{index:0{max(3, len(str(count - 1)))}d}.png"


def _write_png(path: Path, pixels: np.ndarray) -> None:
    """Write a uint8 (H, W) or (H, W, 3) array, or a float array in [0, 255], as a PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if pixels.dtype != np.uint8:
        pixels = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, format="PNG")


@functools.cache
def _load_texture(category: str) -> np.ndarray:
    """Load the grayscale source photograph of ``category`` from scikit-image's bundled files."""
    try:
        from skimage import data as skimage_data
    except ImportError as error:
        msg = "The demo dataset is cropped from scikit-image's sample photographs: `pip install scikit-image`."
        raise ImportError(msg) from error
    texture = np.asarray(getattr(skimage_data, category)())
    if texture.ndim == 3:  # be robust should a future release ship them in colour
        texture = texture[..., :3].mean(axis=2)
    texture = np.ascontiguousarray(texture, dtype=np.uint8)
    texture.setflags(write=False)  # shared through the cache
    return texture


def _random_normal_crop(
    texture: np.ndarray,
    rng: np.random.Generator,
    columns: tuple[int, int],
    image_size: int,
    *,
    allow_rot90: bool,
) -> tuple[np.ndarray, float]:
    """Cut a random square from ``texture`` within ``columns``, flip/rotate it and resize it to RGB.

    Returns:
        The float32 (image_size, image_size, 3) image and the crop's source pixels per image pixel.
    """
    first_column, end_column = columns
    side = int(rng.integers(_CROP_SIDE_RANGE[0], _CROP_SIDE_RANGE[1] + 1))
    side = min(side, end_column - first_column, texture.shape[0])
    left = int(rng.integers(first_column, end_column - side + 1))
    top = int(rng.integers(0, texture.shape[0] - side + 1))
    crop = texture[top : top + side, left : left + side]
    if rng.random() < _HALF:
        crop = crop[:, ::-1]
    if rng.random() < _HALF:
        crop = crop[::-1, :]
    if allow_rot90:
        crop = np.rot90(crop, k=int(rng.integers(4)))
    resized = Image.fromarray(np.ascontiguousarray(crop)).resize((image_size, image_size), Image.Resampling.BICUBIC)
    gray = np.asarray(resized, dtype=np.float32)
    return np.repeat(gray[:, :, None], 3, axis=2), side / image_size


# --- defect painters: each returns the defective float image and a boolean mask ------------------------------


def _paint_scratch(canvas: _Canvas, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A thin bright or dark polyline with gentle bends, like a dragged tool tip."""
    size = canvas.image.shape[0]
    width = max(1, round(size * rng.uniform(0.012, 0.02)))
    margin = 0.08 * size
    point = rng.uniform(0.25 * size, 0.75 * size, size=2)
    heading = rng.uniform(0.0, 2.0 * np.pi)
    points = [point]
    for _ in range(int(rng.integers(4, 7))):
        heading += rng.normal(0.0, 0.4)
        direction = np.array([np.cos(heading), np.sin(heading)])
        step = size * rng.uniform(0.1, 0.18)
        candidate = points[-1] + step * direction
        # Bounce off the border instead of leaving the image, so the scratch keeps its length.
        outside = (candidate < margin) | (candidate > size - margin)
        direction[outside] *= -1.0
        heading = float(np.arctan2(direction[1], direction[0]))
        points.append(np.clip(points[-1] + step * direction, margin, size - margin))
    line = Image.new("L", (size, size), 0)
    ImageDraw.Draw(line).line([tuple(p) for p in points], fill=255, width=width, joint="curve")
    alpha = _blurred(line, radius=max(0.5, 0.3 * width))
    colour = rng.uniform(225.0, 255.0) if rng.random() < _HALF else rng.uniform(0.0, 30.0)
    defective = _blend(canvas.image, np.full_like(canvas.image, colour), alpha)
    return defective, alpha >= _SOFT_MASK_THRESHOLD


def _paint_stain(canvas: _Canvas, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A soft-edged blob that darkens or tints the texture while the texture still shows through."""
    size = canvas.image.shape[0]
    outline = _random_blob(rng, size, mean_radius=size * rng.uniform(0.09, 0.14), irregularity=0.25)
    strength = rng.uniform(0.7, 0.9)
    alpha = strength * _polygon_alpha(size, outline, blur_radius=size * 0.025)
    # Multiplicative tints: brown coffee, dark oil, blue ink, rust.
    tints = np.array([[0.45, 0.3, 0.15], [0.3, 0.3, 0.3], [0.25, 0.4, 0.75], [0.7, 0.45, 0.15]], dtype=np.float32)
    tint = tints[int(rng.integers(len(tints)))]
    defective = _blend(canvas.image, canvas.image * tint, alpha)
    return defective, alpha >= _SOFT_MASK_THRESHOLD


def _paint_hole(canvas: _Canvas, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Missing texture: a sharp-edged region that is either flat and dark or heavily blurred and darker."""
    size = canvas.image.shape[0]
    outline = _random_blob(rng, size, mean_radius=size * rng.uniform(0.08, 0.13), irregularity=0.2)
    alpha = _polygon_alpha(size, outline, blur_radius=max(0.5, size * 0.004))
    if rng.random() < _HALF:
        dark = rng.uniform(8.0, 35.0) + rng.normal(0.0, 1.5, size=canvas.image.shape[:2])
        filling = np.repeat(dark[:, :, None], 3, axis=2).astype(np.float32)
    else:
        smooth = Image.fromarray(np.clip(np.rint(canvas.image), 0, 255).astype(np.uint8))
        filling = 0.6 * _as_float(smooth.filter(ImageFilter.GaussianBlur(size * 0.05)))
    return _blend(canvas.image, filling, alpha), alpha >= _HALF


def _paint_color_spot(canvas: _Canvas, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A saturated paint spot; its brightness follows the texture so it looks painted on, not pasted."""
    size = canvas.image.shape[0]
    outline = _random_blob(rng, size, mean_radius=size * rng.uniform(0.07, 0.11), irregularity=0.2)
    alpha = rng.uniform(0.85, 0.95) * _polygon_alpha(size, outline, blur_radius=max(0.5, size * 0.006))
    red, green, blue = colorsys.hsv_to_rgb(rng.uniform(0.0, 1.0), rng.uniform(0.8, 1.0), rng.uniform(0.85, 1.0))
    luminance = canvas.image.mean(axis=2, keepdims=True) / 255.0
    paint = 255.0 * np.array([red, green, blue], dtype=np.float32) * (0.5 + 0.5 * luminance)
    return _blend(canvas.image, paint, alpha), alpha >= _SOFT_MASK_THRESHOLD


def _paint_cut_paste(canvas: _Canvas, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A rectangle of the photograph from elsewhere, rotated by 90 degrees, rescaled and re-lit, pasted in."""
    size = canvas.image.shape[0]
    height, width = (max(2, round(size * fraction)) for fraction in rng.uniform(0.16, 0.28, size=2))
    # Zooming in or out changes the grain size, so the patch stands out even on isotropic textures.
    zoom = rng.uniform(1.5, 2.0) if rng.random() < _HALF else rng.uniform(0.5, 0.65)
    quarter_turns = int(rng.choice([1, 3]))
    source_height, source_width = (
        min(canvas.texture.shape[axis], max(2, round(length * canvas.source_pixels_per_image_pixel / zoom)))
        for axis, length in enumerate((height, width))
    )
    if quarter_turns % 2:  # the region is cut transposed so that it has the right shape after rotating
        source_height, source_width = source_width, source_height
    top = int(rng.integers(0, canvas.texture.shape[0] - source_height + 1))
    left = int(rng.integers(0, canvas.texture.shape[1] - source_width + 1))
    region = np.rot90(canvas.texture[top : top + source_height, left : left + source_width], k=quarter_turns)
    patch = Image.fromarray(np.ascontiguousarray(region)).resize((width, height), Image.Resampling.BICUBIC)
    gain = rng.uniform(0.75, 0.88) if rng.random() < _HALF else rng.uniform(1.12, 1.25)
    patch_pixels = np.clip(gain * np.asarray(patch, dtype=np.float32), 0.0, 255.0)

    paste_top = int(rng.integers(0, size - height + 1))
    paste_left = int(rng.integers(0, size - width + 1))
    defective = canvas.image.copy()
    defective[paste_top : paste_top + height, paste_left : paste_left + width] = patch_pixels[:, :, None]
    mask = np.zeros((size, size), dtype=bool)
    mask[paste_top : paste_top + height, paste_left : paste_left + width] = True
    return defective, mask


_DEFECT_PAINTERS: dict[str, Callable[[_Canvas, np.random.Generator], tuple[np.ndarray, np.ndarray]]] = {
    "scratch": _paint_scratch,
    "stain": _paint_stain,
    "hole": _paint_hole,
    "color_spot": _paint_color_spot,
    "cut_paste": _paint_cut_paste,
}


def _random_blob(rng: np.random.Generator, size: int, mean_radius: float, irregularity: float) -> np.ndarray:
    """Vertices of an organic, slightly elongated closed outline that lies fully inside the image."""
    angles = np.linspace(0.0, 2.0 * np.pi, 64, endpoint=False)
    radius = np.ones_like(angles)
    for harmonic in (2, 3, 5):  # a few low harmonics bend a circle into a natural-looking outline
        phase = rng.uniform(0.0, 2.0 * np.pi)
        radius += irregularity * rng.uniform(0.4, 1.0) / harmonic * 2.0 * np.cos(harmonic * angles + phase)
    stretch = rng.uniform(0.75, 1.33)
    offsets = mean_radius * np.stack([stretch * radius * np.cos(angles), radius * np.sin(angles) / stretch], axis=1)
    turn = rng.uniform(0.0, np.pi)
    rotation = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    offsets = offsets @ rotation.T
    # Place the centre so that the whole outline stays inside, with a one-pixel border.
    lowest_centre = 1.0 - offsets.min(axis=0)
    highest_centre = np.maximum(size - 2.0 - offsets.max(axis=0), lowest_centre)
    return offsets + rng.uniform(lowest_centre, highest_centre)


def _polygon_alpha(size: int, outline: np.ndarray, blur_radius: float) -> np.ndarray:
    """Coverage in [0, 1] of a filled polygon, with edges softened by a Gaussian blur."""
    shape = Image.new("L", (size, size), 0)
    ImageDraw.Draw(shape).polygon([tuple(point) for point in outline], fill=255)
    return _blurred(shape, blur_radius)


def _blurred(alpha_image: Image.Image, radius: float) -> np.ndarray:
    """Gaussian-blur an 8-bit alpha image and return it as float32 in [0, 1]."""
    return np.asarray(alpha_image.filter(ImageFilter.GaussianBlur(radius)), dtype=np.float32) / 255.0


def _blend(image: np.ndarray, overlay: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Per-pixel mix of ``image`` towards ``overlay`` by ``alpha`` (H, W)."""
    weight = alpha[:, :, None]
    return image * (1.0 - weight) + overlay * weight


def _as_float(image: Image.Image) -> np.ndarray:
    """A PIL image as a float32 array."""
    return np.asarray(image, dtype=np.float32)

# Copyright (C) 2026 anomalib-minimaxad developers
# SPDX-License-Identifier: Apache-2.0
"""``MVTecLayout``: any dataset laid out like MVTec AD, whatever its image format (GoodsAD, MAD-Sim, ...).

anomalib's ``MVTecAD`` reads only ``.png`` files, pairs masks with images by sort order, and downloads MVTec AD
when a category folder is missing. Several datasets of the paper use the MVTec AD layout with other conventions:

* **GoodsAD** (``jianzhang96/GoodsAD``): ``<category>/train/good/*.jpg``, ``test/<good|defect>/*.jpg``,
  ``ground_truth/<defect>/<stem>.png`` (JPEG images, PNG masks without ``_mask`` suffix); categories
  ``cigarette_box``, ``drink_bottle``, ``drink_can``, ``food_bottle``, ``food_box``, ``food_package``.
* **MAD-Sim** (PAD benchmark): ``<NNToy>/train/good/*.png``, ``test/<Burrs|Missing|Stains|good>/*.png``,
  ``ground_truth/<defect>/<stem>_mask.png`` and a ``transforms.json`` (ignored); 20 categories ``01Gorilla``
  to ``20Sheep``.

:class:`MVTecLayout` reads that layout with any common image extension, matches each defective image with the
mask of the same stem (``<stem>.*`` or ``<stem>_mask.*``), skips hidden files (``._*`` copies left by macOS
archives), never downloads, and raises :class:`~anomalib_minimaxad.data.file_checks.DatasetLayoutError` naming
the folder or file that breaks the layout, and :class:`~anomalib_minimaxad.data.file_checks.ImageFileError`
naming unusable files (truncated, 16-bit, masks of another size than their image), both before training.
Without a ``ground_truth`` folder the category is image-level (classification) only::

    <root>/<category>/
    ├── train/good/*.{png,jpg,...}
    ├── test/good/*  and  test/<defect>/*
    └── ground_truth/<defect>/<stem>[_mask].{png,...}

Example:
    >>> from anomalib_minimaxad.data import MVTecLayout
    >>> datamodule = MVTecLayout(root="./datasets/GoodsAD", category="drink_can")
    >>> datamodule.prepare_data()  # checks the layout; DatasetLayoutError explains what is wrong
"""

from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd
from anomalib import TaskType
from anomalib.data import AnomalibDataModule
from anomalib.data.datasets.base.image import AnomalibDataset
from anomalib.data.utils import LabelName, Split, TestSplitMode, ValSplitMode
from torchvision.transforms.v2 import Transform

from .file_checks import DatasetLayoutError, check_image_files

__all__ = [
    "IMAGE_EXTENSIONS",
    "DatasetLayoutError",
    "MVTecLayout",
    "MVTecLayoutDataset",
    "list_images",
    "make_mvtec_layout_samples",
]

#: File extensions read as images (any case).
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
_NORMAL = "good"
_MASK_SUFFIX = "_mask"
_MAX_LISTED = 5


def list_images(folder: Path, extensions: Iterable[str] = IMAGE_EXTENSIONS, recursive: bool = False) -> list[Path]:
    """Image files of ``folder`` (sorted), skipping hidden files such as macOS ``._*`` copies."""
    suffixes = {e.lower() for e in extensions}
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(
        path
        for path in candidates
        if path.is_file()
        and path.suffix.lower() in suffixes
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )


def index_masks(folder: Path, extensions: Iterable[str] = IMAGE_EXTENSIONS) -> dict[str, Path]:
    """Masks of ``folder`` by the stem of the image they belong to (``000_mask.png`` -> ``000``)."""
    masks: dict[str, Path] = {}
    if folder.is_dir():
        for path in list_images(folder, extensions):
            stem = path.stem
            masks.setdefault(stem.removesuffix(_MASK_SUFFIX) if stem.endswith(_MASK_SUFFIX) else stem, path)
    return masks


def samples_frame(rows: list[dict[str, object]], task: TaskType) -> pd.DataFrame:
    """Build the anomalib samples table from rows of ``path, split, label, image_path, mask_path, label_index``."""
    columns = ["path", "split", "label", "image_path", "mask_path", "label_index"]
    extra = [key for key in (rows[0] if rows else {}) if key not in columns]
    samples = pd.DataFrame(rows, columns=columns + extra)
    samples["label_index"] = samples["label_index"].astype(int)
    samples["mask_path"] = samples["mask_path"].fillna("").astype(str)
    samples = samples.sort_values(by="image_path", ignore_index=True)
    samples.attrs["task"] = task
    return samples


def make_mvtec_layout_samples(
    category_root: str | Path,
    split: Split | str | None = None,
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
) -> pd.DataFrame:
    """Samples table of one category in the MVTec AD layout (see the module docstring).

    Raises:
        DatasetLayoutError: A required folder is missing or empty, or a defective image has no mask.
    """
    root = Path(category_root)
    split_value = split.value if isinstance(split, Split) else split
    train_dir, test_dir, mask_root = root / "train" / _NORMAL, root / "test", root / "ground_truth"
    _require_dir(root, "category folder", root)
    rows: list[dict[str, object]] = []
    if split_value in {None, Split.TRAIN.value}:
        _require_dir(train_dir, "training images folder", root)
        images = list_images(train_dir, extensions)
        if not images:
            msg = f"No images ({', '.join(extensions)}) in the training folder '{train_dir}'."
            raise DatasetLayoutError(msg)
        rows += [_row(root, Split.TRAIN, _NORMAL, image, "") for image in images]
    has_masks = mask_root.is_dir()
    if split_value in {None, Split.TEST.value}:
        _require_dir(test_dir, "test folder", root)
        missing: list[str] = []
        for defect_dir in sorted(p for p in test_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            masks = index_masks(mask_root / defect_dir.name, extensions) if defect_dir.name != _NORMAL else {}
            for image in list_images(defect_dir, extensions):
                mask = masks.get(image.stem)
                if defect_dir.name != _NORMAL and has_masks and mask is None:
                    missing.append(str(mask_root / defect_dir.name / f"{image.stem}[{_MASK_SUFFIX}].*"))
                rows.append(_row(root, Split.TEST, defect_dir.name, image, str(mask or "")))
        if missing:
            listed = ", ".join(missing[:_MAX_LISTED]) + (" ..." if len(missing) > _MAX_LISTED else "")
            msg = f"{len(missing)} defective test image(s) of '{root}' have no mask: {listed}"
            raise DatasetLayoutError(msg)
        if not any(row["split"] == Split.TEST.value for row in rows):
            msg = f"No test images in '{test_dir}' (expected test/good/ and test/<defect>/ folders)."
            raise DatasetLayoutError(msg)
    return samples_frame(rows, TaskType.SEGMENTATION if has_masks else TaskType.CLASSIFICATION)


def _row(root: Path, split: Split, label: str, image: Path, mask: str) -> dict[str, object]:
    return {
        "path": str(root),
        "split": split.value,
        "label": label,
        "image_path": str(image),
        "mask_path": mask,
        "label_index": LabelName.NORMAL if label == _NORMAL else LabelName.ABNORMAL,
    }


def _require_dir(path: Path, what: str, category_root: Path) -> None:
    if not path.is_dir():
        msg = (
            f"The {what} '{path}' does not exist. Expected the MVTec AD layout in '{category_root}': "
            "train/good/<images>, test/good/ and test/<defect>/<images>, ground_truth/<defect>/<stem>[_mask].png."
        )
        raise DatasetLayoutError(msg)


class MVTecLayoutDataset(AnomalibDataset):
    """One split of one category in the MVTec AD layout, with any image format.

    Args:
        root (str | Path): Dataset root holding the category folders.
        category (str): Category folder name.
        split (Split | str | None): ``"train"``, ``"test"`` or ``None`` for both. Defaults to ``None``.
        extensions (Sequence[str]): Image file extensions. Defaults to :data:`IMAGE_EXTENSIONS`.
        augmentations (Transform | None): Augmentations applied to the images. Defaults to ``None``.

    Example:
        >>> dataset = MVTecLayoutDataset(root="./datasets/GoodsAD", category="drink_can", split="test")
    """

    def __init__(
        self,
        root: str | Path,
        category: str,
        split: Split | str | None = None,
        extensions: Sequence[str] = IMAGE_EXTENSIONS,
        augmentations: Transform | None = None,
    ) -> None:
        super().__init__(augmentations=augmentations)
        self.root = Path(root)
        self.category = category
        self.split = split
        self.samples = make_mvtec_layout_samples(self.root / category, split=split, extensions=extensions)


class MVTecLayout(AnomalibDataModule):
    """Datamodule of one category of any dataset in the MVTec AD layout (GoodsAD, MAD-Sim, ...).

    Args:
        root (str | Path): Dataset root holding one folder per category. Defaults to ``"./datasets/GoodsAD"``.
        category (str): Category folder. Defaults to ``"drink_can"``.
        extensions (Sequence[str]): Image file extensions (any case). Defaults to :data:`IMAGE_EXTENSIONS`.
        train_batch_size (int): Training batch size. Defaults to ``16``.
        eval_batch_size (int): Validation and test batch size. Defaults to ``16``.
        num_workers (int): Data loader workers. Defaults to ``8``.
        train_augmentations (Transform | None): Augmentations of the training images. Defaults to ``None``.
        val_augmentations (Transform | None): Augmentations of the validation images. Defaults to ``None``.
        test_augmentations (Transform | None): Augmentations of the test images. Defaults to ``None``.
        augmentations (Transform | None): Augmentations of every split without its own. Defaults to ``None``.
        test_split_mode (TestSplitMode | str): How the test set is made. Defaults to ``TestSplitMode.FROM_DIR``.
        test_split_ratio (float): Fraction of normal training images moved to the test set when it has no normal
            images. Defaults to ``0.2``.
        val_split_mode (ValSplitMode | str): How the validation set is made. Defaults to ``ValSplitMode.SAME_AS_TEST``.
        val_split_ratio (float): Fraction used by the validation split. Defaults to ``0.5``.
        seed (int | None): Seed of the random splits. Defaults to ``None``.

    Example:
        >>> datamodule = MVTecLayout(root="./datasets/MAD-Sim", category="01Gorilla", num_workers=0)
        >>> datamodule.setup()  # doctest: +SKIP
    """

    def __init__(
        self,
        root: str | Path = "./datasets/GoodsAD",
        category: str = "drink_can",
        extensions: Sequence[str] = IMAGE_EXTENSIONS,
        train_batch_size: int = 16,
        eval_batch_size: int = 16,
        num_workers: int = 8,
        train_augmentations: Transform | None = None,
        val_augmentations: Transform | None = None,
        test_augmentations: Transform | None = None,
        augmentations: Transform | None = None,
        test_split_mode: TestSplitMode | str = TestSplitMode.FROM_DIR,
        test_split_ratio: float = 0.2,
        val_split_mode: ValSplitMode | str = ValSplitMode.SAME_AS_TEST,
        val_split_ratio: float = 0.5,
        seed: int | None = None,
    ) -> None:
        super().__init__(
            train_batch_size=train_batch_size,
            eval_batch_size=eval_batch_size,
            num_workers=num_workers,
            train_augmentations=train_augmentations,
            val_augmentations=val_augmentations,
            test_augmentations=test_augmentations,
            augmentations=augmentations,
            test_split_mode=test_split_mode,
            test_split_ratio=test_split_ratio,
            val_split_mode=val_split_mode,
            val_split_ratio=val_split_ratio,
            seed=seed,
        )
        self.root = Path(root)
        self.category = category
        self.extensions = tuple(extensions)

    def prepare_data(self) -> None:
        """Check the layout (nothing is downloaded).

        Raises:
            DatasetLayoutError: The category folder is missing (the message lists the categories found) or
                does not have the MVTec AD layout.
        """
        folder = self.root / self.category
        if not folder.is_dir():
            found = sorted(p.name for p in self.root.iterdir() if (p / "train").is_dir()) if self.root.is_dir() else []
            msg = f"Category {self.category!r} not found: '{folder}' does not exist. " + (
                f"Categories under '{self.root}': {', '.join(found)}." if found else f"'{self.root}' holds none."
            )
            raise DatasetLayoutError(msg)
        make_mvtec_layout_samples(folder, split=None, extensions=self.extensions)

    def _setup(self, _stage: str | None = None) -> None:
        """Build the training and test sets of the category; check their image files."""
        self.train_data = MVTecLayoutDataset(self.root, self.category, Split.TRAIN, self.extensions)
        self.test_data = MVTecLayoutDataset(self.root, self.category, Split.TEST, self.extensions)
        for split, dataset in (("training", self.train_data), ("test", self.test_data)):
            check_image_files(dataset.samples, f"MVTecLayout category {self.category!r} ({split} set)")

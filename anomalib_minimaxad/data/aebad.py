# Copyright (C) 2026 anomalib-minimaxad developers
# SPDX-License-Identifier: Apache-2.0
"""``AeBADS``: the single-blade set of the Aero-engine Blade Anomaly Detection dataset (AeBAD-S).

AeBAD (``zhangzilongc/MMR``, "Industrial Anomaly Detection with Domain Shift", Zhang et al. 2023) trains on one
set of normal blade images and tests under four conditions, reported separately and averaged: ``same`` (no
domain shift), ``background``, ``illumination`` and ``view``. Its layout is not MVTec AD's, the test images sit
one level deeper::

    AeBAD/AeBAD_S/
    ├── train/good/<sub-folder>/*.png             # every sub-folder is used for training
    ├── test/<good|ablation|breakdown|fracture|groove>/<same|background|illumination|view>/*.png
    └── ground_truth/<defect>/<domain>/<same file name>.png

:class:`AeBADS` trains on all of ``train/good`` and tests on the union of the chosen domains; the domains are its
categories (:class:`~anomalib_minimaxad.data.per_category.MultiCategoryDataModule`), so the per-category callback
reports each domain and their mean, as the paper's AeBAD-S table does. Hidden files (``._*`` copies left by macOS
archives) are skipped; a wrong layout raises :class:`~anomalib_minimaxad.data.file_checks.DatasetLayoutError`,
an unusable image file :class:`~anomalib_minimaxad.data.file_checks.ImageFileError` (both before training).

Example:
    >>> from anomalib_minimaxad.data import AeBADS
    >>> datamodule = AeBADS(root="./datasets/AeBAD/AeBAD_S", num_workers=0)
    >>> datamodule.test_categories
    ['same', 'background', 'illumination', 'view']
"""

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from anomalib import TaskType
from anomalib.data.datasets.base.image import AnomalibDataset
from anomalib.data.utils import LabelName, Split, TestSplitMode, ValSplitMode
from torchvision.transforms.v2 import Transform

from .file_checks import DatasetLayoutError, check_image_files
from .mvtec_layout import IMAGE_EXTENSIONS, index_masks, list_images, samples_frame
from .per_category import MultiCategoryDataModule

__all__ = ["AEBAD_DOMAINS", "AeBADS", "AeBADSDataset", "make_aebad_s_samples"]

#: Test domains in the order of the paper's table.
AEBAD_DOMAINS: tuple[str, ...] = ("same", "background", "illumination", "view")
_NORMAL = "good"
_SUBSET = "AeBAD_S"
_LAYOUT = "train/good/<sub-folder>/*.png, test/<good|defect>/<domain>/*.png and ground_truth/<defect>/<domain>/*.png"


def resolve_aebad_s_root(root: str | Path) -> Path:
    """``root`` itself, or its ``AeBAD_S`` sub-folder when given the ``AeBAD`` folder."""
    root = Path(root)
    return root / _SUBSET if not (root / "train").is_dir() and (root / _SUBSET / "train").is_dir() else root


def make_aebad_s_samples(
    root: str | Path,
    split: Split | str | None = None,
    domains: Sequence[str] = AEBAD_DOMAINS,
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
) -> pd.DataFrame:
    """Samples table of AeBAD-S with a ``category`` column (the domain of test images; ``train`` for training).

    Raises:
        DatasetLayoutError: A folder is missing, a domain has no images, or a defective image has no mask.
    """
    root = resolve_aebad_s_root(root)
    split_value = split.value if isinstance(split, Split) else split
    rows: list[dict[str, object]] = []
    if split_value in {None, Split.TRAIN.value}:
        train_dir = root / "train" / _NORMAL
        _require(train_dir, root)
        images = list_images(train_dir, extensions, recursive=True)
        if not images:
            msg = f"AeBAD-S: no training images under '{train_dir}' (expected {_LAYOUT})."
            raise DatasetLayoutError(msg)
        rows += [_row(root, Split.TRAIN, _NORMAL, "train", image, "") for image in images]
    if split_value in {None, Split.TEST.value}:
        _require(root / "test", root)
        missing: list[str] = []
        for domain in domains:
            rows += _domain_rows(root, domain, extensions, missing)
        if missing:
            msg = f"AeBAD-S: {len(missing)} defective test image(s) have no mask, e.g. {', '.join(missing[:3])}."
            raise DatasetLayoutError(msg)
    return samples_frame(rows, TaskType.SEGMENTATION)


def _domain_rows(root: Path, domain: str, extensions: Sequence[str], missing: list[str]) -> list[dict[str, object]]:
    """Test rows of one domain; defective images without a mask are added to ``missing``."""
    test_dir = root / "test"
    rows = []
    for kind in sorted(p.name for p in test_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        folder = test_dir / kind / domain
        if not folder.is_dir():
            continue
        masks = index_masks(root / "ground_truth" / kind / domain, extensions) if kind != _NORMAL else {}
        for image in list_images(folder, extensions):
            mask = masks.get(image.stem)
            if kind != _NORMAL and mask is None:
                missing.append(str(root / "ground_truth" / kind / domain / image.name))
            rows.append(_row(root, Split.TEST, kind, domain, image, str(mask or "")))
    if not rows:
        msg = f"AeBAD-S: domain {domain!r} has no test images: no '{test_dir}/<kind>/{domain}/' folder."
        raise DatasetLayoutError(msg)
    return rows


def _row(root: Path, split: Split, kind: str, domain: str, image: Path, mask: str) -> dict[str, object]:
    return {
        "path": str(root),
        "split": split.value,
        "label": kind,
        "image_path": str(image),
        "mask_path": mask,
        "label_index": LabelName.NORMAL if kind == _NORMAL else LabelName.ABNORMAL,
        "category": domain,
    }


def _require(folder: Path, root: Path) -> None:
    if not folder.is_dir():
        msg = f"AeBAD-S: '{folder}' does not exist. Expected in '{root}': {_LAYOUT}."
        raise DatasetLayoutError(msg)


class AeBADSDataset(AnomalibDataset):
    """One split of AeBAD-S (see :func:`make_aebad_s_samples`).

    Args:
        root (str | Path): The ``AeBAD_S`` folder (or the ``AeBAD`` folder holding it).
        split (Split | str | None): ``"train"``, ``"test"`` or ``None`` for both. Defaults to ``None``.
        domains (Sequence[str]): Test domains to include. Defaults to :data:`AEBAD_DOMAINS`.
        augmentations (Transform | None): Augmentations applied to the images. Defaults to ``None``.

    Example:
        >>> dataset = AeBADSDataset("./datasets/AeBAD/AeBAD_S", split="test", domains=["view"])
    """

    def __init__(
        self,
        root: str | Path,
        split: Split | str | None = None,
        domains: Sequence[str] = AEBAD_DOMAINS,
        augmentations: Transform | None = None,
    ) -> None:
        super().__init__(augmentations=augmentations)
        self.root = resolve_aebad_s_root(root)
        self.category = _SUBSET
        self.split = split
        self.samples = make_aebad_s_samples(self.root, split=split, domains=domains)


class AeBADS(MultiCategoryDataModule):
    """AeBAD-S datamodule: train on ``train/good``, test on the chosen domains, reported per domain.

    Args:
        root (str | Path): The ``AeBAD_S`` folder (or the ``AeBAD`` folder holding it). Defaults to
            ``"./datasets/AeBAD/AeBAD_S"``.
        domains (Sequence[str] | str): Test domains (``same``, ``background``, ``illumination``, ``view``), ``"all"`` or
            a
            comma-separated string. Defaults to ``"all"``.
        train_batch_size (int): Training batch size. Defaults to ``16``.
        eval_batch_size (int): Validation and test batch size. Defaults to ``16``.
        num_workers (int): Data loader workers. Defaults to ``8``.
        train_augmentations (Transform | None): Augmentations of the training images (the paper: random resized crop
            with scale
            0.7-1 and horizontal flip). Defaults to ``None``.
        val_augmentations (Transform | None): Augmentations of the validation images. Defaults to ``None``.
        test_augmentations (Transform | None): Augmentations of the test images. Defaults to ``None``.
        augmentations (Transform | None): Augmentations of every split without its own. Defaults to ``None``.
        val_split_mode (ValSplitMode | str): How the validation set is made. Defaults to ``ValSplitMode.SAME_AS_TEST``.
        val_split_ratio (float): Fraction used by the validation split. Defaults to ``0.5``.
        seed (int | None): Seed of the random splits. Defaults to ``None``.

    Example:
        >>> datamodule = AeBADS(root="./datasets/AeBAD", domains="same,view", num_workers=0)
        >>> datamodule.prepare_data()  # doctest: +SKIP
    """

    def __init__(
        self,
        root: str | Path = "./datasets/AeBAD/AeBAD_S",
        domains: Sequence[str] | str = "all",
        train_batch_size: int = 16,
        eval_batch_size: int = 16,
        num_workers: int = 8,
        train_augmentations: Transform | None = None,
        val_augmentations: Transform | None = None,
        test_augmentations: Transform | None = None,
        augmentations: Transform | None = None,
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
            test_split_mode=TestSplitMode.FROM_DIR,
            val_split_mode=val_split_mode,
            val_split_ratio=val_split_ratio,
            seed=seed,
        )
        self.root = resolve_aebad_s_root(root)
        self.category = _SUBSET
        self.domains = _parse_domains(domains)

    @property
    def name(self) -> str:
        """``AeBAD``: results go to ``<model>/AeBAD/AeBAD_S``."""
        return "AeBAD"

    @property
    def test_categories(self) -> list[str]:
        """The test domains, in table order."""
        return list(self.domains)

    def prepare_data(self) -> None:
        """Check the layout (AeBAD is not downloadable automatically).

        Raises:
            DatasetLayoutError: What is missing where.
        """
        make_aebad_s_samples(self.root, split=None, domains=self.domains)

    def _setup(self, _stage: str | None = None) -> None:
        """Build the training set and the test set of the chosen domains; check their image files."""
        self.train_data = AeBADSDataset(self.root, Split.TRAIN, self.domains)
        self.test_data = AeBADSDataset(self.root, Split.TEST, self.domains)
        for split, dataset in (("training", self.train_data), ("test", self.test_data)):
            check_image_files(dataset.samples, f"AeBAD-S ({split} set, '{self.root}')")


def _parse_domains(domains: Sequence[str] | str) -> list[str]:
    if isinstance(domains, str):
        domains = list(AEBAD_DOMAINS) if domains.strip().lower() == "all" else domains.split(",")
    names = [str(d).strip() for d in domains]
    unknown = [d for d in names if d not in AEBAD_DOMAINS]
    if unknown or not names or len(set(names)) != len(names):
        msg = f"AeBADS: domains must be distinct names among {', '.join(AEBAD_DOMAINS)} (or 'all'), got {domains!r}."
        raise ValueError(msg)
    return names

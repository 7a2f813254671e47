# Copyright (C) 2026 anomalib-minimaxad developers
# SPDX-License-Identifier: Apache-2.0
r"""``Unified``: one model for several categories (the paper's unified / multi-class setting).

:class:`Unified` wraps an anomalib image datamodule that takes a ``category`` (``MVTecAD``, ``Visa``, ``MPDD``,
``BTech``, our ``MVTec`` alias and ``MVTecLayout``, ...) or ``Folder``, builds one instance per category, and

* trains on the union of the categories' normal training images (one shuffled loader),
* tests (and validates) on the union of their test sets, each category's test set split by its own datamodule
  (its public ``setup``), as it would be on its own,
* keeps each sample's category in a ``category`` column of the samples table, and maps image paths to
  categories (:meth:`Unified.category_of`): batches carry no category field, but they carry the image path,
* attaches :class:`~anomalib_minimaxad.data.per_category.PerCategoryMetrics`, which reports every test metric per
  category and their mean (the paper's Table 3) in the logs and in
  ``<trainer.default_root_dir>/per_category_results.{csv,json}``.

Unknown categories and missing folders fail in ``__init__`` (when ``root`` exists) or in ``prepare_data`` /
``setup`` (after a wrapped datamodule had the chance to download), before any training, naming the category
and the folder that was expected. So do a failed download (whatever it created is removed; ``MVTecAD`` is
wrapped as our :class:`~anomalib_minimaxad.data.mvtec.MVTec`, whose message says where to put the dataset), a
category without training images, and unusable image files
(:class:`~anomalib_minimaxad.data.file_checks.ImageFileError`).

From the command line::

    anomalib train --model MiniMaxAD --data anomalib_minimaxad.data.Unified \\
        --data.dataset MVTecAD --data.root ./datasets/MVTecAD --data.categories all

``Folder`` takes its folder arguments through ``dataset_args``, relative to ``<root>/<category>`` and with glob
patterns allowed (a pattern for ``abnormal_dir`` leaves out the normal folders)::

    --data.dataset Folder --data.root ./my_data --data.categories "[part_a, part_b]"
    --data.dataset_args '{normal_dir: train/good, normal_test_dir: test/good,
                          abnormal_dir: "test/*", mask_dir: "ground_truth/*"}'

Example:
    >>> from anomalib_minimaxad.data import Unified, generate_demo_dataset
    >>> root = generate_demo_dataset("./datasets/minimaxad_demo", image_size=64, num_train=8)
    >>> datamodule = Unified(dataset="MVTecAD", root=root, categories="all", num_workers=0)
    >>> datamodule.test_categories
    ['brick', 'grass', 'gravel']
"""

import copy
import importlib
import inspect
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from anomalib import TaskType
from anomalib.data import AnomalibDataModule, Folder, MVTecAD, Visa
from anomalib.data.datasets.base.image import AnomalibDataset
from anomalib.data.utils import TestSplitMode, ValSplitMode
from torchvision.transforms.v2 import Transform

from .file_checks import ImageFileError, check_image_files
from .mvtec import MVTec, removed_on_failure
from .mvtec_layout import MVTecLayout
from .per_category import MultiCategoryDataModule

__all__ = ["UNIFIED_CATEGORY", "Unified", "UnifiedDataError", "resolve_datamodule_class"]

logger = logging.getLogger(__name__)

#: Value of ``Unified.category``: results go to ``results/<model>/<root folder name>/unified/``.
UNIFIED_CATEGORY = "unified"
#: ``Folder`` arguments that name folders (relative to ``<root>/<category>``, glob patterns allowed).
_FOLDER_DIR_ARGS = ("normal_dir", "abnormal_dir", "normal_test_dir", "mask_dir")
_GLOB_CHARS = frozenset("*?[")
#: Wrapped datamodules that check their image files themselves in ``setup``.
_CHECKING_OWN_FILES = (MVTec, MVTecLayout)


class UnifiedDataError(FileNotFoundError):
    """A category of a :class:`Unified` datamodule is unknown or its folder is missing or malformed."""


def resolve_datamodule_class(dataset: str | type[AnomalibDataModule]) -> type[AnomalibDataModule]:
    """Find a datamodule class by name (``MVTecAD``, ``Visa``, ``Folder``, ``MVTec``, ...) or dotted path.

    Names are looked up among this package's datamodules first, then in ``anomalib.data``. ``MVTecAD`` gives our
    :class:`~anomalib_minimaxad.data.mvtec.MVTec` (the same datamodule, with clear errors).

    Example:
        >>> resolve_datamodule_class("Visa").__name__
        'Visa'
    """
    if isinstance(dataset, type):
        cls: Any = dataset
    elif "." in dataset:
        module_name, _, attribute = dataset.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            msg = f"Unified: cannot import the datamodule {dataset!r}: {exc}"
            raise ValueError(msg) from exc
    else:
        import anomalib.data

        from anomalib_minimaxad import data as own

        cls = None
        for module in (own, anomalib.data):
            try:
                cls = getattr(module, dataset)
                break
            except AttributeError:
                continue
        if cls is None:
            names = sorted(
                name
                for name in dir(anomalib.data)
                if isinstance(getattr(anomalib.data, name, None), type)
                and issubclass(getattr(anomalib.data, name), AnomalibDataModule)
                and name != "AnomalibDataModule"
            )
            msg = f"Unified: unknown dataset {dataset!r}; use one of {', '.join(names)}, or a dotted class path."
            raise ValueError(msg)
    if not (isinstance(cls, type) and issubclass(cls, AnomalibDataModule)):
        msg = f"Unified: {dataset!r} is not an anomalib datamodule class."
        raise TypeError(msg)
    if issubclass(cls, Unified) or not (issubclass(cls, Folder) or "category" in inspect.signature(cls).parameters):
        msg = f"Unified: {cls.__name__} has no categories to unify (it takes no 'category' argument)."
        raise TypeError(msg)
    return MVTec if cls is MVTecAD else cls


class Unified(MultiCategoryDataModule):
    """Union of several categories of an anomalib image datamodule: train once, evaluate per category.

    Args:
        dataset (str): Wrapped datamodule: a class name of this package or ``anomalib.data`` (``MVTecAD``, ``MVTec``,
            ``Visa``, ``MPDD``, ``BTech``, ``MVTecLayout``, ``Folder``, ...) or a dotted class path.
            Defaults to ``"MVTecAD"``.
        root (str | Path | None): Dataset root holding one folder per category. Defaults to the wrapped datamodule's
            default root
            (required for ``Folder``).
        categories (Sequence[str] | str): ``"all"`` (every category folder found under ``root``, or the dataset's
            official list when
            ``root`` does not exist yet and the dataset can download), a list of names, or a comma-separated
            string. Defaults to ``"all"``.
        dataset_args (dict[str, Any] | None): Extra arguments of the wrapped datamodule, the same for every category
            (for ``Folder``:
            ``normal_dir``, ``abnormal_dir``, ``normal_test_dir``, ``mask_dir``, relative to
            ``<root>/<category>``, glob patterns allowed; ``extensions``). Defaults to ``None``.
        train_batch_size (int): Training batch size. Defaults to ``16`` (the paper's).
        eval_batch_size (int): Validation and test batch size. Defaults to ``16``.
        num_workers (int): Data loader workers. Defaults to ``8``.
        train_augmentations (Transform | None): Augmentations of the training images. Defaults to ``None``.
        val_augmentations (Transform | None): Augmentations of the validation images. Defaults to ``None``.
        test_augmentations (Transform | None): Augmentations of the test images. Defaults to ``None``.
        augmentations (Transform | None): Augmentations of every split without its own. Defaults to ``None``.
        test_split_mode (TestSplitMode | str): How each category gets its test set (its datamodule applies it; the union
            is not split
            again). Defaults to ``TestSplitMode.FROM_DIR``.
        test_split_ratio (float): Fraction of normal training images moved to the test set when a category has no
            normal test images. Defaults to ``0.2``.
        val_split_mode (ValSplitMode | str): How the validation set is made from the union. Defaults to
            ``ValSplitMode.SAME_AS_TEST``.
        val_split_ratio (float): Fraction used by the validation split. Defaults to ``0.5``.
        seed (int | None): Seed of the random splits. Defaults to ``None``.

    Raises:
        UnifiedDataError: A category is unknown or its folder is missing (when ``root`` exists); later, in
            ``prepare_data`` or ``setup``: a failed download, a category without training images.
        ImageFileError: In ``setup``: unusable image or mask files, each named.
        ValueError: Unknown dataset name, empty or duplicated categories.

    Example:
        >>> datamodule = Unified(dataset="Visa", root="./datasets/visa", categories=["candle", "pcb1"])
        >>> datamodule.setup()
        >>> datamodule.category_of(datamodule.test_data.samples.image_path[:1])
        ['candle']
    """

    def __init__(
        self,
        dataset: str = "MVTecAD",
        root: str | Path | None = None,
        categories: Sequence[str] | str = "all",
        dataset_args: dict[str, Any] | None = None,
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
        # Each category splits its own test set; anomalib's split of the union then only reorders it (FROM_DIR),
        # or, for NONE, leaves it alone. SYNTHETIC must not make anomalies a second time.
        self.category_test_split_mode = TestSplitMode(test_split_mode)
        union_split_mode = TestSplitMode.NONE if test_split_mode == TestSplitMode.NONE else TestSplitMode.FROM_DIR
        super().__init__(
            train_batch_size=train_batch_size,
            eval_batch_size=eval_batch_size,
            num_workers=num_workers,
            train_augmentations=train_augmentations,
            val_augmentations=val_augmentations,
            test_augmentations=test_augmentations,
            augmentations=augmentations,
            test_split_mode=union_split_mode,
            test_split_ratio=test_split_ratio,
            val_split_mode=val_split_mode,
            val_split_ratio=val_split_ratio,
            seed=seed,
        )
        self.dataset_class = resolve_datamodule_class(dataset)
        self.dataset_args = dict(dataset_args or {})
        self._is_folder = issubclass(self.dataset_class, Folder)
        if self._is_folder and root is None:
            msg = "Unified: Folder needs a root (the folder holding one sub-folder per category)."
            raise ValueError(msg)
        if self._is_folder and "normal_dir" not in self.dataset_args:
            msg = "Unified: Folder needs dataset_args.normal_dir (e.g. 'train/good'), relative to <root>/<category>."
            raise ValueError(msg)
        self.root = Path(root) if root is not None else Path(self._instantiate("__root__", None).root)
        self.requested_categories = categories
        self.category = UNIFIED_CATEGORY
        self.categories: list[str] = self._resolve_categories(categories, final=False)
        if self.root.is_dir() and self.categories:
            self.validate()

    # ------------------------------------------------------------------------------------------------------------
    # Categories
    # ------------------------------------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """Name of the dataset folder (``MVTecAD``, ``visa``, ...): results go to ``<model>/<name>/unified``."""
        return self.root.resolve().name or self.dataset_class.__name__

    @property
    def test_categories(self) -> list[str]:
        """Categories in the order of the per-category results table."""
        return list(self.categories)

    def category_dir(self, category: str) -> Path:
        """The folder of ``category`` (for Visa the split ``visa_pytorch/<category>`` once it exists)."""
        candidates = self._category_dirs(category)
        return next((path for path in candidates if path.is_dir()), candidates[0])

    def validate(self) -> None:
        """Check that every category's folder (and, for Folder, its normal images folder) exists.

        Raises:
            UnifiedDataError: With the category, the expected folder and the categories found under ``root``.
        """
        if not self.categories:
            self.categories = self._resolve_categories(self.requested_categories, final=True)
        problems = []
        for category in self.categories:
            folder = self.category_dir(category)
            if not folder.is_dir():
                problems.append(f"category {category!r}: folder '{folder}' does not exist")
            elif self._is_folder:
                problems.extend(
                    f"category {category!r}: {name} '{path}' does not exist"
                    for name, path in self._folder_paths(category, folder, check=False)
                    if name == "normal_dir" and not path.is_dir()
                )
        if problems:
            found = self._discover_categories()
            msg = (
                f"Unified ({self.dataset_class.__name__}, root '{self.root}'): "
                + "; ".join(problems)
                + f". Categories found under the root: {', '.join(found) if found else 'none'}."
            )
            raise UnifiedDataError(msg)

    def _resolve_categories(self, categories: Sequence[str] | str, final: bool) -> list[str]:
        if isinstance(categories, str):
            if categories.strip().lower() == "all":
                return self._all_categories(final)
            categories = [part.strip() for part in categories.split(",")]
        names = [str(name).strip() for name in categories]
        if not names or any(not name for name in names):
            msg = f"Unified: categories must be 'all' or non-empty names, got {categories!r}."
            raise ValueError(msg)
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            msg = f"Unified: categories listed twice: {duplicates}."
            raise ValueError(msg)
        return names

    def _all_categories(self, final: bool) -> list[str]:
        found = self._discover_categories()
        if found:
            return found
        official = _official_categories(self.dataset_class)
        if not self.root.exists() and official and not final:
            return list(official)  # prepare_data may download them
        if not final and not self.root.exists():
            return []  # resolved after prepare_data
        msg = (
            f"Unified ({self.dataset_class.__name__}): no category folders found under '{self.root}' "
            "(a category folder holds the dataset's layout, e.g. train/good). Check --data.root."
        )
        raise UnifiedDataError(msg)

    def _discover_categories(self) -> list[str]:
        """Category folders under the root: sub-folders that look like a category of the wrapped dataset."""
        parents = [self.root / "visa_pytorch", self.root] if issubclass(self.dataset_class, Visa) else [self.root]
        official = set(_official_categories(self.dataset_class))
        for parent in parents:
            if not parent.is_dir():
                continue
            names = sorted(
                child.name
                for child in parent.iterdir()
                if child.is_dir() and not child.name.startswith(".") and self._looks_like_category(child, official)
            )
            if names:
                return names
        return []

    def _looks_like_category(self, folder: Path, official: set[str]) -> bool:
        if self._is_folder:
            normal = self.dataset_args["normal_dir"]
            patterns = [normal] if isinstance(normal, (str, Path)) else list(normal)
            return all(any(folder.glob(str(pattern))) for pattern in patterns)
        return (folder / "train").is_dir() or folder.name in official

    def _category_dirs(self, category: str) -> list[Path]:
        if issubclass(self.dataset_class, Visa):
            return [self.root / "visa_pytorch" / category, self.root / category]
        return [self.root / category]

    # ------------------------------------------------------------------------------------------------------------
    # Wrapped datamodules
    # ------------------------------------------------------------------------------------------------------------

    def _instantiate(self, category: str, root: Path | None) -> AnomalibDataModule:
        """The wrapped datamodule of one category (it only builds datasets; loaders are ours)."""
        common = {
            "test_split_mode": self.category_test_split_mode,
            "test_split_ratio": self.test_split_ratio,
            "seed": self.seed,
            "num_workers": 0,
        }
        if _accepts(self.dataset_class, "val_split_mode"):
            common["val_split_mode"] = ValSplitMode.NONE  # the validation set is made from the union
        if self._is_folder:
            folder = (root or self.root) / category
            args = {k: v for k, v in self.dataset_args.items() if k not in _FOLDER_DIR_ARGS}
            args.update(self._folder_args(category, folder))
            return self.dataset_class(name=category, root=folder, **common, **args)
        if root is not None:
            common["root"] = root  # else the wrapped datamodule's default root
        return self.dataset_class(category=category, **common, **self.dataset_args)

    def _folder_args(self, category: str, folder: Path) -> dict[str, Any]:
        """Folder's directory arguments for one category, glob patterns expanded (sorted)."""
        expanded: dict[str, list[Path]] = {}
        for name, path in self._folder_paths(category, folder, check=True):
            expanded.setdefault(name, []).append(path)
        normal = {*expanded.get("normal_dir", []), *expanded.get("normal_test_dir", [])}
        if "abnormal_dir" in expanded:  # "test/*" also matches test/good
            expanded["abnormal_dir"] = [path for path in expanded["abnormal_dir"] if path not in normal]
        return {name: paths if len(paths) != 1 else paths[0] for name, paths in expanded.items()}

    def _folder_paths(self, category: str, folder: Path, check: bool) -> list[tuple[str, Path]]:
        paths = []
        for name in _FOLDER_DIR_ARGS:
            value = self.dataset_args.get(name)
            if value is None:
                continue
            for pattern in [value] if isinstance(value, (str, Path)) else list(value):
                if _GLOB_CHARS & set(str(pattern)):
                    matches = sorted(path for path in folder.glob(str(pattern)) if path.is_dir())
                    if not matches and check:
                        msg = f"Unified: category {category!r}: {name} pattern '{folder / pattern}' matches no folder."
                        raise UnifiedDataError(msg)
                    paths.extend((name, match) for match in matches)
                else:
                    path = folder / pattern
                    if check and not path.is_dir():
                        msg = f"Unified: category {category!r}: {name} '{path}' does not exist."
                        raise UnifiedDataError(msg)
                    paths.append((name, path))
        return paths

    def prepare_data(self) -> None:
        """Let each category's datamodule prepare itself (download, split), then check all folders.

        Raises:
            UnifiedDataError: A download failed (what it created is removed) or a folder is still missing.
            MVTecNotFoundError: The MVTec AD download failed (``dataset="MVTecAD"`` or ``"MVTec"``).
        """
        if not self.categories:
            self.categories = self._resolve_categories(self.requested_categories, final=True)
        for category in self.categories:
            if not self.category_dir(category).is_dir() or issubclass(self.dataset_class, Visa):
                self._prepare_category(category)
        if not self.categories:  # "all" with a root that prepare_data created
            self.categories = self._resolve_categories(self.requested_categories, final=True)
        self.validate()

    def _prepare_category(self, category: str) -> None:
        try:
            with removed_on_failure(self.root):
                self._instantiate(category, self.root).prepare_data()
        except FileNotFoundError:
            raise  # names the folder already (our datamodules)
        except Exception as exc:
            msg = (
                f"Unified: category {category!r}: '{self.category_dir(category)}' is missing and "
                f"{self.dataset_class.__name__} could not download it ({type(exc).__name__}: {exc}). Put the "
                f"dataset there by hand (one folder per category under '{self.root}'), or point --data.root to "
                "an existing copy."
            )
            raise UnifiedDataError(msg) from exc

    def _setup(self, _stage: str | None = None) -> None:
        """Set up each category's datamodule (its datasets and its own test split) and concatenate the datasets."""
        self.validate()
        train_parts, test_parts = [], []
        for category in self.categories:
            datamodule = self._instantiate(category, self.root)
            try:
                datamodule.setup()
            except ImageFileError:
                raise  # names the category and each file already
            except (FileNotFoundError, RuntimeError, ValueError) as exc:
                msg = (
                    f"Unified: category {category!r} ({self.dataset_class.__name__}, "
                    f"folder '{self.category_dir(category)}') could not be read: {exc}"
                )
                raise UnifiedDataError(msg) from exc
            if not len(datamodule.train_data):
                folders = ", ".join(f"'{folder}'" for folder in self._training_folders(category))
                msg = f"Unified: category {category!r} has no training images (in {folders})."
                raise UnifiedDataError(msg)
            if not isinstance(datamodule, _CHECKING_OWN_FILES):
                for split, dataset in (("training", datamodule.train_data), ("test", datamodule.test_data)):
                    check_image_files(dataset.samples, f"Unified category {category!r} ({split} set)")
            train_parts.append((category, datamodule.train_data))
            test_parts.append((category, datamodule.test_data))
        self.train_data = _concatenate(train_parts)
        self.test_data = _concatenate(test_parts)
        counts = self.test_data.samples.category.value_counts()
        logger.info(
            "Unified %s: %d categories, %d training and %d test images (%s).",
            self.dataset_class.__name__,
            len(self.categories),
            len(self.train_data),
            len(self.test_data),
            ", ".join(f"{c}: {counts.get(c, 0)}" for c in self.categories),
        )

    def _training_folders(self, category: str) -> list[Path]:
        folder = self.category_dir(category)
        if self._is_folder:
            return [path for name, path in self._folder_paths(category, folder, check=False) if name == "normal_dir"]
        return [folder / "train" / "good"]

    def __repr__(self) -> str:
        """Dataset, root and categories."""
        return (
            f"Unified(dataset={self.dataset_class.__name__}, root='{self.root}', "
            f"categories={self.categories or self.requested_categories!r})"
        )


def _accepts(cls: type, argument: str) -> bool:
    """Whether ``cls(...)`` takes ``argument`` (by name, or through ``**kwargs``)."""
    parameters = inspect.signature(cls).parameters.values()
    return any(p.name == argument or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def _official_categories(cls: type[AnomalibDataModule]) -> tuple[str, ...]:
    """``CATEGORIES`` of the anomalib dataset module behind ``cls`` (``()`` when it has none)."""
    for klass in cls.__mro__:
        module = klass.__module__
        if module.startswith("anomalib.data.datamodules."):
            dataset_module = module.replace("anomalib.data.datamodules.", "anomalib.data.datasets.", 1)
            try:
                return tuple(getattr(importlib.import_module(dataset_module), "CATEGORIES", ()))
            except ImportError:
                return ()
    return ()


def _concatenate(parts: list[tuple[str, AnomalibDataset]]) -> AnomalibDataset:
    """One dataset holding every category's samples, with a ``category`` column."""
    frames, tasks = [], set()
    for category, dataset in parts:
        frames.append(dataset.samples.assign(category=category))
        tasks.add(TaskType(dataset.task))
    union = copy.deepcopy(parts[0][1])
    samples = pd.concat(frames, ignore_index=True)
    if len(tasks) > 1:
        logger.warning("Unified: some categories have no masks; evaluating image-level metrics only.")
    samples.attrs["task"] = TaskType.SEGMENTATION if tasks == {TaskType.SEGMENTATION} else TaskType.CLASSIFICATION
    union.samples = samples
    union.category = UNIFIED_CATEGORY
    return union

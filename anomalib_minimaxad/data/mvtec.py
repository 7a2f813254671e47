# Copyright (C) 2026 anomalib-minimaxad developers
# SPDX-License-Identifier: Apache-2.0
"""``MVTec``: anomalib's ``MVTecAD`` datamodule under its anomalib 1.x name.

anomalib 2.x renamed its ``MVTec`` datamodule to ``MVTecAD``, so ``anomalib train --data MVTec`` stopped
working. :class:`MVTec` is a thin subclass with the same constructor (hence the same ``--data.*`` options)
and the same automatic download. The differences are its errors, all raised before training: when the dataset
is missing and the download fails (e.g. offline), :class:`MVTecNotFoundError` tells which folder to fill by
hand, and whatever the failed download created is removed (:func:`removed_on_failure`) instead of leaving an
empty or partial folder behind; an empty ``train/good`` folder raises
:class:`~anomalib_minimaxad.data.file_checks.DatasetLayoutError` naming it (anomalib's would fail in the data
loader with ``num_samples=0``), and unusable image files
:class:`~anomalib_minimaxad.data.file_checks.ImageFileError` naming them.

It is published as ``anomalib.data.MVTec`` through the ``anomalib.data`` entry point of this package.

Example:
    >>> from anomalib_minimaxad.data import MVTec
    >>> datamodule = MVTec(root="./datasets/MVTecAD", category="bottle")
"""

import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from anomalib.data import MVTecAD
from anomalib.data.datamodules.image import mvtecad

from .file_checks import DatasetLayoutError, check_image_files

__all__ = ["MVTEC_AD_URL", "MVTec", "MVTecNotFoundError", "removed_on_failure"]

logger = logging.getLogger(__name__)

MVTEC_AD_URL = "https://www.mvtec.com/company/research/datasets/mvtec-ad"


class MVTecNotFoundError(FileNotFoundError):
    """The MVTec AD category folder is missing and could not be downloaded."""


class MVTec(MVTecAD):
    """MVTec AD datamodule: :class:`anomalib.data.MVTecAD` with a clear error when the download fails.

    Takes exactly the arguments of :class:`anomalib.data.MVTecAD` (``root``, ``category``,
    ``train_batch_size``, ``eval_batch_size``, ``num_workers``, the augmentations, the split modes and
    ratios, ``seed``) and behaves the same way.

    Example:
        >>> datamodule = MVTec(root="./datasets/MVTecAD", category="bottle")
        >>> datamodule.prepare_data()  # downloads if needed; MVTecNotFoundError if that fails
    """

    #: The datasets whose files :meth:`setup` checked (``setup`` runs once per stage, the check once per build).
    _checked_datasets: tuple[object, ...] = ()

    def prepare_data(self) -> None:
        """Download the dataset if ``root/category`` is missing, exactly like ``MVTecAD``.

        Raises:
            MVTecNotFoundError: The download or extraction failed. Everything the attempt created is
                removed first; files and folders that existed before are never touched.
        """
        target = self.root / self.category
        if target.is_dir():
            super().prepare_data()
            return
        try:
            with removed_on_failure(self.root):
                super().prepare_data()
        except Exception as exc:
            msg = (
                f"The MVTec AD dataset was not found in '{target}' and the automatic download failed "
                f"({type(exc).__name__}: {exc}). Download MVTec AD by hand from {MVTEC_AD_URL} "
                f"(archive: {mvtecad.DOWNLOAD_INFO.url}) and extract it into '{self.root}' so that "
                f"'{target}' has the MVTec AD layout: train/good/*.png, test/<defect>/*.png and "
                f"ground_truth/<defect>/*_mask.png. Or point --data.root / --data.category "
                "(root=..., category=...) to an existing copy."
            )
            raise MVTecNotFoundError(msg) from exc

    def setup(self, stage: str | None = None) -> None:
        """Set up the data like ``MVTecAD``, then check it once per build.

        Raises:
            DatasetLayoutError: ``train/good`` holds no image.
            ImageFileError: Naming every unusable image or mask file.
        """
        super().setup(stage)
        datasets = (self.train_data, self.test_data)
        if self._checked_datasets and all(a is b for a, b in zip(datasets, self._checked_datasets, strict=True)):
            return
        if not len(self.train_data):
            folder = self.root / self.category / "train" / "good"
            msg = f"MVTec category {self.category!r}: no training images in '{folder}' (expected *.png files)."
            raise DatasetLayoutError(msg)
        for split, dataset in (("training", self.train_data), ("test", self.test_data)):
            check_image_files(dataset.samples, f"MVTec category {self.category!r} ({split} set)")
        self._checked_datasets = datasets


@contextmanager
def removed_on_failure(root: Path) -> Iterator[None]:
    """Undo what the block created in ``root`` if it raises (a failed download), then re-raise.

    Only direct children of ``root`` absent before the block are removed, and only the folders up to ``root``
    that the block created and left empty, so pre-existing user data is never deleted.

    Example:
        >>> with removed_on_failure(Path("./datasets/MVTecAD")):  # doctest: +SKIP
        ...     datamodule.prepare_data()
    """
    root = Path(root)
    created_dirs = _missing_dirs(root)  # downloads create these with mkdir(parents=True)
    existing = set(root.iterdir()) if root.is_dir() else set()
    try:
        yield
    except BaseException:  # Ctrl-C included: clean up, and let it through unchanged
        _remove_new_entries(root, existing, created_dirs)
        raise


def _missing_dirs(path: Path) -> list[Path]:
    """Return ``path`` and its ancestors that do not exist yet, deepest first."""
    missing = []
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            break
        missing.append(candidate)
    return missing


def _remove_new_entries(root: Path, existing: set[Path], created_dirs: list[Path]) -> None:
    """Delete what a failed download left in ``root`` (archive, partial extraction) and the folders it made."""
    try:
        leftovers = [entry for entry in root.iterdir() if entry not in existing] if root.is_dir() else []
        for entry in leftovers:
            logger.info("Removing %s left by the failed download.", entry)
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        for directory in created_dirs:
            if directory.is_dir() and not any(directory.iterdir()):
                directory.rmdir()
    except OSError as exc:  # cleanup is best effort: the download error is the one to report
        logger.warning("Could not clean up after the failed download: %s", exc)

# Copyright (C) 2026 anomalib-minimaxad developers
# SPDX-License-Identifier: Apache-2.0
"""``MVTec``: anomalib's ``MVTecAD`` datamodule under its anomalib 1.x name.

anomalib 2.x renamed its ``MVTec`` datamodule to ``MVTecAD``, so ``anomalib train --data MVTec`` stopped
working. :class:`MVTec` is a thin subclass with the same constructor (hence the same ``--data.*`` options)
and the same automatic download. The only difference: when the dataset is missing and the download fails
(e.g. offline), it raises :class:`MVTecNotFoundError` telling which folder to fill by hand, and it removes
whatever the failed download created instead of leaving an empty or partial folder behind.

It is published as ``anomalib.data.MVTec`` through the ``anomalib.data`` entry point of this package.

Example:
    >>> from anomalib_minimaxad.data import MVTec
    >>> datamodule = MVTec(root="./datasets/MVTecAD", category="bottle")
"""

from __future__ import annotations

import logging
import shutil
from typing import TYPE_CHECKING

from anomalib.data import MVTecAD
from anomalib.data.datamodules.image import mvtecad

if TYPE_CHECKING:
    from pathlib import Path

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
        created_dirs = _missing_dirs(self.root)  # the download creates these with mkdir(parents=True)
        existing = set(self.root.iterdir()) if self.root.is_dir() else set()
        try:
            super().prepare_data()
        except BaseException as exc:
            _remove_new_entries(self.root, existing, created_dirs)
            if not isinstance(exc, Exception):  # Ctrl-C etc.: clean up, but do not disguise it
                raise
            msg = (
                f"The MVTec AD dataset was not found in '{target}' and the automatic download failed "
                f"({type(exc).__name__}: {exc}). Download MVTec AD by hand from {MVTEC_AD_URL} "
                f"(archive: {mvtecad.DOWNLOAD_INFO.url}) and extract it into '{self.root}' so that "
                f"'{target}' has the MVTec AD layout: train/good/*.png, test/<defect>/*.png and "
                f"ground_truth/<defect>/*_mask.png. Or point --data.root / --data.category "
                "(root=..., category=...) to an existing copy."
            )
            raise MVTecNotFoundError(msg) from exc


def _missing_dirs(path: Path) -> list[Path]:
    """Return ``path`` and its ancestors that do not exist yet, deepest first."""
    missing = []
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            break
        missing.append(candidate)
    return missing


def _remove_new_entries(root: Path, existing: set[Path], created_dirs: list[Path]) -> None:
    """Delete what a failed download left in ``root`` (archive, partial extraction) and the folders it made.

    Only direct children of ``root`` absent before the download are removed, and only created folders that
    are empty afterwards, so pre-existing user data is never deleted.
    """
    try:
        leftovers = [entry for entry in root.iterdir() if entry not in existing] if root.is_dir() else []
        for entry in leftovers:
            logger.info("Removing %s left by the failed MVTec AD download.", entry)
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        for directory in created_dirs:
            if directory.is_dir() and not any(directory.iterdir()):
                directory.rmdir()
    except OSError as exc:  # cleanup is best effort: the download error is the one to report
        logger.warning("Could not clean up after the failed MVTec AD download: %s", exc)

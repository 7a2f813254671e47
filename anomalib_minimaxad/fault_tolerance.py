# Copyright (C) 2026 anomalib-minimaxad developers
# SPDX-License-Identifier: Apache-2.0
"""Crash-safe training for MiniMaxAD: exact resumption, atomic checkpoints, results and exports.

**Resumption.** Lightning restores weights, optimizer, scheduler and loop counters from a checkpoint, but not the
random number generators: a resumed run shuffles its next epoch differently from an uninterrupted one, so the
weights drift apart. The :class:`ExactResume` callback (which ``MiniMaxAD.configure_callbacks`` adds by itself)
reseeds ``torch``, ``numpy`` and ``random`` from ``(global seed, epoch)`` at every epoch start, so that epoch
``e`` draws the same data order, worker seeds and augmentations whether or not the run was interrupted before
it. It acts only when a global seed is set (``seed_everything``); checkpoints are taken at epoch ends by
anomalib, which is where resumption is exact (Lightning cannot replay half an epoch).

**Atomic files.** :func:`atomic_write` is the one writer of this package: it writes a temporary file beside the
target, ``fsync``s it and renames it into place, so a reader sees the old file or the new one, never half of
one. Lightning writes checkpoints through ``fsspec`` into the system temporary directory and then moves them,
which is a *copy* when ``/tmp`` is another file system; :class:`AtomicCheckpointIO` writes them with
:func:`atomic_write`. Pass it to the engine (``Engine(plugins=[AtomicCheckpointIO()])``, or in a CLI config
``trainer.plugins: [{class_path: anomalib_minimaxad.fault_tolerance.AtomicCheckpointIO}]``); a model cannot
choose its trainer's checkpoint IO without mutating the strategy, so MiniMaxAD does not. anomalib's exporters
write straight to the final path; :func:`export_atomically` lets one write into a staging folder beside the
target and then renames the files into place, the entry point (``.pt``, ``.onnx``, ``.xml``) last, over the
previous one, and restores the previous export if the renames are interrupted.

Example:
    >>> from anomalib.engine import Engine
    >>> from anomalib_minimaxad import MiniMaxAD
    >>> engine = Engine(plugins=[AtomicCheckpointIO()])  # ExactResume comes with the model
    >>> engine.fit(MiniMaxAD(), datamodule=datamodule)  # doctest: +SKIP
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning
import numpy as np
import torch
from anomalib.engine.plugins.checkpoint_io import AnomalibCheckpointIO
from lightning.pytorch import Callback, LightningModule, Trainer

__all__ = ["AtomicCheckpointIO", "ExactResume", "atomic_write", "epoch_seed", "export_atomically"]

_SEED_ENV = "PL_GLOBAL_SEED"  # set by lightning's seed_everything
_EPOCH_STRIDE = 1_000_003  # keeps the epoch seeds of nearby global seeds apart
_NEW_FILE_MODE = 0o666  # what open(path, "w") asks for; the process umask then applies as usual


# ----------------------------------------------------------------------------------------------------------------
# Atomic files
# ----------------------------------------------------------------------------------------------------------------


def atomic_write(target: str | Path, write: Callable[[Path], object]) -> Path:
    """Write ``target`` by calling ``write(temporary)`` on a file beside it, then ``fsync`` and rename.

    The temporary file gets the mode a plain new file would get (``0o666`` less the umask). If ``write`` raises
    (or the process is interrupted by an exception), the temporary file is removed and ``target`` is untouched.

    Example:
        >>> atomic_write("results.json", lambda path: path.write_text("{}"))  # doctest: +SKIP
        PosixPath('results.json')
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _NEW_FILE_MODE))
    try:
        write(temporary)
        _replace_durably(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return target


def _replace_durably(source: Path, target: Path) -> None:
    """``fsync`` ``source``, rename it over ``target`` and ``fsync`` the folder, so the rename survives a crash."""
    with source.open("rb") as file:
        os.fsync(file.fileno())
    source.replace(target)
    if os.name == "posix":  # folders cannot be opened for fsync on Windows
        folder = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


class AtomicCheckpointIO(AnomalibCheckpointIO):
    """anomalib's checkpoint IO, writing each checkpoint with :func:`atomic_write`.

    anomalib's ``Engine`` keeps a given ``AnomalibCheckpointIO`` and gives it the model's safe globals.

    Example:
        >>> from anomalib.engine import Engine
        >>> engine = Engine(plugins=[AtomicCheckpointIO()])
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:  # noqa: ANN401
        """Save ``checkpoint`` to ``path`` atomically (local paths; others go through Lightning)."""
        if "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        if storage_options is not None:
            msg = f"{type(self).__name__} takes no storage_options for the local path '{path}'."
            raise TypeError(msg)
        atomic_write(path, lambda temporary: torch.save(checkpoint, temporary))


def export_atomically(export: Callable[[Path], Path], export_root: str | Path) -> Path:
    """Run ``export(staging_root)`` and move what it wrote into ``export_root``, the entry point last.

    ``export`` is an anomalib exporter bound to its other arguments; it writes ``<root>/weights/<type>/...`` and
    returns the entry point. The previous export stays complete and in place until the new one is complete: its
    companion files (an OpenVINO ``.bin``) are replaced first, then the entry point is renamed over the old one.
    If a rename fails or is interrupted by an exception, every replaced file is restored from a hard link taken
    before and every new one removed. Only a hard kill between the renames can leave the old entry point beside
    new companion files; a hidden ``.export-*`` staging folder is then left too.

    Example:
        >>> export_atomically(lambda root: model.to_torch(root), "./exports")  # doctest: +SKIP
        PosixPath('exports/weights/torch/model.pt')
    """
    export_root = Path(export_root)
    _refuse_blocked_path(export_root, export_root, is_file=False)  # before the export, which can take minutes
    export_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=export_root)).resolve()
    try:
        entry = Path(export(staging)).resolve()
        companions = sorted(path for path in staging.rglob("*") if path.is_file() and path != entry)
        for file in (*companions, entry):
            _refuse_blocked_path(export_root / file.relative_to(staging), export_root, is_file=True)
        _move_into_place(staging, export_root, [*companions, entry])
        return export_root / entry.relative_to(staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _refuse_blocked_path(path: Path, export_root: Path, is_file: bool) -> None:
    """Raise, before anything is moved, if a file stands where ``path`` needs a folder (or a folder where it is one).

    Raises:
        FileExistsError: naming the file that is in the way, and ``export_root``.
        IsADirectoryError: naming the folder that stands where the exported file goes.
    """
    if is_file and path.is_dir():
        msg = f"Cannot export {path}: a folder of that name is in the way. Remove it or choose another export_root."
        raise IsADirectoryError(msg)
    folders = list(reversed(path.parents)) if is_file else [*reversed(path.parents), path]
    blocker = next((folder for folder in folders if folder.exists() and not folder.is_dir()), None)
    if blocker is not None:
        msg = (
            f"Cannot export to {export_root}: {blocker} is a file, where the export needs a folder. "
            "Remove it or choose another export_root."
        )
        raise FileExistsError(msg)


def _move_into_place(staging: Path, export_root: Path, files: list[Path]) -> None:
    """Rename ``files`` from ``staging`` to the same relative paths under ``export_root``; all or nothing."""
    backups = Path(tempfile.mkdtemp(prefix=".previous-", dir=staging))
    renamed: list[tuple[Path, Path | None]] = []  # (final path, backup of the file it replaced)
    created_dirs: list[Path] = []
    try:
        for file in files:
            relative = file.relative_to(staging)
            final = export_root / relative
            created_dirs += [d for d in reversed(final.parents) if d not in created_dirs and not d.exists()]
            final.parent.mkdir(parents=True, exist_ok=True)
            backup = None
            if final.exists():
                backup = backups / relative
                backup.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(final, backup)
                except OSError:  # no hard links on this file system
                    shutil.copy2(final, backup)
            renamed.append((final, backup))
            _replace_durably(file, final)
    except BaseException:
        for final, backup in reversed(renamed):
            if backup is None:
                final.unlink(missing_ok=True)
            else:
                backup.replace(final)
        for folder in reversed(created_dirs):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise


# ----------------------------------------------------------------------------------------------------------------
# Exact resumption
# ----------------------------------------------------------------------------------------------------------------


def epoch_seed(base_seed: int, epoch: int) -> int:
    """Seed of ``epoch`` in a run seeded with ``base_seed`` (a 32-bit value).

    Example:
        >>> epoch_seed(111, 0) != epoch_seed(111, 1)
        True
    """
    return (base_seed + _EPOCH_STRIDE * (epoch + 1)) % 2**32


class ExactResume(Callback):
    """Reseed the RNGs from ``(global seed, epoch)`` at every training epoch start.

    A run resumed from an end-of-epoch checkpoint then trains exactly as the uninterrupted run would (same
    weights, bit for bit, on the same machine). Nothing is done when no global seed is set.

    Example:
        >>> from lightning.pytorch import Trainer, seed_everything
        >>> seed_everything(111)  # doctest: +SKIP
        >>> trainer = Trainer(callbacks=[ExactResume()])  # MiniMaxAD adds it by itself
    """

    def __init__(self) -> None:
        super().__init__()
        self._first_epoch_of_fit = True

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """A new ``fit`` call (fresh or resumed) starts with the iterator Lightning made in advance."""
        del trainer, pl_module
        self._first_epoch_of_fit = True

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Reseed for ``trainer.current_epoch``; in the first epoch of a fit, re-create the data iterator."""
        del pl_module
        base = os.environ.get(_SEED_ENV)
        first, self._first_epoch_of_fit = self._first_epoch_of_fit, False
        if base is None:
            return
        seed = epoch_seed(int(base), trainer.current_epoch)
        random.seed(seed)
        np.random.seed(seed)  # noqa: NPY002 - the legacy global generator is the one third-party code draws from
        torch.manual_seed(seed)  # also seeds every CUDA device
        if first:
            restart_training_iterator(trainer)


def restart_training_iterator(trainer: Trainer) -> None:
    """Re-create the training data iterator of the running epoch (the one use of a Lightning private attribute).

    Lightning creates the iterator of later epochs after ``on_train_epoch_start`` (so from the reseeded RNGs), but
    that of the first epoch of a fit in advance, from the RNG state of that moment, which differs between a fresh
    and a resumed run. No public API re-creates it; ``fit_loop._data_fetcher`` does.

    Raises:
        RuntimeError: This Lightning version has no such iterator (exact resumption must be adapted).
    """
    fetcher = getattr(trainer.fit_loop, "_data_fetcher", None)
    if fetcher is None or not hasattr(fetcher, "__iter__"):
        msg = (
            f"Lightning {lightning.__version__} has no training data fetcher at trainer.fit_loop._data_fetcher: "
            "anomalib_minimaxad.fault_tolerance.restart_training_iterator must be adapted to this version."
        )
        raise RuntimeError(msg)
    iter(fetcher)

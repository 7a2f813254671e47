# Copyright (C) 2026 anomalib-minimaxad developers
# SPDX-License-Identifier: Apache-2.0
"""Exact resumption and crash-safe files for MiniMaxAD training.

**Resumption.** Lightning restores weights, optimizer, scheduler and loop counters from a checkpoint, but not the
random number generators: a resumed run shuffles its next epoch differently from an uninterrupted one, so the
weights drift apart. :func:`seed_epoch` (called by ``MiniMaxAD.on_train_epoch_start``) reseeds ``torch``,
``numpy`` and ``random`` from ``(global seed, epoch)`` at every epoch start, and re-creates the training
iterator in the first epoch of a run (whose iterator Lightning creates before that hook), so that epoch ``e``
draws the same data order, worker seeds and augmentations whether or not the run was interrupted before it.
It acts only when a global seed is set (``seed_everything``, ``anomalib train`` does it); checkpoints are taken
at epoch ends by anomalib, which is where resumption is exact (Lightning cannot replay half an epoch).

**Atomic files.** Lightning writes checkpoints through ``fsspec``: into a temporary file in the system temporary
directory, then ``shutil.move`` into place, which is a rename only when both are on the same file system. With
``/tmp`` on another one (a tmpfs, a container volume) the final file is *copied* and an interrupted copy leaves
a truncated ``model.ckpt``. :class:`AtomicCheckpointIO` writes next to the target and renames. anomalib's
exports (``to_torch``, ``to_onnx``, ``to_openvino``) write straight to the final path; :func:`export_atomically`
runs an exporter in a hidden staging folder beside the target and renames its files into place, the entry point
(``.pt``, ``.onnx``, ``.xml``) last and any previous entry point removed first.

Example:
    >>> from lightning.pytorch import seed_everything
    >>> seed_everything(111)  # doctest: +SKIP
    >>> seed_epoch(trainer)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from anomalib.engine.plugins.checkpoint_io import AnomalibCheckpointIO
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch import Trainer

__all__ = ["AtomicCheckpointIO", "epoch_seed", "export_atomically", "seed_epoch", "use_atomic_checkpoints"]

logger = logging.getLogger(__name__)

_SEED_ENV = "PL_GLOBAL_SEED"  # set by lightning's seed_everything
_EPOCH_STRIDE = 1_000_003  # keeps the epoch seeds of nearby global seeds apart


def epoch_seed(base_seed: int, epoch: int) -> int:
    """Seed of ``epoch`` in a run seeded with ``base_seed`` (a 32-bit value).

    Example:
        >>> epoch_seed(111, 0) != epoch_seed(111, 1)
        True
    """
    return (base_seed + _EPOCH_STRIDE * (epoch + 1)) % 2**32


def seed_epoch(trainer: Trainer) -> int | None:
    """Reseed the RNGs for the starting training epoch; call it from ``on_train_epoch_start``.

    Returns:
        The seed used, or ``None`` when no global seed is set (nothing is done then).
    """
    base = os.environ.get(_SEED_ENV)
    if base is None:
        return None
    seed = epoch_seed(int(base), trainer.current_epoch)
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - the legacy global generator is the one third-party code draws from
    torch.manual_seed(seed)  # also seeds every CUDA device
    fit_loop = trainer.fit_loop
    fetcher = getattr(fit_loop, "_data_fetcher", None)
    epoch_loop = getattr(fit_loop, "epoch_loop", None)
    # Lightning's training epoch loop creates the iterator itself except in the first epoch of a run (fresh or
    # resumed), whose iterator ``setup_data`` made before this hook, from the RNG state of that moment.
    loop_iterates = trainer.current_epoch > 0 and not getattr(fit_loop, "is_resuming", False)
    loop_iterates = loop_iterates and not getattr(epoch_loop, "restarting", False)
    if fetcher is not None and not loop_iterates:
        iter(fetcher)
    return seed


def _fsync_file(path: Path) -> None:
    with path.open("rb") as file:
        os.fsync(file.fileno())


class AtomicCheckpointIO(AnomalibCheckpointIO):
    """anomalib's checkpoint IO, writing into a temporary file beside the target and renaming it into place.

    Example:
        >>> from anomalib.engine import Engine
        >>> engine = Engine(plugins=[AtomicCheckpointIO()])  # MiniMaxAD installs it by itself
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:  # noqa: ANN401
        """Save ``checkpoint`` to ``path`` atomically (local paths; others go through Lightning)."""
        target = Path(path)
        if "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        if storage_options is not None:
            msg = f"{type(self).__name__} takes no storage_options."
            raise TypeError(msg)
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(handle)
        try:
            torch.save(checkpoint, temporary)
            # mkstemp creates the file private (0600); give it the mode a plain write would have.
            Path(temporary).chmod(_DEFAULT_FILE_MODE)
            _fsync_file(Path(temporary))
            Path(temporary).replace(target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def _default_file_mode() -> int:
    """0o666 less the process umask: the mode ``open(path, "w")`` would give a new file."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_DEFAULT_FILE_MODE = _default_file_mode()


def use_atomic_checkpoints(trainer: Trainer | None) -> None:
    """Swap the trainer's default checkpoint IO (Lightning's or anomalib's) for :class:`AtomicCheckpointIO`.

    A user-supplied checkpoint IO of another type is left alone.
    """
    if trainer is None:
        return
    strategy = trainer.strategy
    current = strategy.checkpoint_io
    if type(current) not in {TorchCheckpointIO, AnomalibCheckpointIO}:
        return
    extras = getattr(current, "extra_safe_globals", None)
    strategy.checkpoint_io = AtomicCheckpointIO(extra_safe_globals=extras)


def export_atomically(export: Callable[[Path], Path], export_root: str | Path) -> Path:
    """Run ``export(staging_root)`` and move what it wrote into ``export_root``, entry point last.

    ``export`` is an anomalib exporter bound to its other arguments; it writes ``<root>/weights/<type>/...`` and
    returns the entry point. Nothing appears at the final paths until the export has fully succeeded.

    Example:
        >>> export_atomically(lambda root: model.to_torch(root), "./exports")  # doctest: +SKIP
        PosixPath('exports/weights/torch/model.pt')
    """
    export_root = Path(export_root)
    export_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".export-", dir=export_root))
    try:
        entry = Path(export(staging)).resolve()
        files = sorted(p for p in staging.rglob("*") if p.is_file())
        for file in files:
            _fsync_file(file)
        files.sort(key=lambda p: p.resolve() == entry)  # the entry point last
        final_entry = export_root / entry.relative_to(staging.resolve())
        final_entry.unlink(missing_ok=True)  # an old entry point must not pair with new companion files
        for file in files:
            final = export_root / file.relative_to(staging)
            final.parent.mkdir(parents=True, exist_ok=True)
            file.replace(final)
        return final_entry
    finally:
        shutil.rmtree(staging, ignore_errors=True)

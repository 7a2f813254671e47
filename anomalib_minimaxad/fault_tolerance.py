# Copyright (C) 2026 anomalib-minimaxad developers
# SPDX-License-Identifier: Apache-2.0
"""Crash-safe training for MiniMaxAD: exact resumption, atomic checkpoints, results and exports.

**Resumption.** Lightning restores weights, optimizer, scheduler and loop counters from a checkpoint, but not the
random number generators: a resumed run shuffles its next epoch differently from an uninterrupted one, so the
weights drift apart. The :class:`ExactResume` callback (which ``MiniMaxAD.configure_callbacks`` adds by itself)
reseeds ``torch``, ``numpy`` and ``random`` from ``(global seed, epoch)`` at every epoch start, so that epoch
``e`` draws the same data order, worker seeds and augmentations whether or not the run was interrupted before
it. It acts only when a global seed is set (``seed_everything``, which a preset's ``seed_everything`` does on
``anomalib train`` for MiniMaxAD: the CLI seeds before it builds the model); checkpoints are taken at epoch
ends by anomalib, which is where resumption is exact (Lightning cannot replay half an epoch).

anomalib's ``Engine.train(ckpt_path=...)`` (``anomalib train --ckpt_path``) fits from the checkpoint and then
calls ``trainer.test(ckpt_path=...)`` with the *same* path, which loads the checkpoint's weights back: it
would print the metrics of the checkpoint the run started from. Within that one ``Engine.train`` call,
:class:`ExactResume` gives the test the weights the fit ended with, so the printed metrics are those of the
trained model (an explicit ``engine.test(ckpt_path=...)`` still tests the checkpoint it names).

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

**Faults that name themselves.** A save or export that fails on a full disk raises :class:`NoSpaceLeftError` (an
``OSError``, errno ``ENOSPC``) naming the path and saying "no space left on device" (torch's own writer says
only ``unexpected pos 128 vs 0``); the cause is read from the error (errno ``ENOSPC``) or, for a writer that
drops the errno, from the free space left on the target's file system right after the failure. Each temporary
file (``.<name>.<12 hex>.minimaxad-tmp``) and export staging folder (``.minimaxad-export-*``) is locked
(``flock``) by its writer while it exists; one left behind by a killed process (whose locks the kernel has
released) is removed by the next save or export in that folder. Nothing else is ever removed, nor a temporary
that a live writer holds.

Example:
    >>> from anomalib.engine import Engine
    >>> from anomalib_minimaxad import MiniMaxAD
    >>> engine = Engine(plugins=[AtomicCheckpointIO()])  # ExactResume comes with the model
    >>> engine.fit(MiniMaxAD(), datamodule=datamodule)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import random
import re
import secrets
import shutil
import sys
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning
import numpy as np
import torch
from anomalib.engine.plugins.checkpoint_io import AnomalibCheckpointIO
from lightning.pytorch import Callback, LightningModule, Trainer

try:
    import fcntl
except ImportError:  # Windows: no flock, so no lock on temporaries and no clean-up of abandoned ones
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from types import FrameType

__all__ = [
    "AtomicCheckpointIO",
    "ExactResume",
    "NoSpaceLeftError",
    "atomic_write",
    "epoch_seed",
    "export_atomically",
    "remove_abandoned_temporaries",
]

_SEED_ENV = "PL_GLOBAL_SEED"  # set by lightning's seed_everything
_EPOCH_STRIDE = 1_000_003  # keeps the epoch seeds of nearby global seeds apart
_NEW_FILE_MODE = 0o666  # what open(path, "w") asks for; the process umask then applies as usual
_TEMPORARY_SUFFIX = ".minimaxad-tmp"
_TEMPORARY_NAME = re.compile(r"\..+\.[0-9a-f]{12}" + re.escape(_TEMPORARY_SUFFIX))  # ours, by construction
_STAGING_PREFIX = ".minimaxad-export-"
_STAGING_NAME = re.compile(re.escape(_STAGING_PREFIX) + r"[a-z0-9_]{8}")  # tempfile.mkdtemp's 8 characters
#: A write that failed with less than this free on its file system failed for lack of space. Writers fill the
#: file system to the last block before failing, so what is left after the failure is far below this.
_FULL_BELOW_BYTES = 1 << 20

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------------------------
# Atomic files
# ----------------------------------------------------------------------------------------------------------------


def atomic_write(target: str | Path, write: Callable[[Path], object]) -> Path:
    """Write ``target`` by calling ``write(temporary)`` on a file beside it, then ``fsync`` and rename.

    The temporary file gets the mode a plain new file would get (``0o666`` less the umask). If ``write`` raises
    (or the process is interrupted by an exception), the temporary file is removed and ``target`` is untouched.
    Temporaries left in the folder by killed writers are removed first.

    Raises:
        NoSpaceLeftError: an ``OSError`` (``ENOSPC``) naming ``target``, when its file system is full.

    Example:
        >>> atomic_write("results.json", lambda path: path.write_text("{}"))  # doctest: +SKIP
        PosixPath('results.json')
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_abandoned_temporaries(target.parent)
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(6)}{_TEMPORARY_SUFFIX}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _NEW_FILE_MODE)
    try:
        _lock(descriptor)  # held until the temporary is renamed or removed; the kernel drops it if we are killed
        try:
            write(temporary)
            _replace_durably(temporary, target)
        except BaseException as error:
            # Measured before the temporary gives its blocks back.
            full = NoSpaceLeftError(target, previous="file") if _no_space_left(error, target.parent) else None
            temporary.unlink(missing_ok=True)
            if full is not None:
                raise full from error
            raise
    finally:
        os.close(descriptor)
    return target


def remove_abandoned_temporaries(folder: str | Path) -> list[Path]:
    """Remove the temporaries of :func:`atomic_write` and :func:`export_atomically` in ``folder`` whose writer died.

    Only names of this module's pattern are considered, and only those no live process holds locked. Nothing is
    removed where ``flock`` does not exist (Windows).

    Returns:
        The paths removed.

    Example:
        >>> remove_abandoned_temporaries("results/weights/lightning")  # doctest: +SKIP
        [PosixPath('results/weights/lightning/.model.ckpt.5f0c3e8a91d2.minimaxad-tmp')]
    """
    folder = Path(folder)
    if fcntl is None or not folder.is_dir():
        return []
    removed = []
    for path in folder.iterdir():
        is_file = _TEMPORARY_NAME.fullmatch(path.name) is not None
        if not is_file and _STAGING_NAME.fullmatch(path.name) is None:
            continue
        with _unlocked(path) as abandoned:
            if not abandoned:
                continue
            if is_file:
                path.unlink(missing_ok=True)
            else:
                shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
            logger.info("Removed %s, left by a save that was killed before it completed.", path)
    return removed


def _lock(descriptor: int) -> None:
    """Hold an exclusive ``flock`` on ``descriptor`` (released on close or when the process dies)."""
    if fcntl is not None:
        fcntl.flock(descriptor, fcntl.LOCK_EX)


@contextlib.contextmanager
def _unlocked(path: Path) -> Iterator[bool]:
    """Yield whether ``path`` was free to lock (its writer is gone), holding the lock while the caller acts."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:  # removed meanwhile, or not ours to open
        yield False
        return
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # a live writer holds it
            yield False
            return
        yield True
    finally:
        os.close(descriptor)


def _no_space_left(error: BaseException, folder: Path) -> bool:
    """Whether ``error`` (a failed write into ``folder``) came from a full file system.

    ``ENOSPC`` anywhere in the exception's chain says so; torch's writer drops the errno (``RuntimeError:
    unexpected pos``), so for an ``OSError`` or ``RuntimeError`` without it, the free space left says so.
    """
    chain: list[BaseException] = []
    link: BaseException | None = error
    while link is not None and link not in chain:
        chain.append(link)
        link = link.__cause__ or link.__context__
    if any(isinstance(link, OSError) and link.errno == errno.ENOSPC for link in chain):
        return True
    if not isinstance(chain[0], OSError | RuntimeError):
        return False
    free = _free_bytes(folder)
    return free is not None and free < _FULL_BELOW_BYTES


def _free_bytes(folder: Path) -> int | None:
    """Bytes an unprivileged writer may still use on the file system of ``folder`` (``None`` if unknown)."""
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


class NoSpaceLeftError(OSError):
    """A save or export failed because the file system is full: ``errno`` is ``ENOSPC``; the cause is chained.

    The message names the path, the free space left on its file system, and that the ``previous`` file or
    export is unchanged.

    Example:
        >>> error = NoSpaceLeftError(Path("/nonexistent/model.ckpt"), previous="file")
        >>> error.errno == errno.ENOSPC, error.strerror.split(";")[0]
        (True, 'No space left on device: cannot write /nonexistent/model.ckpt')
    """

    def __init__(self, path: Path, previous: str) -> None:
        free = _free_bytes(path if path.is_dir() else path.parent)
        left = "" if free is None else f" ({free:,} bytes free on its file system when the write failed)"
        message = f"No space left on device: cannot write {path}{left}; the previous {previous} is unchanged."
        super().__init__(errno.ENOSPC, f"{message} Free some space and retry.")
        self.path = path


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
    new companion files; a hidden ``.minimaxad-export-*`` staging folder is then left too, which the
    next export into ``export_root`` removes.

    Example:
        >>> export_atomically(lambda root: model.to_torch(root), "./exports")  # doctest: +SKIP
        PosixPath('exports/weights/torch/model.pt')
    """
    export_root = Path(export_root)
    _refuse_blocked_path(export_root, export_root, is_file=False)  # before the export, which can take minutes
    export_root.mkdir(parents=True, exist_ok=True)
    remove_abandoned_temporaries(export_root)
    staging = Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=export_root)).resolve()
    lock = os.open(staging, os.O_RDONLY)
    try:
        _lock(lock)
        entry = Path(export(staging)).resolve()
        companions = sorted(path for path in staging.rglob("*") if path.is_file() and path != entry)
        for file in (*companions, entry):
            _refuse_blocked_path(export_root / file.relative_to(staging), export_root, is_file=True)
        _move_into_place(staging, export_root, [*companions, entry])
        return export_root / entry.relative_to(staging)
    except BaseException as error:
        if _no_space_left(error, staging):  # before the staged files give their blocks back
            raise NoSpaceLeftError(export_root, previous="export") from error
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        os.close(lock)


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


@dataclass
class _ResumedTrain:
    """A fit resumed from ``checkpoint`` inside the ``Engine.train`` call whose frame has id ``train_frame``."""

    train_frame: int
    checkpoint: str
    fitted_state: dict[str, torch.Tensor] | None = None


#: Per trainer, the resumed fit of an ``Engine.train`` call, until that call's test starts. ``configure_callbacks``
#: gives ``fit`` and ``test`` different ``ExactResume`` instances, so this cannot live on the callback.
_RESUMED_TRAINS: weakref.WeakKeyDictionary[Trainer, _ResumedTrain] = weakref.WeakKeyDictionary()


class ExactResume(Callback):
    """Reseed the RNGs from ``(global seed, epoch)`` at every training epoch start; test what a resumed train fitted.

    A run resumed from an end-of-epoch checkpoint then trains exactly as the uninterrupted run would (same
    weights, bit for bit, on the same machine). Nothing is reseeded when no global seed is set. In an
    ``Engine.train(ckpt_path=...)`` call, the test that follows the resumed fit runs on the fitted weights, not
    on those of ``ckpt_path`` (see the module docstring).

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

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:  # noqa: PLR6301
        """Note a fit resumed from a checkpoint inside ``Engine.train`` (the checkpoint is restored by now)."""
        del pl_module
        _RESUMED_TRAINS.pop(trainer, None)
        train_frame = _engine_train_frame()
        if trainer.ckpt_path is not None and train_frame is not None:
            _RESUMED_TRAINS[trainer] = _ResumedTrain(id(train_frame), str(trainer.ckpt_path))

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:  # noqa: PLR6301
        """Keep the fitted weights of a resumed ``Engine.train`` fit for the test that follows it."""
        resumed = _RESUMED_TRAINS.get(trainer)
        if resumed is not None:
            resumed.fitted_state = {name: value.detach().clone() for name, value in pl_module.state_dict().items()}

    def on_test_start(self, trainer: Trainer, pl_module: LightningModule) -> None:  # noqa: PLR6301
        """In the test of a resumed ``Engine.train``, put back the fitted weights that ``ckpt_path`` replaced."""
        resumed = _RESUMED_TRAINS.pop(trainer, None)
        train_frame = _engine_train_frame()
        if (
            resumed is None
            or resumed.fitted_state is None
            or train_frame is None
            or id(train_frame) != resumed.train_frame
            or str(trainer.ckpt_path) != resumed.checkpoint
        ):
            return
        pl_module.load_state_dict(resumed.fitted_state)
        logger.info(
            "Engine.train resumed from %s: testing the weights this run trained, not that checkpoint's.",
            resumed.checkpoint,
        )

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


def _engine_train_frame() -> FrameType | None:
    """The innermost running frame of anomalib's ``Engine.train``, if one is on the stack."""
    from anomalib.engine import Engine

    train_code = Engine.train.__code__
    frame: FrameType | None = sys._getframe(1)  # noqa: SLF001  # the one way to tell Engine.train's test from an explicit test
    while frame is not None and frame.f_code is not train_code:
        frame = frame.f_back
    return frame


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

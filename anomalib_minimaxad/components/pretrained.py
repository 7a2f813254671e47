# Copyright (C) 2026 anomalib-minimaxad developers
# SPDX-License-Identifier: Apache-2.0
"""Finding, reading and checking checkpoints for MiniMaxAD.

Two kinds of file load into :class:`~anomalib_minimaxad.torch_model.MiniMaxADModel`:

- the ImageNet UniRepLKNet checkpoint (``unireplknet_n_in1k_224_acc81.64.pth`` ... in the
  Hugging Face repo ``DingXiaoH/UniRepLKNet``) into the encoder. It is looked up, in order:
  an explicit path; ``$MINIMAXAD_WEIGHTS_DIR/<file name>``; the Hugging Face hub through
  timm (cached under ``HF_HOME``; ``HF_HUB_OFFLINE=1`` is honoured).
- the authors' trained MiniMaxAD checkpoints ``{"bn": ..., "decoder": ...}`` into the
  bottleneck and decoder.

Keys are checked, never loaded with a silent ``strict=False``: every tensor the forward
pass uses must come from the file (the encoder's ``norm0-2`` excepted: ImageNet
checkpoints lack them by design and they stay identity LayerNorms); a missing or
mis-shaped tensor is an error listing the keys; ignored extras (``stages.3``, ``norm``,
``head``) are logged.
"""

import logging
import os
import pickle  # noqa: S403 - only for its UnpicklingError: files are read with weights_only=True
import zipfile
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from .networks import HF_HUB_REPO, UNIREPLKNET_VARIANTS

__all__ = [
    "WEIGHTS_DIR_ENV",
    "CheckpointError",
    "PretrainedWeightsUnavailableError",
    "load_module_state",
    "read_checkpoint",
    "resolve_imagenet_state_dict",
    "unwrap_state_dict",
]

logger = logging.getLogger(__name__)

#: Environment variable naming a folder that holds the ImageNet checkpoints.
WEIGHTS_DIR_ENV = "MINIMAXAD_WEIGHTS_DIR"

_MAX_KEYS_LISTED = 20


class CheckpointError(ValueError):
    """A checkpoint file cannot be read or does not fit the model."""


class PretrainedWeightsUnavailableError(RuntimeError):
    """The ImageNet weights are neither on disk nor reachable on the hub."""


def read_checkpoint(path: str | Path) -> object:
    """Read a checkpoint file with ``torch.load(weights_only=True)`` onto the CPU.

    Raises:
        CheckpointError: naming the file, when it is missing, truncated or not a PyTorch checkpoint.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        msg = f"Checkpoint file not found: {path}"
        raise CheckpointError(msg)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, zipfile.BadZipFile, ValueError, OSError) as error:
        msg = f"{path} is not a readable PyTorch checkpoint (truncated or another format?): {error}"
        raise CheckpointError(msg) from error


def unwrap_state_dict(checkpoint: object) -> dict[str, torch.Tensor] | None:
    """Return the tensors of a checkpoint saved bare or under ``model``, ``models`` or ``state_dict``.

    Returns ``None`` when ``checkpoint`` holds no state dict.
    """
    if not isinstance(checkpoint, dict):
        return None
    tensors: dict = checkpoint
    for key in ("model", "models", "state_dict"):
        if isinstance(checkpoint.get(key), dict):
            tensors = checkpoint[key]
            break
    if not tensors or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in tensors.items()):
        return None
    return tensors


def _listing(keys: Iterable[str]) -> str:
    keys = list(keys)
    shown = ", ".join(keys[:_MAX_KEYS_LISTED])
    return shown + (f" ... ({len(keys)} in all)" if len(keys) > _MAX_KEYS_LISTED else "")


def load_module_state(
    module: nn.Module,
    state_dict: dict[str, torch.Tensor],
    source: str,
    optional_prefixes: tuple[str, ...] = (),
) -> list[str]:
    """Load ``state_dict`` into ``module`` after checking every key and shape.

    Args:
        module (nn.Module): Receives the tensors.
        state_dict (dict[str, torch.Tensor]): Tensors by name; keys ``module`` lacks are ignored (and returned).
        source (str): Names the file in error messages.
        optional_prefixes (tuple[str, ...]): Keys of ``module`` with these prefixes may be absent (keep their values).

    Returns:
        The ignored keys of ``state_dict``.

    Raises:
        CheckpointError: listing the missing and mis-shaped keys.
    """
    expected = module.state_dict()
    missing = [k for k in expected if k not in state_dict and not k.startswith(optional_prefixes)]
    mismatched = [
        f"{k} (file {tuple(state_dict[k].shape)}, model {tuple(v.shape)})"
        for k, v in expected.items()
        if k in state_dict and state_dict[k].shape != v.shape
    ]
    if missing or mismatched:
        problems = []
        if missing:
            problems.append(f"missing keys: {_listing(missing)}")
        if mismatched:
            problems.append(f"mis-shaped tensors: {_listing(mismatched)}")
        msg = f"{source} does not fit {type(module).__name__}: " + "; ".join(problems)
        raise CheckpointError(msg)
    ignored = [k for k in state_dict if k not in expected]
    module.load_state_dict({k: v for k, v in state_dict.items() if k in expected}, strict=False)
    return ignored


def _hub_help(file_name: str) -> str:
    return (
        f"Download {file_name} from https://huggingface.co/{HF_HUB_REPO} and either pass "
        f"pre_trained='/path/to/{file_name}' or put it in the folder named by ${WEIGHTS_DIR_ENV}; "
        "or pass pre_trained=False to train with a randomly initialised encoder."
    )


def resolve_imagenet_state_dict(backbone: str, pre_trained: str | Path | bool = True) -> tuple[dict, str]:
    """Find and read the ImageNet checkpoint of ``backbone``.

    Args:
        backbone (str): A key of :data:`UNIREPLKNET_VARIANTS` (``unireplknet_n`` ...).
        pre_trained (str | Path | bool): A file path, or ``True`` to look in ``$MINIMAXAD_WEIGHTS_DIR`` then on the hub.

    Returns:
        The unwrapped state dict and a description of where it came from.

    Raises:
        CheckpointError: The file is unreadable or holds no state dict.
        PretrainedWeightsUnavailableError: No file and the hub cannot be reached (offline).
    """
    file_name = UNIREPLKNET_VARIANTS[backbone]["file"]
    if isinstance(pre_trained, str | Path) and not isinstance(pre_trained, bool):
        path = Path(pre_trained).expanduser()
    elif os.environ.get(WEIGHTS_DIR_ENV):
        path = Path(os.environ[WEIGHTS_DIR_ENV]).expanduser() / file_name
        if not path.is_file():
            msg = f"${WEIGHTS_DIR_ENV} is set but {path} does not exist. " + _hub_help(file_name)
            raise PretrainedWeightsUnavailableError(msg)
    else:
        return _state_dict_from_hub(backbone, file_name), f"hf-hub:{HF_HUB_REPO}/{file_name}"
    tensors = unwrap_state_dict(read_checkpoint(path))
    if tensors is None:
        msg = f"{path} holds no state dict (tensors by name, bare or under 'model', 'models' or 'state_dict')."
        raise CheckpointError(msg)
    return tensors, str(path)


def _state_dict_from_hub(backbone: str, file_name: str) -> dict[str, torch.Tensor]:
    """Download (or take from the cache) through timm's hub helper."""
    from timm.models import load_state_dict_from_hf

    try:
        checkpoint = load_state_dict_from_hf(HF_HUB_REPO, file_name)
    except Exception as error:
        msg = (
            f"Could not get the ImageNet weights of {backbone} ({file_name}) from the Hugging Face hub "
            f"({type(error).__name__}: {error}). " + _hub_help(file_name)
        )
        raise PretrainedWeightsUnavailableError(msg) from error
    tensors = unwrap_state_dict(checkpoint)
    if tensors is None:
        msg = f"hf-hub:{HF_HUB_REPO}/{file_name} holds no state dict."
        raise CheckpointError(msg)
    return tensors

# Copyright (C) 2026 anomalib-minimaxad developers
# SPDX-License-Identifier: Apache-2.0
"""UniRepLKNet in timm's model registry, with pretrained configs pointing at the authors' files.

Importing this module registers ``unireplknet_a`` ... ``unireplknet_s``, so that
``timm.create_model("unireplknet_n", pretrained=True)`` downloads, caches and loads the
ImageNet checkpoint through timm's own machinery (``anomalib_minimaxad`` imports it).

Example:
    >>> import timm, torch
    >>> import anomalib_minimaxad.components.timm_registration  # noqa: F401
    >>> timm.create_model("unireplknet_a", pretrained=False, num_classes=10)(torch.rand(1, 3, 64, 64)).shape
    torch.Size([1, 10])
"""

from typing import Any

import torch
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from torch import nn

from .networks import HF_HUB_REPO, UNIREPLKNET_VARIANTS, UniRepLKNet
from .pretrained import unwrap_state_dict

__all__ = [
    "checkpoint_filter_fn",
    "unireplknet_a",
    "unireplknet_f",
    "unireplknet_n",
    "unireplknet_p",
    "unireplknet_s",
    "unireplknet_t",
]


def checkpoint_filter_fn(state_dict: dict[str, Any], model: nn.Module) -> dict[str, torch.Tensor]:  # noqa: ARG001
    """Unwrap, as timm's ``pretrained_filter_fn``, the authors' ``{"model": ...}`` checkpoints."""
    tensors = unwrap_state_dict(state_dict)
    if tensors is None:
        msg = "The UniRepLKNet checkpoint holds no state dict (tensors by name, bare or under 'model')."
        raise ValueError(msg)
    return tensors


def _cfg(file: str) -> dict[str, Any]:
    return {
        "hf_hub_id": HF_HUB_REPO,
        "hf_hub_filename": file,
        "num_classes": 1000,
        "input_size": (3, 224, 224),
        "pool_size": (7, 7),
        "crop_pct": 0.875,
        "interpolation": "bicubic",
        "mean": (0.485, 0.456, 0.406),
        "std": (0.229, 0.224, 0.225),
        "first_conv": "downsample_layers.0.0",
        "classifier": "head",
        "license": "apache-2.0",
    }


default_cfgs = generate_default_cfgs({f"{name}.in1k": _cfg(v["file"]) for name, v in UNIREPLKNET_VARIANTS.items()})


def _create_unireplknet(variant: str, pretrained: bool = False, **kwargs: Any) -> UniRepLKNet:  # noqa: ANN401
    config = UNIREPLKNET_VARIANTS[variant]
    model_args = {"dims": config["dims"], "depths": config["depths"], **kwargs}
    return build_model_with_cfg(
        UniRepLKNet,
        variant,
        pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        **model_args,
    )


@register_model
def unireplknet_a(pretrained: bool = False, **kwargs: Any) -> UniRepLKNet:  # noqa: ANN401
    """UniRepLKNet-A (ImageNet-1k 77.0%)."""
    return _create_unireplknet("unireplknet_a", pretrained, **kwargs)


@register_model
def unireplknet_f(pretrained: bool = False, **kwargs: Any) -> UniRepLKNet:  # noqa: ANN401
    """UniRepLKNet-F (ImageNet-1k 78.6%)."""
    return _create_unireplknet("unireplknet_f", pretrained, **kwargs)


@register_model
def unireplknet_p(pretrained: bool = False, **kwargs: Any) -> UniRepLKNet:  # noqa: ANN401
    """UniRepLKNet-P (ImageNet-1k 80.2%)."""
    return _create_unireplknet("unireplknet_p", pretrained, **kwargs)


@register_model
def unireplknet_n(pretrained: bool = False, **kwargs: Any) -> UniRepLKNet:  # noqa: ANN401
    """UniRepLKNet-N (ImageNet-1k 81.6%), MiniMaxAD's encoder."""
    return _create_unireplknet("unireplknet_n", pretrained, **kwargs)


@register_model
def unireplknet_t(pretrained: bool = False, **kwargs: Any) -> UniRepLKNet:  # noqa: ANN401
    """UniRepLKNet-T (ImageNet-1k 83.2%)."""
    return _create_unireplknet("unireplknet_t", pretrained, **kwargs)


@register_model
def unireplknet_s(pretrained: bool = False, **kwargs: Any) -> UniRepLKNet:  # noqa: ANN401
    """UniRepLKNet-S (ImageNet-1k 83.9%)."""
    return _create_unireplknet("unireplknet_s", pretrained, **kwargs)

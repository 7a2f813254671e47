# Original Code
# Copyright (c) 2025 WangFengJie
# https://github.com/WangFengJiee/MiniMaxAD
# SPDX-License-Identifier: MIT
#
# Modified
# Copyright (C) 2026 anomalib-minimaxad developers
# SPDX-License-Identifier: Apache-2.0
"""PyTorch model of MiniMaxAD.

A frozen UniRepLKNet encoder gives features at strides 4, 8 and 16; a trainable bottleneck
fuses them and a trainable decoder, the encoder mirrored, reconstructs them. Where the
reconstruction differs from the encoder's features (``1 - cos``), the image is anomalous.

Example:
    >>> import torch
    >>> from anomalib_minimaxad.torch_model import MiniMaxADModel
    >>> model = MiniMaxADModel(dims=(16, 32, 64, 128)).eval()
    >>> output = model(torch.rand(2, 3, 64, 64))
    >>> output.anomaly_map.shape, output.pred_score.shape
    (torch.Size([2, 1, 64, 64]), torch.Size([2]))
"""

import contextlib
import copy
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F  # noqa: N812
from anomalib.data import InferenceBatch
from torch import nn

from .anomaly_map import AnomalyMapGenerator, MapCombination, ScoreMode, Smoothing
from .components import fast_cpu as fast_cpu_kernels
from .components.layers import FastCPUConv2d, FastCPUConvTranspose2d, UniRepLKNetBlock
from .components.networks import UNIREPLKNET_VARIANTS, Bottleneck, Decoder, UniRepLKNetEncoder, default_kernel_sizes
from .components.pretrained import (
    CheckpointError,
    load_module_state,
    read_checkpoint,
    resolve_imagenet_state_dict,
    unwrap_state_dict,
)
from .validation import check_model_arguments

__all__ = ["MIN_INPUT_SIZE", "MiniMaxADModel"]

logger = logging.getLogger(__name__)

#: Smallest image side: the bottleneck works at stride 32.
MIN_INPUT_SIZE = 32


class MiniMaxADModel(nn.Module):
    """MiniMaxAD: frozen UniRepLKNet encoder, trainable bottleneck and decoder.

    In training mode the forward pass returns ``(encoder_features, decoder_features)`` for
    the loss; in eval mode an :class:`~anomalib.data.InferenceBatch` with the smoothed
    anomaly map ``(B, 1, H, W)`` and image scores ``(B,)``, computed as the authors evaluate.

    Any input size of at least 32 pixels works. Where the decoder's feature sizes differ
    from the encoder's (sides not multiples of 32, e.g. 400x400), the decoder features are
    resized to the encoder's with nearest interpolation, as the paper does.

    Args:
        backbone (str): UniRepLKNet size, a key of ``UNIREPLKNET_VARIANTS`` (``unireplknet_n``).
        dims (Sequence[int] | None): Override of the 4 widths (e.g. small widths for tests).
        depths (Sequence[int] | None): Override of the 4 depths.
        kernel_sizes (Sequence[Sequence[int]] | None): Override of the per-block kernel sizes.
        gaussian_kernel_size (int): Side of the smoothing kernel of the anomaly map.
        gaussian_sigma (float): Sigma of the smoothing kernel.
        score_mode (ScoreMode | str): ``"top_ratio"`` (mean of the top pixels) or ``"max"``.
        score_ratio (float): Fraction of pixels averaged by ``"top_ratio"``.
        map_combination (MapCombination | str): ``"mean"`` or ``"sum"`` of the per-level maps (see
            :class:`AnomalyMapGenerator`).
        smoothing (Smoothing | str): ``"kernel"`` (zero-padded ``gaussian_kernel_size`` Gaussian) or ``"full"`` (scipy's
            ``gaussian_filter`` with reflect borders).
    """

    def __init__(
        self,
        backbone: str = "unireplknet_n",
        dims: Sequence[int] | None = None,
        depths: Sequence[int] | None = None,
        kernel_sizes: Sequence[Sequence[int]] | None = None,
        gaussian_kernel_size: int = 5,
        gaussian_sigma: float = 4.0,
        score_mode: ScoreMode | str = ScoreMode.TOP_RATIO,
        score_ratio: float = 0.01,
        map_combination: MapCombination | str = MapCombination.MEAN,
        smoothing: Smoothing | str = Smoothing.KERNEL,
    ) -> None:
        super().__init__()
        if backbone not in UNIREPLKNET_VARIANTS:
            msg = f"Unknown backbone {backbone!r}; choose one of: {', '.join(UNIREPLKNET_VARIANTS)}."
            raise ValueError(msg)
        check_model_arguments(
            dims,
            depths,
            kernel_sizes,
            gaussian_kernel_size,
            gaussian_sigma,
            score_ratio,
            choices={
                "score_mode": (score_mode, ScoreMode),
                "map_combination": (map_combination, MapCombination),
                "smoothing": (smoothing, Smoothing),
            },
        )
        variant = UNIREPLKNET_VARIANTS[backbone]
        self.backbone = backbone
        self.dims = tuple(dims or variant["dims"])
        self.depths = tuple(depths or variant["depths"])
        kernel_sizes = kernel_sizes or default_kernel_sizes(self.depths)
        self.encoder = UniRepLKNetEncoder(self.dims, self.depths, kernel_sizes)
        self.bottleneck = Bottleneck(self.dims)
        self.decoder = Decoder(self.dims, self.depths, kernel_sizes)
        self.anomaly_map_generator = AnomalyMapGenerator(
            gaussian_kernel_size,
            gaussian_sigma,
            score_mode,
            score_ratio,
            map_combination,
            smoothing,
        )
        self.encoder.requires_grad_(requires_grad=False)
        self.encoder.eval()
        self.is_reparameterized = False
        #: Compute the frozen encoder's features with a fused copy of it while this model is not fused (same
        #: values to float rounding, ~2.5x faster on CPU; for N 33 MiB, plus 27 MiB of oneDNN-layout weights
        #: on CPU). ``False`` runs ``self.encoder`` itself, e.g. when forward hooks on its modules must run.
        self.fuse_frozen_encoder = True
        # (weights key, fused copy of the encoder); a plain list keeps it out of the module tree and state dict.
        self._fused_encoder: list[tuple[tuple, UniRepLKNetEncoder]] = []

    def train(self, mode: bool = True) -> "MiniMaxADModel":
        """Set training mode; the frozen encoder always stays in eval mode."""
        super().train(mode)
        self.encoder.eval()
        return self

    def extract_features(self, images: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Encoder features (no gradient) and the decoder's reconstructions of them, level by level.

        Raises:
            ValueError: ``images`` is not ``(B, in_chans, H, W)`` with sides of at least ``MIN_INPUT_SIZE``.
            TypeError: ``images`` is not floating point, or of another dtype than the weights where autocast
                does not cast it (float64, or no autocast).
        """
        self._check_input(images)
        _warn_if_bf16_is_emulated(images)
        # The encoder is frozen: no graph through it (same updates, faster, less memory).
        with torch.no_grad():
            encoder_features = self._frozen_encoder()(images)
        decoder_features = self.decoder(self.bottleneck(encoder_features))
        decoder_features = [
            d if d.shape[-2:] == e.shape[-2:] else F.interpolate(d, size=e.shape[-2:], mode="nearest")
            for e, d in zip(encoder_features, decoder_features, strict=True)
        ]
        return encoder_features, decoder_features

    def forward(self, images: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]] | InferenceBatch:
        """Features for the loss (training) or anomaly map and score (eval)."""
        if self.training and self.is_reparameterized:
            msg = "A re-parameterized (fused) MiniMaxAD model is for inference only; it cannot be trained."
            raise RuntimeError(msg)
        encoder_features, decoder_features = self.extract_features(images)
        if self.training:
            return encoder_features, decoder_features
        # Maps and scores in float32 under mixed precision too: in bf16 a 64x64 map keeps about 170 distinct
        # values instead of 8,000, which ties pixels in AUROC and AUPRO.
        autocast = images.device.type if torch.is_autocast_enabled(images.device.type) else None
        with torch.autocast(autocast, enabled=False) if autocast else contextlib.nullcontext():
            anomaly_map, pred_score = self.anomaly_map_generator(
                _as_float32(encoder_features),
                _as_float32(decoder_features),
                images.shape[-2:],
            )
        return InferenceBatch(pred_score=pred_score, anomaly_map=anomaly_map)

    def _check_input(self, images: torch.Tensor) -> None:
        shape = tuple(images.shape)
        if images.dim() != 4:
            msg = (
                f"MiniMaxAD expects images of shape (B, {self.encoder.in_chans}, H, W), got a tensor of shape {shape}."
            )
            raise ValueError(msg)
        if shape[1] != self.encoder.in_chans:
            msg = f"MiniMaxAD expects {self.encoder.in_chans}-channel images, got shape {shape}."
            raise ValueError(msg)
        if min(shape[2:]) < MIN_INPUT_SIZE:
            msg = f"MiniMaxAD needs images of at least {MIN_INPUT_SIZE}x{MIN_INPUT_SIZE} pixels, got shape {shape}."
            raise ValueError(msg)
        weight_dtype = self.encoder.downsample_layers[0][0].weight.dtype
        if not images.is_floating_point():
            msg = (
                f"MiniMaxAD expects float images, got {images.dtype}; convert them (images.float() / 255, then "
                "normalise as the pre-processor does)."
            )
            raise TypeError(msg)
        # Autocast casts float16/bfloat16/float32 operands itself, never float64 ones; without this check torch's
        # error would only say "Input type (double) and bias type ... should be the same".
        cast_by_autocast = torch.is_autocast_enabled(images.device.type) and images.dtype != torch.float64
        if images.dtype != weight_dtype and not cast_by_autocast:
            msg = f"MiniMaxAD's weights are {weight_dtype}, but the images are {images.dtype}: convert one of them."
            if torch.is_autocast_enabled(images.device.type):
                msg += " Autocast does not cast float64 images."
            raise TypeError(msg)

    @torch.no_grad()
    def reparameterize(self, fast_cpu: bool = True) -> "MiniMaxADModel":
        """Fuse branches and BNs of encoder, bottleneck and decoder for inference (eval-mode outputs unchanged).

        Args:
            fast_cpu (bool): Let the fused blocks and dense convs use the oneDNN kernels of
                :mod:`~anomalib_minimaxad.components.fast_cpu` in eager float32 CPU inference
                (same outputs, about 2x faster, with a oneDNN-layout copy of most weights: ~107 MB more for
                MiniMaxAD-N) and
                under bf16 autocast where oneDNN has bf16 kernels (bf16 copies of the weights);
                ``False`` keeps standard torch operations everywhere.
        """
        for module in (self.encoder, self.bottleneck, self.decoder):
            module.reparameterize()
        _prepare_fused(self, fast_cpu)
        self._fused_encoder.clear()
        self.is_reparameterized = True
        return self.eval()

    def fused_copy(self, fast_cpu: bool = True) -> "MiniMaxADModel":
        """A re-parameterized copy for inference (see :meth:`reparameterize`); this model stays trainable."""
        return copy.deepcopy(self, {id(self._fused_encoder): []}).reparameterize(fast_cpu=fast_cpu)

    def _frozen_encoder(self) -> nn.Module:
        """The encoder as it computes features: with ``fuse_frozen_encoder`` and the model not fused, a fused copy.

        The encoder is frozen and always in eval mode, so a re-parameterized copy computes its features (to
        float rounding) in training and un-fused evaluation too, about 2.5x faster on CPU. The copy is remade
        whenever an encoder tensor changes in place (``load_state_dict``), is replaced or moves to another
        device or dtype: its key holds each tensor's :func:`~.components.fast_cpu.version_key`, device and
        dtype. Compilers, tracers and exporters get the encoder itself, and so do encoders of inference
        tensors (made under ``torch.inference_mode``), which have no version counter.
        """
        if not self.fuse_frozen_encoder or self.is_reparameterized:
            return self.encoder
        if torch.compiler.is_compiling() or torch.jit.is_tracing():
            return self.encoder
        versions = []
        for tensor in self.encoder.state_dict(keep_vars=True).values():
            version = fast_cpu_kernels.version_key(tensor)
            if version is None:
                return self.encoder
            versions.append((*version, tensor.device, tensor.dtype))
        key = tuple(versions)
        if not self._fused_encoder or self._fused_encoder[0][0] != key:
            self._fused_encoder[:] = []  # drop the old copy before making the new one
            fused = copy.deepcopy(self.encoder)
            fused.reparameterize()
            _prepare_fused(fused, fast_cpu=True)
            self._fused_encoder[:] = [(key, fused)]
        return self._fused_encoder[0][1]

    def load_pretrained_encoder(self, pre_trained: str | Path | bool = True) -> str:
        """Load ImageNet UniRepLKNet weights into the encoder.

        Args:
            pre_trained (str | Path | bool): Path to the checkpoint, or ``True`` to look in ``$MINIMAXAD_WEIGHTS_DIR``
                and then on the Hugging Face hub.

        Returns:
            Where the weights came from.

        Raises:
            CheckpointError: The file is unreadable or does not fit (lists the keys).
            PretrainedWeightsUnavailableError: Offline with no local file; says where to put it.
        """
        self._refuse_if_fused()
        state_dict, source = resolve_imagenet_state_dict(self.backbone, pre_trained)
        # norm0-2 are not in ImageNet checkpoints: they keep weight 1, bias 0 as in the authors' code.
        ignored = load_module_state(self.encoder, state_dict, source, optional_prefixes=("norm0.", "norm1.", "norm2."))
        if ignored:
            logger.info(
                "Ignored %d tensors of %s the encoder does not use: %s",
                len(ignored),
                source,
                _prefixes(ignored),
            )
        logger.info("Loaded ImageNet encoder weights from %s", source)
        return source

    def load_authors_checkpoint(self, path: str | Path) -> None:
        """Load a trained MiniMaxAD checkpoint of the authors (``{"bn": ..., "decoder": ...}``).

        Raises:
            CheckpointError: The file is unreadable, not of that format, or does not fit.
        """
        self._refuse_if_fused()
        checkpoint = read_checkpoint(path)
        if not isinstance(checkpoint, dict) or not {"bn", "decoder"} <= checkpoint.keys():
            found = sorted(checkpoint) if isinstance(checkpoint, dict) else type(checkpoint).__name__
            msg = f"{path} is not a MiniMaxAD checkpoint: expected keys 'bn' and 'decoder', found {found}."
            raise CheckpointError(msg)
        # All or nothing: a decoder that does not fit must not leave the bottleneck already replaced.
        previous = [(module, copy.deepcopy(module.state_dict())) for module in (self.bottleneck, self.decoder)]
        try:
            _load_authors_part(self.bottleneck, checkpoint["bn"], f"{path} [bn]")
            _load_authors_part(self.decoder, checkpoint["decoder"], f"{path} [decoder]")
        except CheckpointError:
            for module, state_dict in previous:
                module.load_state_dict(state_dict)
            raise

    def _refuse_if_fused(self) -> None:
        if self.is_reparameterized:
            msg = "Load weights before reparameterize(): the fused model has another state-dict layout."
            raise RuntimeError(msg)


def _load_authors_part(module: nn.Module, part: object, source: str) -> None:
    """Load one part of an authors' checkpoint (``bn`` or ``decoder``) into ``module``, refusing extra tensors.

    Raises:
        CheckpointError: naming ``source``, when the part holds no state dict or does not fit ``module`` exactly.
    """
    state_dict = unwrap_state_dict(part)
    if state_dict is None:
        msg = f"{source} holds no state dict."
        raise CheckpointError(msg)
    ignored = load_module_state(module, state_dict, source)
    if ignored:
        msg = f"{source} has tensors {type(module).__name__} does not have: {ignored[:20]}"
        raise CheckpointError(msg)


def _warn_if_bf16_is_emulated(images: torch.Tensor) -> None:
    """Warn (once per call site, as ``warnings`` does) when CPU bf16 autocast has no bf16 kernels to run on."""
    if images.device.type != "cpu" or not torch.is_autocast_enabled("cpu"):
        return
    if torch.get_autocast_dtype("cpu") == torch.bfloat16 and not fast_cpu_kernels.has_bf16_kernels():
        warnings.warn(
            "bf16 autocast on a CPU without oneDNN bf16 kernels (no AVX-512): MiniMaxAD runs about 12x slower than "
            'in float32 here. Use precision="32" (the default) on this CPU.',
            UserWarning,
            stacklevel=3,
        )


def _as_float32(features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """The features in float32; float32 ones untouched (no cast node in exported graphs)."""
    return [f if f.dtype == torch.float32 else f.float() for f in features]


def _prefixes(keys: Sequence[str]) -> str:
    """Summarise ignored keys by their first two name parts (``stages.3``, ``head.weight``)."""
    return ", ".join(sorted({".".join(k.split(".")[:2]) for k in keys}))


def _use_fast_cpu_convs(root: nn.Module) -> None:
    """Swap the dense and transposed convs outside the blocks for their fast-CPU subclasses (same parameters).

    ``nn.Conv2d`` becomes :class:`FastCPUConv2d`, ``nn.ConvTranspose2d`` :class:`FastCPUConvTranspose2d`.
    The blocks' own convs are depthwise or run inside :func:`~.components.fast_cpu.fused_block_forward`.
    """
    for name, child in root.named_children():
        if type(child) is nn.Conv2d and child.groups == 1:
            setattr(root, name, FastCPUConv2d.sharing_parameters(child))
        elif type(child) is nn.ConvTranspose2d:
            setattr(root, name, FastCPUConvTranspose2d.sharing_parameters(child))
        elif not isinstance(child, UniRepLKNetBlock):
            _use_fast_cpu_convs(child)


def _prepare_fused(root: nn.Module, fast_cpu: bool) -> None:
    """Set up a re-parameterized network for the fast CPU path (``fast_cpu``) or for standard torch ops."""
    _use_fast_cpu_convs(root)
    for module in root.modules():
        if isinstance(module, UniRepLKNetBlock | FastCPUConv2d | FastCPUConvTranspose2d):
            module.fast_cpu = fast_cpu
    if fast_cpu and fast_cpu_kernels.is_available() and next(root.parameters()).device.type == "cpu":
        # Channels-last weights for the fast CPU path, whose activations are channels-last: oneDNN would
        # otherwise re-order an NCHW weight at every call. The 13x13 depthwise weights keep NCHW strides:
        # those convolutions run faster NCHW.
        for conv in root.modules():
            if isinstance(conv, nn.Conv2d | nn.ConvTranspose2d) and (conv.groups == 1 or conv.kernel_size[0] < 7):
                conv.weight.data = conv.weight.data.contiguous(memory_format=torch.channels_last)

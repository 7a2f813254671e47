# Copyright (C) 2026 anomalib-minimaxad developers
# SPDX-License-Identifier: Apache-2.0
"""MiniMaxAD: A Lightweight Autoencoder for Feature-Rich Anomaly Detection.

This module implements MiniMaxAD as described in
`Wang et al. (2024) <https://arxiv.org/abs/2405.09933>`_ for anomalib.

The model consists of:

- a frozen ImageNet-pretrained UniRepLKNet encoder (stages 1-3),
- a trainable bottleneck that fuses the three scales,
- a trainable decoder, the encoder mirrored, that reconstructs the features,
- the anomaly map ``1 - cos(f_E, f_D)`` per scale, averaged and smoothed.

Two variants differ by their loss: ``loss="adc"`` (MiniMaxAD-fr, adaptive hard mining,
for feature-rich data such as unified multi-class training) and ``loss="global"``
(MiniMaxAD-fp, the global cosine loss).

Example:
    >>> from anomalib.data import MVTecAD
    >>> from anomalib.engine import Engine
    >>> from anomalib_minimaxad import MiniMaxAD
    >>> datamodule = MVTecAD(category="bottle")
    >>> model = MiniMaxAD(loss="adc")
    >>> engine = Engine(max_epochs=100)
    >>> engine.fit(model=model, datamodule=datamodule)  # doctest: +SKIP
    >>> predictions = engine.predict(model=model, datamodule=datamodule)  # doctest: +SKIP

See Also:
    - :class:`MiniMaxAD`: Lightning implementation of the model
    - :class:`~anomalib_minimaxad.torch_model.MiniMaxADModel`: PyTorch implementation
    - :class:`~anomalib_minimaxad.loss.ADCLoss`: the ADC loss
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from anomalib import LearningType
from anomalib.data import Batch
from anomalib.metrics import AUPR, AUPRO, AUROC, Evaluator, F1Score
from anomalib.models.components import AnomalibModule
from anomalib.post_processing import PostProcessor
from anomalib.pre_processing import PreProcessor
from anomalib.visualization import Visualizer
from lightning.pytorch.utilities.types import STEP_OUTPUT, OptimizerLRSchedulerConfig
from torch import optim

from .anomaly_map import ScoreMode
from .components.unireplknet import UNIREPLKNET_VARIANTS
from .loss import LossType, build_loss
from .torch_model import MiniMaxADModel

__all__ = ["MiniMaxAD"]

logger = logging.getLogger(__name__)

#: ONNX opset of exports: the lowest one torch's dynamo exporter writes natively.
ONNX_OPSET = 18


class MiniMaxAD(AnomalibModule):
    """Lightning module of MiniMaxAD.

    The encoder's ImageNet weights are fetched when training starts from scratch
    (``on_fit_start``), never at construction and never when a checkpoint is restored:
    ``anomalib test|predict|export --ckpt_path ...`` work offline, since the checkpoint
    carries the frozen encoder too.

    Args:
        backbone: UniRepLKNet size of the encoder (``unireplknet_a/f/p/n/t/s``).
            Defaults to ``"unireplknet_n"`` as in the paper.
        pre_trained: ``True`` to load the ImageNet weights (explicit file, else
            ``$MINIMAXAD_WEIGHTS_DIR``, else the Hugging Face hub), a path to that checkpoint,
            or ``False`` for a randomly initialised encoder. Defaults to ``True``.
        loss: ``"adc"`` (MiniMaxAD-fr), ``"global"`` (MiniMaxAD-fp), or the ablation losses
            ``"local"`` and ``"local_hm"``. Defaults to ``"adc"``.
        p_hard: Hard-mining quantile of the ADC loss. Defaults to ``0.9999``.
        p_lim: Fallback quantile of the ADC loss. Defaults to ``0.9995``.
        lr: AdamW learning rate. Defaults to ``5e-3``.
        betas: AdamW betas. Defaults to ``(0.9, 0.999)``.
        weight_decay: AdamW weight decay. Defaults to ``1e-5`` as in the authors' code
            (the paper states ``5e-5``).
        lr_gamma: ExponentialLR decay per epoch. Defaults to ``0.995``.
        score_mode: Image score from the smoothed map: ``"top_ratio"`` (mean of the top
            ``score_ratio`` pixels) or ``"max"``. Defaults to ``"top_ratio"``.
        score_ratio: Fraction of pixels averaged for the image score. Defaults to ``0.01``.
        gaussian_kernel_size: Side of the Gaussian that smooths the map. Defaults to ``5``.
        gaussian_sigma: Sigma of that Gaussian. Defaults to ``4.0``.
        dims: Override of the backbone's 4 widths (small models for tests). Defaults to ``None``.
        depths: Override of the backbone's 4 depths. Defaults to ``None``.
        pre_processor: Pre-processor instance or flag to use the default
            (resize to 256x256, ImageNet normalisation). Defaults to ``True``.
        post_processor: Post-processor instance or flag to use the default. Defaults to ``True``.
        evaluator: Evaluator instance or flag to use the default (image AUROC/F1, pixel
            AUROC/F1, AUPRO, pixel AUPR). Defaults to ``True``.
        visualizer: Visualizer instance or flag to use the default. Defaults to ``True``.

    Example:
        >>> from anomalib_minimaxad import MiniMaxAD
        >>> model = MiniMaxAD(pre_trained=False, dims=(16, 32, 64, 128))
        >>> model.learning_type.value
        'one_class'
    """

    def __init__(
        self,
        backbone: str = "unireplknet_n",
        pre_trained: bool | str = True,
        loss: LossType | str = LossType.ADC,
        p_hard: float = 0.9999,
        p_lim: float = 0.9995,
        lr: float = 5e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        weight_decay: float = 1e-5,
        lr_gamma: float = 0.995,
        score_mode: ScoreMode | str = ScoreMode.TOP_RATIO,
        score_ratio: float = 0.01,
        gaussian_kernel_size: int = 5,
        gaussian_sigma: float = 4.0,
        dims: Sequence[int] | None = None,
        depths: Sequence[int] | None = None,
        pre_processor: PreProcessor | bool = True,
        post_processor: PostProcessor | bool = True,
        evaluator: Evaluator | bool = True,
        visualizer: Visualizer | bool = True,
    ) -> None:
        super().__init__(
            pre_processor=pre_processor,
            post_processor=post_processor,
            evaluator=evaluator,
            visualizer=visualizer,
        )
        self.pre_trained = pre_trained
        self.lr = lr
        self.betas = tuple(betas)
        self.weight_decay = weight_decay
        self.lr_gamma = lr_gamma
        self.model = MiniMaxADModel(
            backbone=backbone,
            dims=dims,
            depths=depths,
            gaussian_kernel_size=gaussian_kernel_size,
            gaussian_sigma=gaussian_sigma,
            score_mode=score_mode,
            score_ratio=score_ratio,
        )
        self.loss = build_loss(loss, p_hard=p_hard, p_lim=p_lim)
        # Set when the encoder got its weights from a restored checkpoint or the ImageNet file.
        self._encoder_weights_ready = not pre_trained

    @classmethod
    def checkpoint_safe_globals(cls) -> Sequence[Any]:
        """Allowlist our enums stored in ``hyper_parameters`` for ``weights_only`` loads."""
        return (LossType, ScoreMode)

    def on_fit_start(self) -> None:
        """Load the ImageNet encoder weights when training starts from scratch."""
        if not self._encoder_weights_ready:
            self.model.load_pretrained_encoder(self.pre_trained)
            self._encoder_weights_ready = True

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse checkpoints of another backbone size; the restored encoder needs no download."""
        saved = checkpoint.get("hyper_parameters", {})
        saved_size = (saved.get("backbone", "unireplknet_n"), _dims_or_default(saved))
        own_size = (self.model.backbone, self.model.dims)
        if saved_size != own_size:
            msg = (
                f"The checkpoint holds a MiniMaxAD with backbone {saved_size[0]} and widths {saved_size[1]}, "
                f"but this model has backbone {own_size[0]} and widths {own_size[1]}. "
                "Build the model with the checkpoint's backbone (e.g. --model.backbone) and dims."
            )
            raise ValueError(msg)
        super().on_load_checkpoint(checkpoint)
        self._encoder_weights_ready = True

    def configure_optimizers(self) -> OptimizerLRSchedulerConfig:
        """AdamW on bottleneck and decoder, with ExponentialLR stepped once per epoch."""
        parameters = [*self.model.bottleneck.parameters(), *self.model.decoder.parameters()]
        optimizer = optim.AdamW(parameters, lr=self.lr, betas=self.betas, weight_decay=self.weight_decay)
        scheduler = optim.lr_scheduler.ExponentialLR(optimizer, gamma=self.lr_gamma)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    def training_step(self, batch: Batch, *args: Any, **kwargs: Any) -> STEP_OUTPUT:  # noqa: ANN401
        """Reconstruct the encoder features and return the loss."""
        del args, kwargs  # These variables are not used.
        encoder_features, decoder_features = self.model(batch.image)
        loss = self.loss(encoder_features, decoder_features, batch.image.shape[-2:])
        self.log("train_loss", loss.item(), on_epoch=True, prog_bar=True, logger=True)
        return {"loss": loss}

    def validation_step(self, batch: Batch, *args: Any, **kwargs: Any) -> STEP_OUTPUT:  # noqa: ANN401
        """Anomaly maps and scores of a validation batch."""
        del args, kwargs  # These variables are not used.
        predictions = self.model(batch.image)
        return batch.update(**predictions._asdict())

    def reparameterize(self) -> MiniMaxAD:
        """Fuse the network in place for inference (training is no longer possible afterwards)."""
        self.model.reparameterize()
        return self

    def fused_copy(self) -> MiniMaxAD:
        """A re-parameterized copy for export; this module stays trainable."""
        trainer = self._trainer
        self._trainer = None  # the copy needs no trainer, and a trainer does not deep-copy
        try:
            fused = copy.deepcopy(self)
        finally:
            self._trainer = trainer
        return fused.reparameterize()

    def to_torch(self, export_root: Path | str, model_file_name: str = "model") -> Path:
        """Export the fused model (see :meth:`AnomalibModule.to_torch`)."""
        if not self.model.is_reparameterized:
            return self.fused_copy().to_torch(export_root, model_file_name)
        return super().to_torch(export_root, model_file_name)

    def to_onnx(self, *args: Any, **kwargs: Any) -> Path:  # noqa: ANN401
        """Export the fused model to ONNX (see :meth:`AnomalibModule.to_onnx`)."""
        if not self.model.is_reparameterized:
            return self.fused_copy().to_onnx(*args, **kwargs)
        # anomalib asks for opset 14, which torch's exporter can only reach by a down-conversion that
        # fails on this graph (and then keeps 18 anyway, with a traceback in the log).
        kwargs.setdefault("opset_version", ONNX_OPSET)
        return super().to_onnx(*args, **kwargs)

    def to_openvino(self, *args: Any, **kwargs: Any) -> Path:  # noqa: ANN401
        """Export the fused model to OpenVINO (see :meth:`AnomalibModule.to_openvino`)."""
        if not self.model.is_reparameterized:
            return self.fused_copy().to_openvino(*args, **kwargs)
        return super().to_openvino(*args, **kwargs)

    @staticmethod
    def configure_evaluator() -> Evaluator:
        """Image AUROC and F1 (val and test); pixel AUROC, F1, AUPRO and AUPR (test), as in the paper's tables."""
        val_metrics = [
            AUROC(fields=["pred_score", "gt_label"], prefix="image_"),
            AUROC(fields=["anomaly_map", "gt_mask"], prefix="pixel_", strict=False),
        ]
        test_metrics = [
            AUROC(fields=["pred_score", "gt_label"], prefix="image_"),
            F1Score(fields=["pred_label", "gt_label"], prefix="image_"),
            AUROC(fields=["anomaly_map", "gt_mask"], prefix="pixel_", strict=False),
            F1Score(fields=["pred_mask", "gt_mask"], prefix="pixel_", strict=False),
            AUPRO(fields=["anomaly_map", "gt_mask"], prefix="pixel_", strict=False),
            AUPR(fields=["anomaly_map", "gt_mask"], prefix="pixel_", strict=False),
        ]
        return Evaluator(val_metrics=val_metrics, test_metrics=test_metrics)

    @property
    def trainer_arguments(self) -> dict[str, Any]:
        """No gradient clipping and no sanity validation, as the authors train."""
        return {"gradient_clip_val": 0, "num_sanity_val_steps": 0}

    @property
    def learning_type(self) -> LearningType:
        """MiniMaxAD learns from normal images only."""
        return LearningType.ONE_CLASS


def _dims_or_default(hyper_parameters: dict[str, Any]) -> tuple[int, ...]:
    """Widths a saved model was built with."""
    if hyper_parameters.get("dims"):
        return tuple(hyper_parameters["dims"])
    return tuple(UNIREPLKNET_VARIANTS[hyper_parameters.get("backbone", "unireplknet_n")]["dims"])

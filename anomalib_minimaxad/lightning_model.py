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

import copy
import logging
import math
import pickle  # noqa: S403 - only for its UnpicklingError: checkpoints are read with weights_only=True
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from anomalib import LearningType, TaskType
from anomalib.data import AnomalibDataModule, Batch
from anomalib.deploy import CompressionType
from anomalib.metrics import AUPR, AUPRO, AUROC, Evaluator, F1Score
from anomalib.models.components import AnomalibModule
from anomalib.post_processing import PostProcessor
from anomalib.pre_processing import PreProcessor
from anomalib.utils.serialization import anomalib_safe_globals
from anomalib.visualization import Visualizer
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities.types import STEP_OUTPUT, OptimizerLRSchedulerConfig
from torch import optim
from torchmetrics import Metric

from .anomaly_map import MapCombination, ScoreMode, Smoothing
from .components.networks import UNIREPLKNET_VARIANTS
from .components.pretrained import CheckpointError, read_checkpoint
from .fault_tolerance import ExactResume, export_atomically
from .loss import LossType, build_loss
from .metrics import AuproMode, PerImageAUPRO, StreamingAUPR, StreamingAUPRO, StreamingAUROC, StreamingPerImageAUPRO
from .model_info import model_info, write_model_info
from .post_processing import StreamingPostProcessor
from .quantization import QUANTIZED_COMPRESSIONS, export_quantized_openvino
from .torch_model import MiniMaxADModel
from .validation import check_choice, check_optimizer_arguments

__all__ = ["MiniMaxAD"]

#: Feature levels whose ``1 - cos`` maps are combined.
_NUM_LEVELS = 3
#: Margin of :meth:`MiniMaxAD.raw_value_range` around the exact range.
_RANGE_MARGIN = 2.0**-10
#: Histogram bins per unit of score in test: the metrics' default resolution over the normalised ``[0, 1]``.
_BINS_PER_UNIT = 2**16

logger = logging.getLogger(__name__)

#: ONNX opset of exports: the lowest one torch's dynamo exporter writes natively.
ONNX_OPSET = 18

#: What Lightning raises when a ``ckpt_path`` is no Lightning checkpoint: an unreadable file, or one without
#: ``pytorch-lightning_version`` (``KeyError`` in its checkpoint migration).
_CHECKPOINT_LOAD_ERRORS = (KeyError, pickle.UnpicklingError, EOFError, zipfile.BadZipFile, RuntimeError, OSError)


class MiniMaxAD(AnomalibModule):  # noqa: PLR0904 - Lightning's hooks and anomalib's export methods
    """Lightning module of MiniMaxAD.

    The encoder's ImageNet weights are fetched when training starts from scratch
    (``on_fit_start``), never at construction and never when a checkpoint is restored:
    ``anomalib test|predict|export --ckpt_path ...`` work offline, since the checkpoint
    carries the frozen encoder too.

    Args:
        backbone (str): UniRepLKNet size of the encoder (``unireplknet_a/f/p/n/t/s``).
            Defaults to ``"unireplknet_n"`` as in the paper.
        pre_trained (bool | str): ``True`` to load the ImageNet weights (explicit file, else
            ``$MINIMAXAD_WEIGHTS_DIR``, else the Hugging Face hub), a path to that checkpoint,
            or ``False`` for a randomly initialised encoder. Defaults to ``True``.
        loss (LossType | str): ``"adc"`` (MiniMaxAD-fr), ``"global"`` (MiniMaxAD-fp), or the ablation losses
            ``"local"`` and ``"local_hm"``. Defaults to ``"adc"``.
        p_hard (float): Hard-mining quantile of the ADC loss. Defaults to ``0.9999``.
        p_lim (float): Fallback quantile of the ADC loss. Defaults to ``0.9995``.
        lr (float): AdamW learning rate. Defaults to ``5e-3``.
        betas (tuple[float, float]): AdamW betas. Defaults to ``(0.9, 0.999)``.
        weight_decay (float): AdamW weight decay. Defaults to ``1e-5`` as in the authors' code
            (the paper states ``5e-5``).
        lr_gamma (float): ExponentialLR decay per epoch. Defaults to ``0.995``.
        score_mode (ScoreMode | str): Image score from the smoothed map: ``"top_ratio"`` (mean of the top
            ``score_ratio`` pixels) or ``"max"``. Defaults to ``"top_ratio"``.
        score_ratio (float): Fraction of pixels averaged for the image score. Defaults to ``0.01``.
        gaussian_kernel_size (int): Side of the Gaussian that smooths the map. Defaults to ``5``.
        gaussian_sigma (float): Sigma of that Gaussian. Defaults to ``4.0``.
        map_combination (MapCombination | str): ``"mean"`` or ``"sum"`` of the per-level maps. Defaults to ``"mean"``
            (the authors' ``evaluation_batch``; their AeBAD-S ``evaluate`` sums).
        smoothing (Smoothing | str): ``"kernel"`` (zero-padded ``gaussian_kernel_size`` Gaussian) or ``"full"`` (scipy's
            ``gaussian_filter(sigma)`` with reflect borders, the AeBAD-S protocol). Defaults to ``"kernel"``.
        aupro (AuproMode | str): Test AUPRO of the default evaluator: ``"dataset"`` (anomalib's, over the whole test
            set) or
            ``"per_image"`` (averaged over the anomalous images, the AeBAD-S protocol, see
            :class:`~anomalib_minimaxad.metrics.PerImageAUPRO`). Defaults to ``"dataset"``.
        streaming_metrics (bool): Compute the default evaluator's AUROC, AUPR and AUPRO and the default post-processor's
            adaptive thresholds from histograms (:mod:`anomalib_minimaxad.metrics`: memory that does not grow with
            the test set, within 1e-4 of the exact values, thresholds within one bin) instead of anomalib's exact
            metrics, which keep every map until the epoch ends (``--model.streaming_metrics false`` on the CLI).
            Defaults to ``True``.
        dims (Sequence[int] | None): Override of the backbone's 4 widths (small models for tests). Defaults to ``None``.
        depths (Sequence[int] | None): Override of the backbone's 4 depths. Defaults to ``None``.
        pre_processor (PreProcessor | bool): Pre-processor instance or flag to use the default
            (resize to 256x256, ImageNet normalisation). Defaults to ``True``.
        post_processor (PostProcessor | bool): Post-processor instance or flag to use the default. Defaults to ``True``.
        evaluator (Evaluator | bool): Evaluator instance or flag to use the default (image AUROC/F1, pixel
            AUROC/F1, AUPRO, pixel AUPR). Defaults to ``True``.
        visualizer (Visualizer | bool): Visualizer instance or flag to use the default. Defaults to ``True``.

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
        map_combination: MapCombination | str = MapCombination.MEAN,
        smoothing: Smoothing | str = Smoothing.KERNEL,
        aupro: AuproMode | str = AuproMode.DATASET,
        streaming_metrics: bool = True,
        dims: Sequence[int] | None = None,
        depths: Sequence[int] | None = None,
        pre_processor: PreProcessor | bool = True,
        post_processor: PostProcessor | bool = True,
        evaluator: Evaluator | bool = True,
        visualizer: Visualizer | bool = True,
    ) -> None:
        check_optimizer_arguments(lr, betas, weight_decay, lr_gamma)
        check_choice("aupro", aupro, AuproMode)
        normalised = post_processor is not False and getattr(post_processor, "enable_normalization", True)
        if evaluator is True:
            evaluator = self.configure_evaluator(aupro, streaming_metrics, map_combination, normalised)
        if post_processor is True:
            post_processor = self.configure_post_processor(streaming_metrics, map_combination)
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
            map_combination=map_combination,
            smoothing=smoothing,
        )
        self.loss = build_loss(loss, p_hard=p_hard, p_lim=p_lim)
        # Set when the encoder got its weights from a restored checkpoint or the ImageNet file.
        self._encoder_weights_ready = not pre_trained
        self._inference_models: list[MiniMaxADModel] = []

    @classmethod
    def checkpoint_safe_globals(cls) -> Sequence[Any]:
        """Allowlist our enums stored in ``hyper_parameters`` for ``weights_only`` loads."""
        return (LossType, ScoreMode, MapCombination, Smoothing, AuproMode)

    def configure_callbacks(self) -> list[Callback]:
        """The component callbacks of anomalib, and :class:`~anomalib_minimaxad.fault_tolerance.ExactResume`."""
        components = super().configure_callbacks()
        components = [components] if isinstance(components, Callback) else list(components)
        return [*components, ExactResume(), CheckpointFormatCheck()]

    @classmethod
    def load_from_checkpoint(
        cls,
        checkpoint_path: str | Path,
        map_location: str | torch.device | dict[str, str] | None = None,
        hparams_file: str | Path | None = None,
        strict: bool | None = None,
        weights_only: bool = True,
        **kwargs: Any,  # noqa: ANN401
    ) -> "MiniMaxAD":
        """Load a Lightning checkpoint (see :meth:`AnomalibModule.load_from_checkpoint`).

        Raises:
            CheckpointError: naming the file, when it is no Lightning checkpoint: unreadable with
                ``weights_only=True`` (truncated, another format, or pickled code, which is never run), or the
                authors' ``{"bn", "decoder"}`` format (load that with ``MiniMaxADModel.load_authors_checkpoint``).
        """
        try:
            return super().load_from_checkpoint(
                checkpoint_path,
                map_location=map_location,
                hparams_file=hparams_file,
                strict=strict,
                weights_only=weights_only,
                **kwargs,
            )
        except _CHECKPOINT_LOAD_ERRORS as error:
            problem = foreign_checkpoint_problem(checkpoint_path)
            if problem is None:
                raise
            raise CheckpointError(problem) from error

    def on_fit_start(self) -> None:
        """Load the ImageNet encoder weights when training starts from scratch."""
        if not self._encoder_weights_ready:
            self.model.load_pretrained_encoder(self.pre_trained)
            self._encoder_weights_ready = True

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse checkpoints of another network size; the restored encoder needs no download.

        The sizes are compared on the checkpoint's tensors, not its ``hyper_parameters``:
        ``load_from_checkpoint(path, dims=...)`` writes its keyword arguments over those before this
        hook runs, and a ``depths`` override changes the tensors as much as ``dims`` does.
        """
        state_dict = checkpoint.get("state_dict", {})
        saved_shapes = {
            key.removeprefix("model."): tuple(value.shape)
            for key, value in state_dict.items()
            if key.startswith("model.")
        }
        own_shapes = {key: tuple(value.shape) for key, value in self.model.state_dict().items()}
        if saved_shapes != own_shapes:
            saved_size = _size_from_state_dict(state_dict) or _size_from_hyper_parameters(
                checkpoint.get("hyper_parameters", {}),
            )
            msg = (
                f"The checkpoint holds a MiniMaxAD of {_describe_size(*saved_size)}, but this model has backbone "
                f"{self.model.backbone} with {_describe_size(self.model.dims, self.model.depths)}. Build the model "
                "with the checkpoint's size (--model.backbone, --model.dims, --model.depths), or load it with "
                "MiniMaxAD.load_from_checkpoint(path), which reads the size from the checkpoint."
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
        image = batch.image
        if image is None:
            msg = "MiniMaxAD trains on images, but the training batch has no image"
            raise ValueError(msg)
        encoder_features, decoder_features = self.model(image)
        loss = self.loss(encoder_features, decoder_features, image.shape[-2:])
        self.log("train_loss", loss.item(), on_epoch=True, prog_bar=True, logger=True)
        return {"loss": loss}

    def validation_step(self, batch: Batch, *args: Any, **kwargs: Any) -> STEP_OUTPUT:  # noqa: ANN401
        """Anomaly maps and scores of a validation batch."""
        del args, kwargs  # These variables are not used.
        predictions = self.model(batch.image)
        return batch.update(**predictions._asdict())

    def on_test_start(self) -> None:
        """Test with a fused copy of the network (same outputs within 1e-5, about 2x faster on CPU)."""
        self._use_fused_inference_model()

    def on_predict_start(self) -> None:
        """Predict with a fused copy of the network."""
        self._use_fused_inference_model()

    def on_test_end(self) -> None:
        """Drop the fused copy: the next training epoch changes the weights."""
        self._inference_models.clear()

    def on_predict_end(self) -> None:
        """Drop the fused copy."""
        self._inference_models.clear()

    def test_step(self, batch: Batch, *args: Any, **kwargs: Any) -> STEP_OUTPUT:  # noqa: ANN401
        """Anomaly maps and scores of a test batch, from the fused network."""
        del args, kwargs  # These variables are not used.
        return batch.update(**self._inference_model()(batch.image)._asdict())

    def predict_step(self, batch: Batch, *args: Any, **kwargs: Any) -> STEP_OUTPUT:  # noqa: ANN401
        """Anomaly maps and scores of a prediction batch, from the fused network."""
        del args, kwargs  # These variables are not used.
        return batch.update(**self._inference_model()(batch.image)._asdict())

    def _use_fused_inference_model(self) -> None:
        # A plain list keeps the copy out of the module tree: not in state_dict, checkpoints or exports.
        self._inference_models[:] = [self.model if self.model.is_reparameterized else self.model.fused_copy()]

    def _inference_model(self) -> MiniMaxADModel:
        return self._inference_models[0] if self._inference_models else self.model

    def reparameterize(self) -> "MiniMaxAD":
        """Fuse the network in place for inference (training is no longer possible afterwards)."""
        self.model.reparameterize()
        return self

    def fused_copy(self) -> "MiniMaxAD":
        """A re-parameterized copy for export; this module stays trainable."""
        try:
            trainer = self.trainer
        except RuntimeError:  # not attached to a trainer
            trainer = None
        # The copy needs no trainer, and a trainer does not deep-copy: the memo maps it to None.
        fused = copy.deepcopy(self, {id(trainer): None} if trainer is not None else None)
        return fused.reparameterize()

    def to_torch(self, export_root: Path | str, model_file_name: str = "model") -> Path:
        """Export a fused copy (see :meth:`AnomalibModule.to_torch`), atomically.

        The copy's parameters do not require grad, so what anomalib's ``TorchInferencer`` returns are plain
        tensors (``np.asarray(prediction.pred_score)`` works); this model keeps its own settings.
        """
        exported = self.fused_copy().requires_grad_(requires_grad=False)
        export = super(MiniMaxAD, exported).to_torch
        return export_atomically(lambda root: export(root, model_file_name), export_root)

    def to_onnx(self, export_root: Path | str, *args: Any, **kwargs: Any) -> Path:  # noqa: ANN401
        """Export the fused model to ONNX (see :meth:`AnomalibModule.to_onnx`), atomically."""
        if not self.model.is_reparameterized:
            return self.fused_copy().to_onnx(export_root, *args, **kwargs)
        # anomalib asks for opset 14, which torch's exporter can only reach by a down-conversion that
        # fails on this graph (and then keeps 18 anyway, with a traceback in the log).
        kwargs.setdefault("opset_version", ONNX_OPSET)
        export = super().to_onnx
        return export_atomically(lambda root: export(root, *args, **kwargs), export_root)

    def to_openvino(
        self,
        export_root: Path | str,
        model_file_name: str = "model",
        input_size: tuple[int, int] | None = None,
        compression_type: CompressionType | None = None,
        datamodule: AnomalibDataModule | None = None,
        metric: Metric | None = None,
        task: TaskType | None = None,
        max_drop: float = 0.01,
        ov_kwargs: dict[str, Any] | None = None,
        onnx_kwargs: dict[str, Any] | None = None,
    ) -> Path:
        """Export the fused model to OpenVINO (see :meth:`AnomalibModule.to_openvino`), atomically.

        ``INT8_PTQ`` and ``INT8_ACQ`` keep the anomaly-map smoothing in float (see
        :mod:`~anomalib_minimaxad.quantization`). The IR carries OpenVINO Model API's ``model_info`` (see
        :mod:`~anomalib_minimaxad.model_info`), whose ``task`` is ``task`` (default: segmentation, as
        MiniMaxAD's graph always returns scores, maps and masks).
        """
        if not self.model.is_reparameterized:
            return self.fused_copy().to_openvino(
                export_root,
                model_file_name,
                input_size,
                compression_type=compression_type,
                datamodule=datamodule,
                metric=metric,
                task=task,
                max_drop=max_drop,
                ov_kwargs=ov_kwargs,
                onnx_kwargs=onnx_kwargs,
            )
        export = super().to_openvino

        info = self._model_api_info(TaskType(task).value if task is not None else TaskType.SEGMENTATION.value)

        def export_float(root: Path, compression: CompressionType | None = None) -> Path:
            return export(root, model_file_name, input_size, compression, ov_kwargs=ov_kwargs, onnx_kwargs=onnx_kwargs)

        def export_with_info(root: Path) -> Path:
            if compression_type in QUANTIZED_COMPRESSIONS:
                xml_path = export_quantized_openvino(
                    export_float,
                    root,
                    CompressionType(compression_type),
                    datamodule,
                    metric,
                    max_drop,
                )
            else:
                xml_path = export_float(root, compression_type)
            if info is not None:
                write_model_info(xml_path, info)
            return xml_path

        return export_atomically(export_with_info, export_root)

    def _model_api_info(self, task: str) -> dict[str, str] | None:
        """OpenVINO Model API's metadata from the post-processor's thresholds and extremes.

        Returns ``None`` (and warns) when the model has no anomalib post-processor: its outputs are then raw.
        """
        post_processor = self.post_processor
        if not isinstance(post_processor, PostProcessor):
            logger.warning("No anomalib post-processor: the OpenVINO export carries no Model API model_info.")
            return None
        info = model_info(
            image_threshold=float(post_processor.image_threshold),
            pixel_threshold=float(post_processor.pixel_threshold),
            image_range=(float(post_processor.image_min), float(post_processor.image_max)),
            pixel_range=(float(post_processor.pixel_min), float(post_processor.pixel_max)),
            task=task,
        )
        raw_entries = {"raw_image_threshold", "raw_pixel_threshold", "image_min", "image_max", "pixel_min", "pixel_max"}
        if missing := sorted(raw_entries - info.keys()):
            logger.warning(
                "The post-processor has no finite %s (not validated yet): the OpenVINO export's Model API "
                "model_info leaves them out.",
                ", ".join(missing),
            )
        return info

    @staticmethod
    def raw_value_range(map_combination: MapCombination | str = MapCombination.MEAN) -> tuple[float, float]:
        """Range of the raw maps and scores: ``1 - cos`` per level, in ``[0, 2]``, averaged or summed over 3 levels.

        The range is widened by ``2**-10`` on both sides: ``1 - cos`` of equal vectors rounds to about ``-6e-8``
        or ``+6e-8``, not to 0.
        """
        high = 2.0 * (_NUM_LEVELS if MapCombination(map_combination) == MapCombination.SUM else 1)
        return -_RANGE_MARGIN, high + _RANGE_MARGIN

    @staticmethod
    def configure_evaluator(
        aupro: AuproMode | str = AuproMode.DATASET,
        streaming_metrics: bool = True,
        map_combination: MapCombination | str = MapCombination.MEAN,
        normalised: bool = True,
    ) -> Evaluator:
        """Image AUROC and F1 (val and test); pixel AUROC, F1, AUPRO and AUPR (test), as in the paper's tables.

        ``aupro="per_image"`` replaces the dataset-wide AUPRO by the per-image one (:class:`PerImageAUPRO`).
        ``streaming_metrics`` (default) computes AUROC, AUPR and AUPRO from histograms
        (:mod:`anomalib_minimaxad.metrics`) over the range of the scores they see: the raw maps in validation
        (:meth:`raw_value_range` of ``map_combination``); in test, with ``normalised``, both the post-processor's
        normalised ``[0, 1]`` and the raw range (a post-processor that has no statistics, because no validation
        ran, passes raw maps through), with ``2**16`` bins per unit so that ``[0, 1]`` keeps the default resolution.
        ``False`` gives anomalib's exact metrics.
        """
        raw_low, raw_high = MiniMaxAD.raw_value_range(map_combination)
        raw: dict[str, Any] = {"value_range": (raw_low, raw_high)} if streaming_metrics else {}
        low, high = min(raw_low, 0.0), max(raw_high, 1.0)
        either = {"value_range": (low, high), "num_bins": math.ceil((high - low) * _BINS_PER_UNIT)}
        tested = (either if normalised else raw) if streaming_metrics else {}
        auroc = StreamingAUROC if streaming_metrics else AUROC
        if AuproMode(aupro) == AuproMode.DATASET:
            aupro_metric = StreamingAUPRO if streaming_metrics else AUPRO
        else:
            aupro_metric = StreamingPerImageAUPRO if streaming_metrics else PerImageAUPRO
        aupr = StreamingAUPR if streaming_metrics else AUPR
        pixels: dict[str, Any] = {"fields": ["anomaly_map", "gt_mask"], "prefix": "pixel_", "strict": False}
        val_metrics = [
            auroc(fields=["pred_score", "gt_label"], prefix="image_", **raw),
            auroc(**pixels, **raw),
        ]
        test_metrics = [
            auroc(fields=["pred_score", "gt_label"], prefix="image_", **tested),
            F1Score(fields=["pred_label", "gt_label"], prefix="image_"),
            auroc(**pixels, **tested),
            # Streaming: no torchmetrics input check (a torch.unique of every mask), the streaming metrics check masks
            F1Score(
                fields=["pred_mask", "gt_mask"],
                prefix="pixel_",
                strict=False,
                validate_args=not streaming_metrics,
            ),
            aupro_metric(**pixels, **tested),
            aupr(**pixels, **tested),
        ]
        return Evaluator(val_metrics=val_metrics, test_metrics=test_metrics)

    def configure_post_processor(
        self,
        streaming_metrics: bool = True,
        map_combination: MapCombination | str = MapCombination.MEAN,
    ) -> PostProcessor:
        """The post-processor: anomalib's, with thresholds from raw-score histograms if ``streaming_metrics``."""
        if not streaming_metrics:
            return PostProcessor()
        return StreamingPostProcessor(value_range=self.raw_value_range(map_combination))

    @property
    def trainer_arguments(self) -> dict[str, Any]:
        """No gradient clipping and no sanity validation, as the authors train."""
        return {"gradient_clip_val": 0, "num_sanity_val_steps": 0}

    @property
    def learning_type(self) -> LearningType:
        """MiniMaxAD learns from normal images only."""
        return LearningType.ONE_CLASS


class CheckpointFormatCheck(Callback):
    """Say what a ``ckpt_path`` that is no Lightning checkpoint is, instead of Lightning's bare error.

    Lightning reads and migrates the file before any model hook sees it, and sets ``trainer.ckpt_path`` only
    then (after ``setup``), so the file is examined when the restore has failed: an authors' ``{bn, decoder}``
    file otherwise ends in ``KeyError: 'pytorch-lightning_version'``, a garbage file in an ``UnpicklingError``
    that advises ``weights_only=False``.
    """

    def on_exception(  # noqa: PLR6301 - Lightning's hook
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        exception: BaseException,
    ) -> None:
        """Raise a :class:`CheckpointError` naming the file when it caused ``exception``."""
        del pl_module
        if trainer.ckpt_path is None or not isinstance(exception, _CHECKPOINT_LOAD_ERRORS):
            return
        problem = foreign_checkpoint_problem(trainer.ckpt_path)
        if problem is not None:
            raise CheckpointError(problem) from exception


def foreign_checkpoint_problem(path: str | Path) -> str | None:
    """Why ``path`` is no Lightning checkpoint, or ``None`` when it is one (or is missing: Lightning says so).

    Example:
        >>> foreign_checkpoint_problem("missing.ckpt") is None
        True
    """
    path = Path(path).expanduser()
    if not path.is_file():
        return None
    try:
        with anomalib_safe_globals(extra=MiniMaxAD.checkpoint_safe_globals()):
            checkpoint = read_checkpoint(path)
    except CheckpointError as error:
        return (
            f"{path} is not a Lightning checkpoint: it cannot be read with torch.load(weights_only=True) (truncated, "
            f"another format, or it holds code, which is never run): {_load_failure(error)}."
        )
    if isinstance(checkpoint, dict) and "pytorch-lightning_version" in checkpoint:
        return None
    if isinstance(checkpoint, dict) and {"bn", "decoder"} <= checkpoint.keys():
        return (
            f"{path} is a checkpoint in the MiniMaxAD authors' format ({{'bn', 'decoder'}}: bottleneck and decoder "
            "only), not a Lightning checkpoint, so it cannot be a ckpt_path. Load it into a model instead: "
            "model = MiniMaxAD(); model.model.load_pretrained_encoder(True); "
            f"model.model.load_authors_checkpoint({str(path)!r}) (MiniMaxADModel.load_authors_checkpoint), "
            "then test, predict or export that model without ckpt_path."
        )
    found = sorted(map(str, checkpoint))[:20] if isinstance(checkpoint, dict) else type(checkpoint).__name__
    return (
        f"{path} is not a Lightning checkpoint (no 'pytorch-lightning_version'; found {found}). "
        "Give the model.ckpt that anomalib train writes under weights/lightning/."
    )


def _load_failure(error: CheckpointError) -> str:
    """The specific part of torch's error (without its advice to load with ``weights_only=False``)."""
    text = str(error.__cause__ or error)
    _, found, unpickler_error = text.partition("WeightsUnpickler error:")
    if found:
        text = unpickler_error.split("Please use")[0].split("Check the documentation")[0]
    return " ".join(text.split()).split(". ")[0].rstrip(".")


def _size_from_state_dict(state_dict: dict[str, Any]) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """Widths and depths of the network in a Lightning state dict, or ``None`` if it has another layout."""
    try:
        dims = (
            *(int(state_dict[f"model.encoder.norm{i}.weight"].shape[0]) for i in range(3)),
            int(state_dict["model.bottleneck.conv4.weight"].shape[0]),
        )
    except (KeyError, AttributeError, IndexError):
        return None
    stage_prefixes = (*(f"model.encoder.stages.{i}." for i in range(3)), "model.bottleneck.stages.0.")
    depths = tuple(
        len({key[len(prefix) :].split(".")[0] for key in state_dict if key.startswith(prefix)})
        for prefix in stage_prefixes
    )
    return dims, depths


def _size_from_hyper_parameters(hyper_parameters: dict[str, Any]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Widths and depths a saved model was built with, according to its hyper-parameters."""
    variant = UNIREPLKNET_VARIANTS.get(hyper_parameters.get("backbone", "unireplknet_n"), {})
    dims = hyper_parameters.get("dims") or variant.get("dims", ())
    depths = hyper_parameters.get("depths") or variant.get("depths", ())
    return tuple(dims), tuple(depths)


def _describe_size(dims: Sequence[int], depths: Sequence[int]) -> str:
    """``widths (...) and depths (...)``, plus the UniRepLKNet size it equals, if any."""
    dims, depths = tuple(dims), tuple(depths)
    names = [name for name, v in UNIREPLKNET_VARIANTS.items() if (v["dims"], v["depths"]) == (dims, depths)]
    return f"widths {dims} and depths {depths}" + (f" (as {names[0]})" if names else "")

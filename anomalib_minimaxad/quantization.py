# Copyright (C) 2026 anomalib-minimaxad developers
# SPDX-License-Identifier: Apache-2.0
"""INT8 quantisation of MiniMaxAD's OpenVINO exports, with the anomaly-map smoothing kept in float.

anomalib's ``to_openvino`` quantises the whole graph with NNCF. For MiniMaxAD one node must stay in float:
the Gaussian convolution that smooths the anomaly map. In 8 bits (NNCF 3.4, OpenVINO CPU) it returns
near-zero maps, which turns every score into 0. It is one single-channel convolution, so leaving it in float
costs nothing measurable. :func:`export_quantized_openvino` runs anomalib's float export and quantises the
result with NNCF's public API, post-training (``INT8_PTQ``) or accuracy-controlled (``INT8_ACQ``), both with
the ignored scope of :func:`smoothing_ignored_scope`.

Example:
    >>> from anomalib.deploy import CompressionType
    >>> model.to_openvino("exports", compression_type=CompressionType.INT8_ACQ, datamodule=datamodule)  # doctest: +SKIP
    PosixPath('exports/weights/openvino/model.xml')
"""

import logging
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from anomalib.data import AnomalibDataModule, ImageBatch
from anomalib.deploy import CompressionType
from anomalib.metrics import F1Score
from torchmetrics import Metric

from .validation import check_number

if TYPE_CHECKING:
    import nncf
    import openvino as ov

__all__ = ["QUANTIZED_COMPRESSIONS", "export_quantized_openvino", "quantize_openvino", "smoothing_ignored_scope"]

logger = logging.getLogger(__name__)

#: The compression types that quantise activations and so need calibration data.
QUANTIZED_COMPRESSIONS = frozenset({CompressionType.INT8_PTQ, CompressionType.INT8_ACQ})

#: Fewer calibration images than this and NNCF's statistics get noisy (anomalib warns at the same count).
RECOMMENDED_CALIBRATION_IMAGES = 300


def smoothing_convolutions(model: "ov.Model") -> list[str]:
    """Names of the single-channel convolutions closest to the ``anomaly_map`` output: the Gaussian smoothing.

    Walks back from the output and stops at the first convolution of each path (the decoder lies beyond);
    a map exported without smoothing has none.
    """
    results = [output.get_node() for output in model.outputs if "anomaly_map" in output.get_names()]
    found, seen, pending = [], set(), [node.input_value(0).get_node() for node in results]
    while pending:
        node = pending.pop()
        if node.get_friendly_name() in seen:
            continue
        seen.add(node.get_friendly_name())
        if node.get_type_name() == "Convolution":
            if node.get_output_partial_shape(0)[1] == 1:
                found.append(node.get_friendly_name())
            continue
        pending.extend(value.get_node() for value in node.input_values())
    return found


def smoothing_ignored_scope(model: "ov.Model") -> "nncf.IgnoredScope":
    """NNCF ignored scope that keeps the anomaly-map smoothing of ``model`` in float (empty without one)."""
    import nncf

    return nncf.IgnoredScope(names=smoothing_convolutions(model))


def _check_quantization_arguments(
    compression_type: CompressionType,
    datamodule: AnomalibDataModule | None,
    max_drop: float,
) -> AnomalibDataModule:
    """Refuse a compression that does not quantise, a missing datamodule, or a ``max_drop`` outside ``[0, 1]``.

    Returns:
        AnomalibDataModule: ``datamodule``, known to be there.
    """
    if compression_type not in QUANTIZED_COMPRESSIONS:
        choices = sorted(compression.value for compression in QUANTIZED_COMPRESSIONS)
        msg = f"compression_type must be one of {choices}, got {compression_type!r}."
        raise ValueError(msg)
    if datamodule is None:
        msg = f"compression_type {compression_type.value} needs a datamodule: its validation images calibrate."
        raise ValueError(msg)
    check_number("max_drop", max_drop, low=0, high=1)
    return datamodule


def quantize_openvino(
    model: "ov.Model",
    compression_type: CompressionType,
    datamodule: AnomalibDataModule | None,
    metric: Metric | None = None,
    max_drop: float = 0.01,
) -> "ov.Model":
    """Quantise a float MiniMaxAD OpenVINO model to INT8, keeping the map smoothing in float.

    Calibrates on the datamodule's validation images (raw, as the graph takes them), like anomalib.
    ``INT8_ACQ`` validates on its test images with ``metric`` (default: anomalib's image F1 score, as
    ``Engine.export``) and gives back to float the layers that cost more than ``max_drop`` of it.

    Args:
        model (ov.Model): The float model, as ``openvino.convert_model`` returns it.
        compression_type (CompressionType): ``CompressionType.INT8_PTQ`` or ``CompressionType.INT8_ACQ``.
        datamodule (AnomalibDataModule | None): Calibration (and, for ``INT8_ACQ``, validation) data.
        metric (Metric | None): Metric of ``INT8_ACQ``, higher is better. Defaults to the image F1 score.
        max_drop (float): Largest absolute drop of ``metric`` that ``INT8_ACQ`` accepts, in ``[0, 1]``.

    Returns:
        The quantised model.

    Raises:
        ValueError: If ``compression_type`` does not quantise, ``datamodule`` is missing or ``max_drop`` is
            outside ``[0, 1]``.

    Example:
        >>> import openvino as ov
        >>> float_model = ov.Core().read_model("exports/weights/openvino/model.xml")  # doctest: +SKIP
        >>> int8_model = quantize_openvino(float_model, CompressionType.INT8_PTQ, datamodule)  # doctest: +SKIP
    """
    import nncf

    datamodule = _check_quantization_arguments(compression_type, datamodule, max_drop)
    datamodule.setup("fit")
    model_input = model.input(0)
    if model_input.partial_shape[0].is_static:
        datamodule.train_batch_size = model_input.shape[0]
        datamodule.eval_batch_size = model_input.shape[0]
    dataloader = datamodule.val_dataloader()
    if len(dataloader.dataset) < RECOMMENDED_CALIBRATION_IMAGES:
        logger.warning(
            ">%d images recommended for INT8 quantization, found only %d",
            RECOMMENDED_CALIBRATION_IMAGES,
            len(dataloader.dataset),
        )
    calibration = nncf.Dataset(dataloader, lambda batch: batch.image)
    ignored_scope = smoothing_ignored_scope(model)
    if compression_type == CompressionType.INT8_PTQ:
        return nncf.quantize(model, calibration, ignored_scope=ignored_scope)
    validation = nncf.Dataset(datamodule.test_dataloader())
    return nncf.quantize_with_accuracy_control(
        model,
        calibration,
        validation,
        _validation_function(metric or F1Score(fields=["pred_label", "gt_label"])),
        max_drop=max_drop,
        ignored_scope=ignored_scope,
    )


def _validation_function(metric: Metric) -> Callable[[Any, Iterable[Any]], float]:
    """NNCF's ``validation_fn``: ``metric`` of a compiled model over the validation batches."""

    def validate(compiled: Any, batches: Iterable[Any]) -> float:  # noqa: ANN401 - an openvino.CompiledModel
        metric.reset()  # NNCF validates many candidate models with the same metric
        for batch in batches:
            outputs = compiled(batch.image.numpy())
            metric.update(
                ImageBatch(
                    image=batch.image,
                    gt_label=batch.gt_label,
                    pred_score=torch.from_numpy(outputs["pred_score"]).reshape(-1),
                    pred_label=torch.from_numpy(outputs["pred_label"]).reshape(-1),
                ),
            )
        return float(metric.compute())

    return validate


def export_quantized_openvino(
    export_float: Callable[[Path], Path],
    export_root: Path,
    compression_type: CompressionType,
    datamodule: AnomalibDataModule | None,
    metric: Metric | None = None,
    max_drop: float = 0.01,
) -> Path:
    """Run ``export_float(root)`` (anomalib's ``to_openvino`` without compression) and save it quantised.

    The float export goes to a temporary folder; the quantised model is written under ``export_root`` at the
    same relative path (``weights/openvino/<name>.xml`` and ``.bin``), which is returned.

    Raises:
        ValueError: as :func:`quantize_openvino`, before the float export runs.

    Example:
        >>> export_quantized_openvino(
        ...     lambda root: model.to_openvino(root), Path("exports"), CompressionType.INT8_PTQ, datamodule
        ... )  # doctest: +SKIP
        PosixPath('exports/weights/openvino/model.xml')
    """
    # Before the float export, which takes seconds to minutes.
    _check_quantization_arguments(compression_type, datamodule, max_drop)
    import openvino as ov

    with tempfile.TemporaryDirectory(prefix="minimaxad-float-export-") as float_root:
        float_xml = Path(export_float(Path(float_root)))
        quantized = quantize_openvino(
            ov.Core().read_model(str(float_xml)),
            compression_type,
            datamodule,
            metric,
            max_drop,
        )
        target = Path(export_root) / float_xml.relative_to(float_root)
        target.parent.mkdir(parents=True, exist_ok=True)
        ov.save_model(quantized, str(target), compress_to_fp16=False)
    return target

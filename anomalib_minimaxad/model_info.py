# Copyright (C) 2026 anomalib-minimaxad developers
# SPDX-License-Identifier: Apache-2.0
"""OpenVINO Model API metadata (``model_info``) for an anomalib OpenVINO export.

Intel's OpenVINO Model API (``openvino-model-api``, the inference layer of Geti) picks its model wrapper and
settings from the ``model_info`` section of the IR's runtime information. Without it,
``model_api.models.Model.create_model("model.xml")`` guesses a classification model. :func:`write_model_info`
adds what its ``AnomalyDetection`` wrapper (0.4.7) reads:

- ``model_type``: ``AnomalyDetection``;
- ``task``: ``segmentation`` when the export's anomaly maps and masks are meaningful, ``classification``
  otherwise. Model API returns masks for both. It adds boxes for ``detection``;
- ``labels``: ``Normal Anomaly``. This is label 0 then label 1. Model API 0.4.7 uses them only for exports
  without anomalib's four named outputs; for anomalib's exports it returns ``pred_label`` as ``'True'`` or
  ``'False'`` until its ``AnomalyDetection.postprocess`` names them (a Model API change, which can add boxes for
  ``segmentation`` too);
- ``image_threshold``, ``pixel_threshold`` and ``normalization_scale``: in the units of the exported outputs.
  The export contains anomalib's post-processor, so scores and maps are already min-max normalised, with the
  thresholds at ``0.5`` and a scale of ``1``. Model API applies these only to exports without anomalib's four
  named outputs;
- the raw (un-normalised) values the post-processor used, for clients that want them: ``image_min``,
  ``image_max``, ``pixel_min``, ``pixel_max``, ``raw_image_threshold`` and ``raw_pixel_threshold``. Those
  that are not finite (a model exported before any validation) are left out.

Example:
    >>> info = model_info(image_threshold=0.4, pixel_threshold=0.3, image_range=(0.1, 0.9),
    ...                   pixel_range=(0.0, 1.2), task="segmentation")
    >>> info["model_type"], info["labels"], info["image_threshold"]
    ('AnomalyDetection', 'Normal Anomaly', '0.5')
"""

import math
import xml.etree.ElementTree as ET  # noqa: S405 - writes our own export's XML, parses nothing untrusted
from pathlib import Path

__all__ = ["MODEL_API_LABELS", "model_info", "write_model_info"]

#: Model API's labels of an anomaly model: index 0 is normal, 1 anomalous (``pred_label``'s False and True).
MODEL_API_LABELS = ("Normal", "Anomaly")


def model_info(
    image_threshold: float,
    pixel_threshold: float,
    image_range: tuple[float, float],
    pixel_range: tuple[float, float],
    task: str,
) -> dict[str, str]:
    """The ``model_info`` entries of an export whose graph ends in anomalib's post-processor.

    Args:
        image_threshold (float): The post-processor's raw image threshold.
        pixel_threshold (float): The post-processor's raw pixel threshold.
        image_range (tuple[float, float]): Raw ``(min, max)`` of the image scores it normalises with.
        pixel_range (tuple[float, float]): Raw ``(min, max)`` of the anomaly maps it normalises with.
        task (str): ``classification``, ``segmentation`` or ``detection``, as Model API names them.

    Returns:
        dict[str, str]: Entry name to value, as strings (how the IR stores runtime information).

    Raises:
        ValueError: When ``task`` is none of Model API's tasks.
    """
    if task not in {"classification", "segmentation", "detection"}:
        msg = f"task must be classification, segmentation or detection, got {task!r}"
        raise ValueError(msg)
    raw = {
        "raw_image_threshold": image_threshold,
        "raw_pixel_threshold": pixel_threshold,
        "image_min": image_range[0],
        "image_max": image_range[1],
        "pixel_min": pixel_range[0],
        "pixel_max": pixel_range[1],
    }
    return {
        "model_type": "AnomalyDetection",
        "task": task,
        "labels": " ".join(MODEL_API_LABELS),
        "image_threshold": "0.5",
        "pixel_threshold": "0.5",
        "normalization_scale": "1.0",
        **{name: repr(float(value)) for name, value in raw.items() if math.isfinite(value)},
    }


def write_model_info(xml_path: str | Path, info: dict[str, str]) -> None:
    """Add (or replace) the ``model_info`` section of an OpenVINO IR's ``rt_info``, weights untouched.

    Args:
        xml_path (str | Path): The IR's ``.xml`` file; its ``.bin`` is not read or written.
        info (dict[str, str]): Entry name to value.

    Raises:
        ValueError: When the file is not an OpenVINO IR (its root element is not ``net``).
    """
    xml_path = Path(xml_path)
    tree = ET.parse(xml_path)  # noqa: S314 - the file the export has just written
    net = tree.getroot()
    if net.tag != "net":
        msg = f"{xml_path} is not an OpenVINO IR: its root element is <{net.tag}>, not <net>"
        raise ValueError(msg)
    rt_info = net.find("rt_info")
    if rt_info is None:
        rt_info = ET.SubElement(net, "rt_info")
    section = rt_info.find("model_info")
    if section is not None:
        rt_info.remove(section)
    section = ET.SubElement(rt_info, "model_info")
    for name, value in info.items():
        ET.SubElement(section, name, value=value)
    ET.indent(tree)
    tree.write(xml_path, encoding="utf-8", xml_declaration=True)

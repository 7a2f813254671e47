# Copyright (C) 2026 anomalib-minimaxad developers
# SPDX-License-Identifier: Apache-2.0
r"""Real-IAD with its layout checked up front: anomalib's ``RealIAD`` datamodule, failing fast and by name.

The authors train on the 512-pixel images (``realiad_512/<category>/...``) listed by the multi-view JSON files
(``realiad_jsons/realiad_jsons/<category>.json``), resized to 256 pixels. anomalib 2.7's
:class:`anomalib.data.RealIAD` reads that layout, but only opens the JSON when the datasets are built, and a
missing image folder shows up as a missing image during the first epoch. :class:`RealIAD` checks both when it is
constructed, so a wrong ``--data.root`` fails before any training, naming the file or folder it expected.

It also keeps the normal test images: with anomalib's default ``test_split_mode="none"`` the base datamodule
separates the test set's normal images and then drops them (anomalib 2.7), leaving only defective images, so
image AUROC is undefined. The default here is ``"from_dir"``: the JSON file's test list, normal images included.

``root`` is the Real-IAD folder or one of its ``realiad_<resolution>`` folders. The latter is what
:class:`~anomalib_minimaxad.data.unified.Unified` needs (one folder per category under its root)::

    anomalib train --model MiniMaxAD --data anomalib_minimaxad.data.Unified \\
        --data.dataset anomalib_minimaxad.data.realiad.RealIAD --data.root ./datasets/Real-IAD/realiad_512

Example:
    >>> datamodule = RealIAD(root="./datasets/Real-IAD", category="audiojack")  # doctest: +SKIP
    >>> datamodule.resolution
    '512'
"""

import json
import re
from pathlib import Path
from typing import Any

from anomalib.data import RealIAD as AnomalibRealIAD
from anomalib.data.datasets.image.realiad import RESOLUTIONS
from anomalib.data.utils import TestSplitMode

__all__ = ["RealIAD", "RealIADLayoutError", "check_realiad_layout"]

DEFAULT_JSON_PATH = "realiad_jsons/realiad_jsons/{category}.json"
_RESOLUTION_FOLDER = re.compile(r"realiad_(?P<resolution>" + "|".join(RESOLUTIONS) + r")")
_SAMPLE_KEYS = ("image_path", "anomaly_class")


class RealIADLayoutError(FileNotFoundError):
    """The Real-IAD folder lacks a file or folder of its layout, or a JSON file is not Real-IAD's."""


def check_realiad_layout(root: Path, category: str, resolution: str, json_path: str | Path) -> Path:
    """Check the JSON file and the image folder of one category; return the JSON file's path.

    Args:
        root (Path): The Real-IAD folder (holding ``realiad_<resolution>/`` and ``realiad_jsons/``).
        category (str): Category name.
        resolution (str): ``"256"``, ``"512"``, ``"1024"`` or ``"raw"``.
        json_path (str | Path): JSON file relative to ``root`` (``{category}`` is replaced).

    Raises:
        RealIADLayoutError: Naming the missing or malformed file or folder.
    """
    json_file = root / str(json_path).format(category=category)
    if not json_file.is_file():
        folders = sorted(child.name for child in root.iterdir()) if root.is_dir() else []
        msg = (
            f"Real-IAD: JSON file '{json_file}' of category {category!r} does not exist "
            f"(entries of '{root}': {', '.join(folders) or 'none, the folder does not exist'})."
        )
        raise RealIADLayoutError(msg)
    try:
        metadata = json.loads(json_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        msg = f"Real-IAD: '{json_file}' is not valid JSON ({error})."
        raise RealIADLayoutError(msg) from error
    splits = {key: metadata.get(key) for key in ("train", "test")} if isinstance(metadata, dict) else {}
    for split, samples in splits.items():
        if not isinstance(samples, list) or not all(
            isinstance(sample, dict) and all(key in sample for key in _SAMPLE_KEYS) for sample in samples
        ):
            msg = (
                f"Real-IAD: '{json_file}' has an unknown layout: expected lists 'train' and 'test' of samples "
                f"with the keys {', '.join(_SAMPLE_KEYS)} (and 'mask_path'); '{split}' is not."
            )
            raise RealIADLayoutError(msg)
    if not splits:
        msg = f"Real-IAD: '{json_file}' has an unknown layout: expected an object with 'train' and 'test' lists."
        raise RealIADLayoutError(msg)
    image_dir = root / f"realiad_{resolution}" / category
    if not image_dir.is_dir():
        msg = f"Real-IAD: image folder '{image_dir}' of category {category!r} (resolution {resolution}) is missing."
        raise RealIADLayoutError(msg)
    return json_file


class RealIAD(AnomalibRealIAD):
    """anomalib's Real-IAD datamodule, at the authors' resolution, checked when constructed.

    Args:
        root (str | Path): The Real-IAD folder, or its ``realiad_<resolution>`` folder (then the resolution is taken
            from
            the name). Defaults to ``"./datasets/Real-IAD"``.
        category (str): One of anomalib's Real-IAD categories. Defaults to ``"audiojack"``.
        resolution (str | int): Image folder used, ``realiad_<resolution>``. Defaults to ``512`` (the authors').
        json_path (str | Path): Sample list relative to ``root``. Defaults to the multi-view lists (the authors').
        test_split_mode (TestSplitMode | str): Defaults to ``"from_dir"``: the JSON file's test list as it is (see
            above).
        test_split_ratio (float): Accepted for :class:`~anomalib_minimaxad.data.unified.Unified`; unused, since
            Real-IAD's JSON files fix the test set.
        **kwargs (Any): Passed to :class:`anomalib.data.RealIAD` (batch sizes, workers, augmentations, splits, seed).

    Raises:
        RealIADLayoutError: A JSON file or image folder is missing, or a JSON file is not Real-IAD's.
    """

    def __init__(
        self,
        root: str | Path = "./datasets/Real-IAD",
        category: str = "audiojack",
        resolution: str | int = 512,
        json_path: str | Path = DEFAULT_JSON_PATH,
        test_split_mode: TestSplitMode | str = TestSplitMode.FROM_DIR,
        test_split_ratio: float = 0.2,
        **kwargs: Any,  # noqa: ANN401 - anomalib.data.RealIAD's own arguments
    ) -> None:
        root = Path(root)
        match = _RESOLUTION_FOLDER.fullmatch(root.name)
        if match:
            root, resolution = root.parent, match["resolution"]
        super().__init__(
            root=root,
            category=category,
            resolution=resolution,
            json_path=json_path,
            test_split_mode=test_split_mode,
            **kwargs,
        )
        self.test_split_ratio = test_split_ratio
        check_realiad_layout(self.root, category, self.resolution, json_path)

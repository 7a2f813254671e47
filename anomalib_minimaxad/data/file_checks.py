# Copyright (C) 2026 anomalib-minimaxad developers
# SPDX-License-Identifier: Apache-2.0
"""Checks of a dataset's image files before training: present, readable, complete, 8-bit, masks of the right size.

anomalib's datasets open their files lazily, in ``__getitem__``, so a bad file surfaces mid-epoch, in a worker,
without its name: ``OSError: image file is truncated``, a collate error for a mask of another size than its
image, ``num_samples=0`` for an empty training folder, or nothing at all for a 16-bit image, which
``Image.convert("RGB")`` clips to 255 (the model then trains on white images). The datamodules of this package
call :func:`check_image_files` once their datasets are built, so these fail in ``setup``, before any training,
naming every file concerned.

The check is cheap: it reads each file's header (size, pixel format) and its last kilobyte (PNG files end with
an ``IEND`` chunk, JPEG files with an end-of-image marker); only files of other formats, or whose end looks
wrong, are decoded in full, so a file is refused only if it really cannot be read.

Example:
    >>> import pandas as pd
    >>> samples = pd.DataFrame({"image_path": ["broken.png"], "mask_path": [""]})
    >>> check_image_files(samples, "MVTec category 'bottle'")  # doctest: +SKIP
    Traceback (most recent call last):
    ImageFileError: MVTec category 'bottle': 1 unusable image file(s): 'broken.png' is truncated or corrupt ...
"""

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from PIL import Image

__all__ = ["HIGH_BIT_DEPTH_MODES", "DatasetLayoutError", "ImageFileError", "check_image_files"]

#: PIL modes of more than 8 bits per channel; anomalib reads images with ``convert("RGB")``, which clips them.
HIGH_BIT_DEPTH_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
#: Bytes every complete file of the format ends with (trailing NUL padding aside).
_END_MARKERS = {"PNG": b"IEND\xaeB`\x82", "JPEG": b"\xff\xd9"}
_TAIL_BYTES = 1024
_MAX_LISTED = 5


class DatasetLayoutError(FileNotFoundError):
    """A dataset folder does not have the expected layout; the message says what is missing where."""


class ImageFileError(ValueError):
    """Image or mask files cannot be used as they are; the message names each file and its problem."""


def check_image_files(samples: pd.DataFrame, what: str) -> None:
    """Check every image (and mask, where ``mask_path`` is set) of an anomalib samples table.

    Args:
        samples (pd.DataFrame): Table with the columns ``image_path`` and ``mask_path`` (empty string: no mask).
        what (str): What the samples are, to start the message with (e.g. ``"Unified category 'bottle'"``).

    Raises:
        ImageFileError: Naming each file that is not an image, is truncated, has more than 8 bits per channel
            (the image, not the mask, which is only compared with 0), or is a mask of another size than its
            image (both files and sizes).
    """
    problems: list[str] = []
    for image_path, mask_path in zip(samples.image_path, samples.mask_path, strict=True):
        image_size = _inspect(str(image_path), problems, is_mask=False)
        if mask_path and isinstance(mask_path, str):
            mask_size = _inspect(mask_path, problems, is_mask=True)
            if image_size and mask_size and mask_size != image_size:
                problems.append(
                    f"mask '{mask_path}' is {_size(mask_size)} pixels but its image '{image_path}' is "
                    f"{_size(image_size)}",
                )
    if problems:
        listed = "; ".join(problems[:_MAX_LISTED]) + (" ..." if len(problems) > _MAX_LISTED else "")
        msg = f"{what}: {len(problems)} unusable image file(s): {listed}."
        raise ImageFileError(msg)


def _inspect(path: str, problems: list[str], is_mask: bool) -> tuple[int, int] | None:
    """Size of the image at ``path``, or ``None`` after adding its problem to ``problems``."""
    try:
        with Image.open(path) as image:
            size, mode = image.size, image.mode
            if not is_mask and mode in HIGH_BIT_DEPTH_MODES:
                problems.append(
                    f"'{path}' has more than 8 bits per pixel (PIL mode {mode}), which anomalib reads clipped to "
                    "255 (white); convert it to 8-bit, scaling its range to 0-255",
                )
                return None
            if not _ends_like(path, image.format):
                image.load()  # decodes it: raises for an incomplete file
    except (OSError, SyntaxError, ValueError) as exc:  # PIL's UnidentifiedImageError is an OSError
        problems.append(f"'{path}' is truncated or corrupt, or not an image ({exc})")
        return None
    return size


def _ends_like(path: str, image_format: str | None) -> bool:
    """Whether the file ends as every complete file of its format does (``False``: unknown, decode it)."""
    marker = _END_MARKERS.get(image_format or "")
    if marker is None:
        return False
    with Path(path).open("rb") as file:
        file.seek(0, 2)
        file.seek(max(0, file.tell() - _TAIL_BYTES))
        return file.read().rstrip(b"\x00").endswith(marker)


def _size(size: Sequence[int]) -> str:
    return f"{size[0]}x{size[1]}"

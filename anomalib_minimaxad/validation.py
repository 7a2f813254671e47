# Copyright (C) 2026 anomalib-minimaxad developers
# SPDX-License-Identifier: Apache-2.0
"""Checks of the constructor arguments of MiniMaxAD, its network and its losses, with errors naming the argument.

Every numeric argument is checked here, once, before anything is built: ``NaN`` and infinities are refused
(a ``NaN`` sigma would turn every score into ``NaN``), and so are values outside the range where the argument
means what its docstring says (a negative ``lr_gamma`` makes the learning rate negative after one epoch).

Example:
    >>> check_number("lr", 5e-3, low=0, low_open=True)
    >>> check_number("lr_gamma", -0.5, low=0, high=1, low_open=True)
    Traceback (most recent call last):
    ...
    ValueError: lr_gamma must be in (0, 1], got -0.5.
"""

import math
import numbers
from collections.abc import Sequence
from enum import Enum

__all__ = [
    "check_choice",
    "check_integer",
    "check_map_arguments",
    "check_model_arguments",
    "check_number",
    "check_optimizer_arguments",
    "check_probability",
]


def _interval(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    left = "(" if low_open or low is None else "["
    right = ")" if high_open or high is None else "]"
    return f"{left}{'-inf' if low is None else low}, {'inf' if high is None else high}{right}"


def check_number(
    name: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """Refuse ``value`` unless it is a finite real number in the interval from ``low`` to ``high``.

    Raises:
        ValueError: naming ``name``, the interval and the value (``NaN`` and infinities included).
    """
    interval = _interval(low, high, low_open, high_open)
    inside = False
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value):
        number = float(value)
        above = low is None or (number > low if low_open else number >= low)
        below = high is None or (number < high if high_open else number <= high)
        inside = above and below
    if not inside:
        msg = f"{name} must be in {interval}, got {value!r}."
        raise ValueError(msg)


def check_probability(name: str, value: object) -> None:
    """Refuse ``value`` unless it lies in the open interval ``(0, 1)`` (a quantile of the ADC loss)."""
    check_number(name, value, low=0, high=1, low_open=True, high_open=True)


def check_integer(name: str, value: object, minimum: int) -> None:
    """Refuse ``value`` unless it is an integer of at least ``minimum``."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        msg = f"{name} must be an integer of at least {minimum}, got {value!r}."
        raise ValueError(msg)


def check_choice(name: str, value: object, choices: type[Enum]) -> None:
    """Refuse ``value`` unless it is a member (or the value of a member) of the enum ``choices``."""
    try:
        choices(value)
    except ValueError:
        listed = ", ".join(repr(choice.value) for choice in choices)
        msg = f"{name} must be one of {listed}, got {value!r}."
        raise ValueError(msg) from None


def _check_sizes(name: str, values: Sequence[int] | None, minimum: int) -> None:
    if values is None:
        return
    if isinstance(values, str) or not isinstance(values, Sequence) or len(values) != 4:
        msg = f"{name} must be 4 integers (one per stage), got {values!r}."
        raise ValueError(msg)
    for index, value in enumerate(values):
        check_integer(f"{name}[{index}]", value, minimum)


def check_model_arguments(
    dims: Sequence[int] | None,
    depths: Sequence[int] | None,
    kernel_sizes: Sequence[Sequence[int]] | None,
    gaussian_kernel_size: int,
    gaussian_sigma: float,
    score_ratio: float,
    choices: dict[str, tuple[object, type[Enum]]],
) -> None:
    """Check the arguments of :class:`~anomalib_minimaxad.torch_model.MiniMaxADModel`.

    Args:
        dims (Sequence[int] | None): 4 widths, at least 4 each (the SE blocks use a quarter of the width), or ``None``.
        depths (Sequence[int] | None): 4 depths, at least 1 each, or ``None``.
        kernel_sizes (Sequence[Sequence[int]] | None): Per-stage odd kernel sizes, or ``None``.
        gaussian_kernel_size (int): 0 or 1 (no smoothing), or an odd side.
        gaussian_sigma (float): Positive, finite.
        score_ratio (float): In ``(0, 1]``.
        choices (dict[str, tuple[object, type[Enum]]]): ``{argument name: (value, enum of the allowed values)}`` for the
            protocol options.

    Raises:
        ValueError: naming the first argument that is wrong, and its value.
    """
    _check_sizes("dims", dims, minimum=4)
    _check_sizes("depths", depths, minimum=1)
    for stage, sizes in enumerate(_sequence("kernel_sizes", kernel_sizes)):
        for block, size in enumerate(_sequence(f"kernel_sizes[{stage}]", sizes)):
            check_integer(f"kernel_sizes[{stage}][{block}]", size, minimum=1)
            if size % 2 == 0:
                msg = f"kernel_sizes[{stage}][{block}] must be odd, got {size}."
                raise ValueError(msg)
    check_map_arguments(
        gaussian_kernel_size,
        gaussian_sigma,
        score_ratio,
        kernel_size_name="gaussian_kernel_size",
        sigma_name="gaussian_sigma",
    )
    for name, (value, enum) in choices.items():
        check_choice(name, value, enum)


def check_map_arguments(
    kernel_size: int,
    sigma: float,
    score_ratio: float,
    *,
    kernel_size_name: str = "kernel_size",
    sigma_name: str = "sigma",
) -> None:
    """Check smoothing and score arguments of :class:`~anomalib_minimaxad.anomaly_map.AnomalyMapGenerator`.

    Args:
        kernel_size (int): 0 or 1 (no smoothing), or an odd side.
        sigma (float): Positive, finite.
        score_ratio (float): In ``(0, 1]``.
        kernel_size_name (str): How the caller names ``kernel_size`` in messages.
        sigma_name (str): How the caller names ``sigma`` in messages.

    Raises:
        ValueError: naming the first argument that is wrong, and its value.
    """
    check_integer(kernel_size_name, kernel_size, minimum=0)
    if kernel_size > 1 and kernel_size % 2 == 0:
        msg = f"{kernel_size_name} must be odd (or 0 or 1 for no smoothing), got {kernel_size}."
        raise ValueError(msg)
    check_number(sigma_name, sigma, low=0, low_open=True)
    check_number("score_ratio", score_ratio, low=0, high=1, low_open=True)


def _sequence(name: str, values: object) -> Sequence:
    """``values`` (``()`` for ``None``), refused unless it is a sequence: a bare number is not one per stage."""
    if values is None:
        return ()
    if isinstance(values, str) or not isinstance(values, Sequence):
        msg = f"{name} must be a sequence, got {values!r}: kernel_sizes is one list per stage, one odd size per block."
        raise ValueError(msg)  # noqa: TRY004 - every argument error of this module is a ValueError
    return values


def check_optimizer_arguments(lr: float, betas: Sequence[float], weight_decay: float, lr_gamma: float) -> None:
    """Check the AdamW and ExponentialLR arguments of :class:`~anomalib_minimaxad.MiniMaxAD`.

    Raises:
        ValueError: naming the first argument that is wrong, and its value.
    """
    check_number("lr", lr, low=0, low_open=True)
    if isinstance(betas, str) or not isinstance(betas, Sequence) or len(betas) != 2:
        msg = f"betas must be 2 numbers in [0, 1), got {betas!r}."
        raise ValueError(msg)
    for index, beta in enumerate(betas):
        check_number(f"betas[{index}]", beta, low=0, high=1, high_open=True)
    check_number("weight_decay", weight_decay, low=0)
    # A decay factor: above 1 the learning rate grows every epoch, at or below 0 it vanishes or turns negative.
    check_number("lr_gamma", lr_gamma, low=0, high=1, low_open=True)

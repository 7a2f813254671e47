"""Bad input gives a clear error naming the problem, and nothing appears at the final path.

Sections: arguments, tensors, weight files, checkpoints, exports and interrupted writes; ``# --- data`` holds
the data-file cases. Tiny random-weight models only, so the module stays well under a minute on 2 cores.
"""

from __future__ import annotations

import math

import pytest

from anomalib_minimaxad import MiniMaxAD

DIMS = (16, 32, 64, 128)


# --- arguments


@pytest.mark.parametrize(("name", "value"), [("p_hard", math.nan), ("p_lim", 1.0)])
def test_loss_probabilities_are_named(name: str, value: float) -> None:
    with pytest.raises(ValueError, match=name):
        MiniMaxAD(pre_trained=False, dims=DIMS, **{name: value})


# --- data

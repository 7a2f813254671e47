"""Shared fixtures: the authors' parity case and small models."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from anomalib_minimaxad.torch_model import MiniMaxADModel

PARITY_DIR = Path(__file__).parent / "data" / "parity_tiny"
LAYOUT_DIR = Path(__file__).parent / "data" / "state_dict_layout"
#: The parity case's configuration (see tests/data/REFERENCE.md).
TINY_DIMS = (16, 32, 64, 128)


@pytest.fixture(scope="session")
def expected() -> dict:
    """Tensors computed by the authors' implementation."""
    return torch.load(PARITY_DIR / "expected.pt", weights_only=True)


def build_parity_model() -> MiniMaxADModel:
    """Our model with the authors' weights of the parity case, in eval mode."""
    model = MiniMaxADModel(dims=TINY_DIMS)
    model.load_pretrained_encoder(PARITY_DIR / "encoder.pt")
    model.load_authors_checkpoint(PARITY_DIR / "minimaxad_official_checkpoint.pt")
    return model.eval()


@pytest.fixture
def parity_model() -> MiniMaxADModel:
    return build_parity_model()


def assert_close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """Parity tolerance: 1e-5 absolute or 1e-4 relative."""
    assert actual.shape == expected.shape, f"shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-4)

"""Training steps equal the authors': losses and weights after AdamW steps (tests/data/training_tiny)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from anomalib.data import ImageBatch

from anomalib_minimaxad.lightning_model import MiniMaxAD

DATA = Path(__file__).parent / "data" / "training_tiny"
META = json.loads((DATA / "meta.json").read_text())
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
RTOL = 1e-4


@pytest.fixture(scope="module")
def fixture() -> dict:
    return torch.load(DATA / "training.pt", weights_only=True)


def unpack(packed: dict) -> dict[str, torch.Tensor]:
    """A state dict from the fixture's flat layout (float tensors in one vector, counters as ints)."""
    state, offset = {}, 0
    for name, shape in zip(packed["names"], packed["shapes"], strict=True):
        size = torch.Size(shape).numel()
        state[name] = packed["values"][offset : offset + size].float().reshape(shape)
        offset += size
    state.update({name: torch.tensor(count) for name, count in packed["counters"].items()})
    return state


def relative_error(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    """``|ours - theirs| / |theirs|`` in the L2 norm (absolute where ``theirs`` is zero)."""
    diff = (ours.double() - theirs.double()).norm().item()
    return diff / max(theirs.double().norm().item(), 1e-30) if theirs.any() else diff


def train(fixture: dict, loss: str, steps: int) -> tuple[list[float], MiniMaxAD]:
    """Our Lightning module from the fixture's initial weights, stepped with its own optimizer.

    The optimizer and loss settings are the module's defaults: they must be the authors' (meta.json).
    """
    module = MiniMaxAD(
        pre_trained=False, loss=loss, dims=META["dims"], depths=META["depths"], evaluator=False, visualizer=False
    )
    network = module.model
    for part in ("encoder", "bottleneck", "decoder"):
        getattr(network, part).load_state_dict(unpack(fixture["initial"][part]))
    optimizer = module.configure_optimizers()["optimizer"]
    module.train()
    losses = []
    for images in fixture["images"][:steps]:
        batch = ImageBatch(image=(images.float() / 255 - IMAGENET_MEAN) / IMAGENET_STD)
        loss = module.training_step(batch, 0)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses, module


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
@pytest.mark.parametrize(("loss", "steps"), [("adc", 3), ("global", 2)])
def test_training_steps_match_authors(fixture: dict, loss: str, steps: int) -> None:
    losses, module = train(fixture, loss, steps)
    torch.testing.assert_close(torch.tensor(losses, dtype=torch.float64), fixture[loss]["losses"], rtol=RTOL, atol=0)
    for part in ("bottleneck", "decoder"):
        ours = getattr(module.model, part).state_dict()
        theirs = unpack(fixture[loss]["after"][part])
        assert set(ours) == set(theirs)
        errors = {name: relative_error(ours[name], theirs[name]) for name in theirs}
        worst = max(errors, key=errors.__getitem__)
        assert errors[worst] <= RTOL, f"{part}.{worst}: relative error {errors[worst]:.2e}"

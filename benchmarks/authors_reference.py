"""The authors' own MiniMaxAD network, built at run time from a checkout of their repository, for side-by-side runs.

Nothing of theirs is copied here: the model modules (``models/unireplknet.py``, ``models/de_unireplknet.py``)
are imported from a local checkout of `WangFengJiee/MiniMaxAD <https://github.com/WangFengJiee/MiniMaxAD>`_,
given as an argument or by ``$MINIMAXAD_AUTHORS_REPO``. Without one, the builders raise
:class:`AuthorsReferenceUnavailable`, whose message says how to get it; benchmarks print it and skip the row.

- :func:`build_authors_inference_model`: their UniRepLKNet-N encoder, bottleneck and decoder with random weights,
  re-parameterized as their ``fps.py`` does (``reparameterize_unireplknet()`` on all three), in eval mode, with
  the same forward contract as our eval-mode ``MiniMaxADModel``: images ``(B, 3, H, W)`` -> ``InferenceBatch``
  (``anomaly_map`` ``(B, 1, H, W)``, ``pred_score`` ``(B,)``). The map and score are computed by our
  :class:`~anomalib_minimaxad.anomaly_map.AnomalyMapGenerator` (the authors' evaluation formula, tested
  against their outputs), so that both sides time the same post-processing and differ only in the network.
- :func:`build_authors_training_setup`: their training recipe (``train_*.py``): encoder in eval mode *with*
  gradients (their loop calls it outside ``no_grad``, its parameters keep ``requires_grad``), bottleneck and
  decoder in train mode, AdamW(lr 5e-3, betas (0.9, 0.999), weight decay 1e-5) on bottleneck and decoder,
  the global cosine loss, fp32.

Example:
    >>> from pathlib import Path
    >>> try:
    ...     model = build_authors_inference_model(Path("/tmp/authors_repo"))
    ... except AuthorsReferenceUnavailable as reason:
    ...     print(f"skipped: {reason}")
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch
from torch import nn

REPO_ENV = "MINIMAXAD_AUTHORS_REPO"
REPO_URL = "https://github.com/WangFengJiee/MiniMaxAD"
#: The files imported from the checkout, relative to its root.
MODEL_FILES = ("models/unireplknet.py", "models/de_unireplknet.py")
#: UniRepLKNet-N, the configuration of the paper.
DIMS_N = (80, 160, 320, 640)
DEPTHS_N = (2, 2, 8, 2)


class AuthorsReferenceUnavailable(RuntimeError):  # noqa: N818 - a reason to skip, not a failure
    """No usable checkout of the authors' repository; the message says why and how to get one."""


def resolve_repo(repo: str | Path | None = None) -> Path:
    """The checkout to use: ``repo``, else ``$MINIMAXAD_AUTHORS_REPO``.

    Raises:
        AuthorsReferenceUnavailable: Neither is set, or the folder lacks the model files.
    """
    location = repo if repo is not None else os.environ.get(REPO_ENV)
    if not location:
        msg = f"no checkout of the authors' code: pass its path or set ${REPO_ENV} (git clone {REPO_URL})"
        raise AuthorsReferenceUnavailable(msg)
    root = Path(location).expanduser()
    missing = [name for name in MODEL_FILES if not (root / name).is_file()]
    if missing:
        msg = f"{root} is not a checkout of {REPO_URL}: missing {', '.join(missing)}"
        raise AuthorsReferenceUnavailable(msg)
    return root


def _import_file(path: Path, name: str) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        msg = f"cannot import {path}"
        raise AuthorsReferenceUnavailable(msg)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        with warnings.catch_warnings():  # their timm.models.layers imports are deprecated; registry duplicates
            warnings.simplefilter("ignore")
            spec.loader.exec_module(module)
    except Exception as error:
        del sys.modules[name]
        msg = f"importing the authors' {path} failed: {type(error).__name__}: {error}"
        raise AuthorsReferenceUnavailable(msg) from error
    return module


def import_authors_models(repo: str | Path | None = None) -> tuple[ModuleType, ModuleType]:
    """Their encoder module (``unireplknet``: encoder and bottleneck) and decoder module (``de_unireplknet``)."""
    root = resolve_repo(repo)
    tag = f"_minimaxad_authors_{abs(hash(str(root.resolve())))}"
    encoder_module = _import_file(root / MODEL_FILES[0], f"{tag}_unireplknet")
    decoder_module = _import_file(root / MODEL_FILES[1], f"{tag}_de_unireplknet")
    return encoder_module, decoder_module


def build_authors_networks(
    repo: str | Path | None = None, dims: Sequence[int] | None = None, seed: int = 0
) -> tuple[nn.Module, nn.Module, nn.Module]:
    """Their ``(encoder, bottleneck, decoder)``, random weights, training structure (not yet re-parameterized).

    Args:
        repo: Checkout of their repository (default ``$MINIMAXAD_AUTHORS_REPO``).
        dims: Stage widths; default UniRepLKNet-N's ``(80, 160, 320, 640)`` (depths stay N's ``(2, 2, 8, 2)``).
        seed: ``torch.manual_seed`` before construction.
    """
    encoder_module, decoder_module = import_authors_models(repo)
    dims = tuple(dims or DIMS_N)
    torch.manual_seed(seed)
    with contextlib.redirect_stdout(io.StringIO()):  # their constructors print their configuration
        encoder = encoder_module.UniRepLKNet(depths=DEPTHS_N, dims=dims)
        bottleneck = encoder_module.BN_layer(depths=DEPTHS_N, dims=dims)
        decoder = decoder_module.UniRepLKNet(depths=DEPTHS_N, dims=dims)
    return encoder, bottleneck, decoder


class AuthorsInferenceModel(nn.Module):
    """Their re-parameterized network with our map and score: images -> ``InferenceBatch`` (as ``MiniMaxADModel``)."""

    def __init__(self, encoder: nn.Module, bottleneck: nn.Module, decoder: nn.Module) -> None:
        super().__init__()
        from anomalib_minimaxad.anomaly_map import AnomalyMapGenerator  # noqa: PLC0415

        self.encoder, self.bottleneck, self.decoder = encoder, bottleneck, decoder
        self.anomaly_map_generator = AnomalyMapGenerator()

    def forward(self, images: torch.Tensor) -> object:
        """Anomaly map ``(B, 1, H, W)`` and score ``(B,)`` of their network's features."""
        from anomalib.data import InferenceBatch  # noqa: PLC0415

        encoder_features = self.encoder(images)
        decoder_features = self.decoder(self.bottleneck(encoder_features))
        anomaly_map, pred_score = self.anomaly_map_generator(encoder_features, decoder_features, images.shape[-2:])
        return InferenceBatch(pred_score=pred_score, anomaly_map=anomaly_map)


def build_authors_inference_model(
    repo: str | Path | None = None, dims: Sequence[int] | None = None, seed: int = 0
) -> AuthorsInferenceModel:
    """Their network re-parameterized for inference as their ``fps.py`` does, in eval mode, on the CPU.

    Args:
        repo: Checkout of their repository (default ``$MINIMAXAD_AUTHORS_REPO``).
        dims: Stage widths (default UniRepLKNet-N's).
        seed: Seed of the random weights.

    Raises:
        AuthorsReferenceUnavailable: No usable checkout.
    """
    encoder, bottleneck, decoder = build_authors_networks(repo, dims, seed)
    for network in (encoder, bottleneck, decoder):
        network.eval()
        network.reparameterize_unireplknet()
    return AuthorsInferenceModel(encoder, bottleneck, decoder).eval().requires_grad_(requires_grad=False)


@dataclass
class AuthorsTrainingSetup:
    """Their training loop's objects; :meth:`step` is one iteration of it."""

    encoder: nn.Module
    bottleneck: nn.Module
    decoder: nn.Module
    optimizer: torch.optim.Optimizer

    def step(self, images: torch.Tensor) -> float:
        """Forward (encoder with gradients, as theirs), global cosine loss, backward, AdamW step; the loss."""
        from anomalib_minimaxad.loss import GlobalCosineLoss  # noqa: PLC0415 - same formula as their loss

        encoder_features = self.encoder(images)
        decoder_features = self.decoder(self.bottleneck(encoder_features))
        loss = GlobalCosineLoss().compute(encoder_features, decoder_features, images.shape[-2:])
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())


def build_authors_training_setup(
    repo: str | Path | None = None, dims: Sequence[int] | None = None, seed: int = 111
) -> AuthorsTrainingSetup:
    """Their networks and optimizer as in their ``train_*.py`` (seed 111, AdamW lr 5e-3, wd 1e-5).

    Raises:
        AuthorsReferenceUnavailable: No usable checkout.
    """
    encoder, bottleneck, decoder = build_authors_networks(repo, dims, seed)
    encoder.eval()
    bottleneck.train()
    decoder.train()
    optimizer = torch.optim.AdamW(
        list(decoder.parameters()) + list(bottleneck.parameters()), lr=5e-3, betas=(0.9, 0.999), weight_decay=1e-5
    )
    return AuthorsTrainingSetup(encoder, bottleneck, decoder, optimizer)

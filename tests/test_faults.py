"""Faults: exact resumption, determinism, 2-process DDP on CPU, atomic checkpoints and exports (interrupted too)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch
from anomalib.data import MVTecAD
from anomalib.engine import Engine
from anomalib.models.components import AnomalibModule
from lightning.pytorch import Callback, Trainer, seed_everything

from anomalib_minimaxad import MiniMaxAD, fault_tolerance
from anomalib_minimaxad.data import generate_demo_dataset
from anomalib_minimaxad.fault_tolerance import (
    AtomicCheckpointIO,
    ExactResume,
    NoSpaceLeftError,
    atomic_write,
    epoch_seed,
    export_atomically,
    remove_abandoned_temporaries,
    restart_training_iterator,
)

from .conftest import TINY_DIMS

ROOT = Path(__file__).parents[1]
DDP_TIMEOUT_S = 240


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_demo_dataset(
        tmp_path_factory.mktemp("demo"),
        categories=("brick",),
        image_size=64,
        num_train=6,
        num_test_good=2,
        num_test_defect=2,
    )


class KeepFirstEpoch(Callback):
    """Keeps a copy of the weights after the first epoch."""

    def __init__(self) -> None:
        self.weights: dict[str, torch.Tensor] = {}

    def on_train_epoch_end(self, trainer: Trainer, pl_module: MiniMaxAD) -> None:
        if trainer.current_epoch == 0:
            self.weights = trained(pl_module)


def train(
    root: Path,
    work: Path,
    max_epochs: int,
    ckpt_path: Path | None = None,
    callbacks: list[Callback] | None = None,
) -> tuple[MiniMaxAD, Engine]:
    """A tiny MiniMaxAD on 6 images in batches of 4 (the last one uneven), validated on 4, seed 111."""
    seed_everything(111)
    datamodule = MVTecAD(root=root, category="brick", train_batch_size=4, eval_batch_size=4, num_workers=0)
    model = MiniMaxAD(pre_trained=False, dims=TINY_DIMS, visualizer=False)
    engine = Engine(
        default_root_dir=work,
        max_epochs=max_epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        deterministic=True,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks or [],
        plugins=[AtomicCheckpointIO()],  # the documented way to write checkpoints atomically
    )
    engine.fit(model=model, datamodule=datamodule, ckpt_path=ckpt_path)
    return model, engine


def trained(model: MiniMaxAD) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.model.state_dict().items()}


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


@pytest.fixture(scope="module")
def runs(demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """An uninterrupted 2-epoch run, a 1-epoch run, and its second epoch resumed from its checkpoint."""
    work = tmp_path_factory.mktemp("runs")
    keep = KeepFirstEpoch()
    full, _ = train(demo_root, work / "full", max_epochs=2, callbacks=[keep])
    first, engine = train(demo_root, work / "first", max_epochs=1)
    checkpoint = Path(engine.trainer.checkpoint_callback.best_model_path)
    resumed, resumed_engine = train(demo_root, work / "resumed", max_epochs=2, ckpt_path=checkpoint)
    return {
        "full": trained(full),
        "full_after_first_epoch": keep.weights,
        "first": trained(first),
        "resumed": trained(resumed),
        "checkpoint": checkpoint,
        "engine": engine,
        "resumed_steps": resumed_engine.trainer.global_step,
    }


def test_resumed_run_equals_uninterrupted_run(runs: dict) -> None:
    assert runs["resumed_steps"] == 4  # 2 epochs of 2 batches: the resumed run did only the second epoch
    assert max_difference(runs["resumed"], runs["full"]) == 0.0
    assert max_difference(runs["first"], runs["full"]) > 1e-4  # the second epoch did change the weights


def test_same_seed_gives_the_same_weights(runs: dict) -> None:
    # Two separate runs with seed 111, compared after the same number of steps.
    assert max_difference(runs["first"], runs["full_after_first_epoch"]) == 0.0


def test_model_brings_exact_resume_and_leaves_the_checkpoint_io_alone(runs: dict, demo_root: Path) -> None:
    trainer = runs["engine"].trainer
    assert sum(isinstance(callback, ExactResume) for callback in trainer.callbacks) == 1
    plain = Engine(default_root_dir=demo_root.parent / "plain", max_epochs=1, logger=False, accelerator="cpu")
    datamodule = MVTecAD(root=demo_root, category="brick", train_batch_size=4, eval_batch_size=4, num_workers=0)
    plain.fit(MiniMaxAD(pre_trained=False, dims=TINY_DIMS, visualizer=False), datamodule=datamodule)
    assert type(plain.trainer.strategy.checkpoint_io).__name__ == "AnomalibCheckpointIO"  # not swapped by the model


def test_lightning_still_has_the_iterator_exact_resume_restarts(runs: dict) -> None:
    # Fails loudly, naming the function to adapt, if a Lightning upgrade removes the private attribute.
    assert hasattr(runs["engine"].trainer.fit_loop, "_data_fetcher")
    bare = Trainer(accelerator="cpu", logger=False, enable_checkpointing=False)
    with pytest.raises(RuntimeError, match="restart_training_iterator must be adapted"):
        restart_training_iterator(bare)  # no fit running: no fetcher


def test_epoch_seeds_differ() -> None:
    seeds = {epoch_seed(base, epoch) for base in (0, 1, 111) for epoch in range(50)}
    assert len(seeds) == 150
    assert all(0 <= seed < 2**32 for seed in seeds)


# ----------------------------------------------------------------------------------------------------------------
# Atomic checkpoints and exports
# ----------------------------------------------------------------------------------------------------------------


def test_minimaxad_writes_checkpoints_atomically(runs: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    io = runs["engine"].trainer.strategy.checkpoint_io
    assert isinstance(io, AtomicCheckpointIO)
    target = tmp_path / "model.ckpt"
    target.write_bytes(b"previous complete checkpoint")

    def interrupted_save(obj: object, f: str) -> None:
        Path(f).write_bytes(b"half a checkpo")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"state_dict": {}}, target)
    assert target.read_bytes() == b"previous complete checkpoint"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.ckpt"]  # no temporary file left
    monkeypatch.undo()
    io.save_checkpoint({"epoch": 3}, target)
    assert torch.load(target, weights_only=True) == {"epoch": 3}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.ckpt"]
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    assert target.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777  # not mkstemp's private 0600


def test_exports_never_leave_a_partial_file(runs: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = MiniMaxAD.load_from_checkpoint(runs["checkpoint"], visualizer=False)
    exported = model.to_torch(tmp_path)
    assert exported == tmp_path / "weights" / "torch" / "model.pt"
    complete = exported.read_bytes()

    real_save = torch.save

    def interrupted_save(obj: object, f: object, *args: object, **kwargs: object) -> None:
        real_save(obj, f, *args, **kwargs)
        Path(f).write_bytes(Path(f).read_bytes()[:100])  # truncated, as if killed while writing
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        model.to_torch(tmp_path)
    assert exported.read_bytes() == complete  # the previous export is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["weights"]  # staging folder removed

    # ONNX and OpenVINO go through the same staging: an exporter that dies leaves nothing at the final path.
    def dying_exporter(self: AnomalibModule, export_root: Path, *args: object, **kwargs: object) -> Path:
        del args, kwargs
        partial = Path(export_root) / "weights" / "onnx" / "model.onnx"
        partial.parent.mkdir(parents=True)
        partial.write_bytes(b"partial")
        msg = "exporter crashed"
        raise RuntimeError(msg)

    monkeypatch.setattr(AnomalibModule, "to_onnx", dying_exporter)
    with pytest.raises(RuntimeError, match="exporter crashed"):
        model.to_onnx(tmp_path)
    assert not (tmp_path / "weights" / "onnx").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["weights"]


def test_export_moves_the_entry_point_last(tmp_path: Path) -> None:
    final_xml = tmp_path / "weights" / "openvino" / "model.xml"
    final_xml.parent.mkdir(parents=True)
    final_xml.write_text("old model")
    seen: list[bool] = []

    def exporter(root: Path) -> Path:
        folder = root / "weights" / "openvino"
        folder.mkdir(parents=True)
        (folder / "model.bin").write_bytes(b"weights")
        (folder / "model.xml").write_text("new model")
        seen.append(final_xml.exists())
        return folder / "model.xml"

    assert export_atomically(exporter, tmp_path) == final_xml
    assert seen == [True]  # the old files stayed in place while exporting
    assert final_xml.read_text() == "new model"
    assert (final_xml.parent / "model.bin").read_bytes() == b"weights"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["weights"]


def test_export_interrupted_between_renames_keeps_the_previous_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "weights" / "openvino"
    folder.mkdir(parents=True)
    (folder / "model.xml").write_text("old model")
    (folder / "model.bin").write_bytes(b"old weights")

    def exporter(root: Path) -> Path:
        staged = root / "weights" / "openvino"
        staged.mkdir(parents=True)
        (staged / "model.bin").write_bytes(b"new weights")
        (staged / "extra.json").write_text("{}")  # a companion the old export did not have
        (staged / "model.xml").write_text("new model")
        return staged / "model.xml"

    real_replace = fault_tolerance._replace_durably

    def interrupted_before_entry_point(source: Path, target: Path) -> None:
        if target.name == "model.xml":
            raise KeyboardInterrupt  # the companions are already renamed into place
        real_replace(source, target)

    monkeypatch.setattr(fault_tolerance, "_replace_durably", interrupted_before_entry_point)
    with pytest.raises(KeyboardInterrupt):
        export_atomically(exporter, tmp_path)
    assert (folder / "model.xml").read_text() == "old model"
    assert (folder / "model.bin").read_bytes() == b"old weights"  # restored: it pairs with the old entry point
    assert sorted(p.name for p in folder.iterdir()) == ["model.bin", "model.xml"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["weights"]  # staging and backups removed
    monkeypatch.undo()
    assert export_atomically(exporter, tmp_path) == folder / "model.xml"
    assert (folder / "model.xml").read_text() == "new model"
    assert (folder / "model.bin").read_bytes() == b"new weights"


def test_interrupted_first_export_leaves_no_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def exporter(root: Path) -> Path:
        staged = root / "weights" / "onnx"
        staged.mkdir(parents=True)
        (staged / "model.onnx").write_text("model")
        return staged / "model.onnx"

    def interrupted(source: Path, target: Path) -> None:
        del source, target
        raise KeyboardInterrupt

    monkeypatch.setattr(fault_tolerance, "_replace_durably", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export_atomically(exporter, tmp_path)
    assert list(tmp_path.iterdir()) == []  # no weights/onnx folder, no staging folder


# ----------------------------------------------------------------------------------------------------------------
# A full disk names itself; temporaries of killed saves are removed by the next save
# ----------------------------------------------------------------------------------------------------------------

# What torch's zip writer raises on a full disk: no errno, nothing about space.
TORCH_FULL_DISK = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 128 vs 0")


def assert_names_a_full_disk(error: pytest.ExceptionInfo[NoSpaceLeftError], path: Path) -> None:
    assert error.value.errno == errno.ENOSPC
    assert "no space left on device" in str(error.value).lower()
    assert str(path) in str(error.value)


def test_full_disk_during_a_checkpoint_save_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "model.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"epoch": 1}, target)
    previous = target.read_bytes()

    def save_until_the_disk_is_full(obj: object, f: str) -> None:
        Path(f).write_bytes(b"PK\x03\x04 half")
        raise TORCH_FULL_DISK

    monkeypatch.setattr(torch, "save", save_until_the_disk_is_full)
    monkeypatch.setattr(fault_tolerance, "_free_bytes", lambda _: 0)
    with pytest.raises(NoSpaceLeftError) as error:
        io.save_checkpoint({"epoch": 2}, target)
    assert_names_a_full_disk(error, target)
    assert error.value.__cause__ is TORCH_FULL_DISK
    assert target.read_bytes() == previous
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.ckpt"]

    # The same RuntimeError with space left is another fault: it reaches the caller unchanged.
    monkeypatch.setattr(fault_tolerance, "_free_bytes", lambda _: 10**12)
    with pytest.raises(RuntimeError, match="unexpected pos") as other:
        io.save_checkpoint({"epoch": 2}, target)
    assert not isinstance(other.value, NoSpaceLeftError)


def test_enospc_from_the_os_says_so_whatever_the_free_space(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fault_tolerance, "_free_bytes", lambda _: 10**12)  # e.g. a quota or a reserve

    def write(path: Path) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(NoSpaceLeftError) as error:
        atomic_write(tmp_path / "results.json", write)
    assert_names_a_full_disk(error, tmp_path / "results.json")
    assert list(tmp_path.iterdir()) == []


def test_full_disk_during_an_export_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def exporter(content: bytes) -> object:
        def export(root: Path) -> Path:
            path = root / "weights" / "torch" / "model.pt"
            path.parent.mkdir(parents=True)
            path.write_bytes(content)
            if content == b"new":
                raise TORCH_FULL_DISK
            return path

        return export

    exported = export_atomically(exporter(b"old"), tmp_path)
    monkeypatch.setattr(fault_tolerance, "_free_bytes", lambda _: 0)
    with pytest.raises(NoSpaceLeftError) as error:
        export_atomically(exporter(b"new"), tmp_path)
    assert_names_a_full_disk(error, tmp_path)
    assert exported.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["weights"]  # no staging folder left


FULL_TMPFS_SCRIPT = """
import gc, json, sys, warnings
from pathlib import Path
warnings.filterwarnings("ignore")
import torch
from anomalib_minimaxad.fault_tolerance import AtomicCheckpointIO, NoSpaceLeftError, export_atomically

root = Path(sys.argv[1])
big = {"weights": torch.zeros(1 << 18)}  # 1 MiB, on a 256 KiB file system
report = {}
io, target = AtomicCheckpointIO(), root / "model.ckpt"
io.save_checkpoint({"epoch": 1}, target)
try:
    io.save_checkpoint(big, target)
except NoSpaceLeftError as error:
    report["checkpoint"] = [error.errno, str(error), repr(error.__cause__)]
gc.collect()  # the failed torch writer, referenced by the traceback, holds the removed temporary's blocks
report["previous_checkpoint"] = torch.load(target, weights_only=True)


def exporter(content):
    def export(staging):
        path = staging / "weights" / "torch" / "model.pt"
        path.parent.mkdir(parents=True)
        torch.save(content, path)
        return path
    return export


exported = export_atomically(exporter({"epoch": 1}), root / "exports")
try:
    export_atomically(exporter(big), root / "exports")
except NoSpaceLeftError as error:
    report["export"] = [error.errno, str(error), repr(error.__cause__)]
report["previous_export"] = torch.load(exported, weights_only=True)
report["files"] = sorted(str(path.relative_to(root)) for path in root.rglob("*"))
print(json.dumps(report))
"""


@pytest.mark.slow
def test_full_tmpfs_during_a_checkpoint_and_an_export(tmp_path: Path) -> None:
    """A real full file system: a 256 KiB tmpfs mounted in a private mount namespace (``unshare``)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("no unshare command to mount a small tmpfs")
    mount = tmp_path / "small"
    mount.mkdir()
    probe = subprocess.run(  # noqa: S603 - util-linux's unshare with fixed arguments
        [unshare, "-rm", "sh", "-c", f"mount -t tmpfs -o size=256k tmpfs '{mount}'"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs in a private mount namespace here: {probe.stderr.strip()}")
    script = tmp_path / "fill.py"
    script.write_text(textwrap.dedent(FULL_TMPFS_SCRIPT))
    command = f"mount -t tmpfs -o size=256k tmpfs '{mount}' && exec '{sys.executable}' '{script}' '{mount}'"
    result = subprocess.run(  # noqa: S603 - our own script, run by this interpreter
        [unshare, "-rm", "sh", "-c", command],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    for key, path in (("checkpoint", mount / "model.ckpt"), ("export", mount / "exports")):
        code, message, cause = report[key]
        assert code == errno.ENOSPC, report
        assert "no space left on device" in message.lower(), message
        assert str(path) in message, message
        assert "unexpected pos" in cause or "No space left" in cause, cause  # what torch's writer said
    assert report["previous_checkpoint"] == {"epoch": 1}
    assert report["previous_export"] == {"epoch": 1}
    assert report["files"] == ["exports", "exports/weights", "exports/weights/torch", "exports/weights/torch/model.pt",
                               "model.ckpt"]  # fmt: skip


KILLED_SAVE_SCRIPT = """
import sys, time
from pathlib import Path
from anomalib_minimaxad.fault_tolerance import atomic_write


def write_forever(path):
    path.write_bytes(b"half a checkpoint")
    print("writing", flush=True)
    time.sleep(600)


atomic_write(Path(sys.argv[1]), write_forever)
"""


@pytest.mark.slow
def test_next_save_removes_the_temporary_of_a_killed_save(tmp_path: Path) -> None:
    folder = tmp_path / "weights"
    folder.mkdir()
    script = tmp_path / "killed_save.py"
    script.write_text(textwrap.dedent(KILLED_SAVE_SCRIPT))
    process = subprocess.Popen(  # noqa: S603 - our own script, run by this interpreter
        [sys.executable, str(script), str(folder / "model.ckpt")],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    try:
        assert process.stdout.readline() == "writing\n"
        (leftover,) = folder.iterdir()  # the writer is alive: its temporary must survive a save beside it
        atomic_write(folder / "other.ckpt", lambda path: path.write_bytes(b"other"))
        assert leftover.exists()
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert leftover.name.startswith(".model.ckpt.")
    # Files of the user's with similar names are never touched.
    users = [".model.ckpt.tmp", ".model.ckpt.0123456789ab.tmp", "model.ckpt.0123456789ab.minimaxad-tmp", ".export-1"]
    for name in users:
        (folder / name).write_bytes(b"mine")
    atomic_write(folder / "model.ckpt", lambda path: path.write_bytes(b"complete"))
    assert not leftover.exists()
    assert sorted(p.name for p in folder.iterdir()) == sorted(["model.ckpt", "other.ckpt", *users])
    assert (folder / "model.ckpt").read_bytes() == b"complete"


def test_temporaries_of_live_writers_are_kept(tmp_path: Path) -> None:
    """A save in another thread holds its temporary: a save beside it, and the clean-up, leave it alone."""
    started, release = threading.Event(), threading.Event()

    def slow_write(path: Path) -> None:
        path.write_bytes(b"in progress")
        started.set()
        release.wait(timeout=60)

    writer = threading.Thread(target=atomic_write, args=(tmp_path / "slow.ckpt", slow_write))
    writer.start()
    try:
        assert started.wait(timeout=60)
        (temporary,) = tmp_path.iterdir()
        assert remove_abandoned_temporaries(tmp_path) == []
        atomic_write(tmp_path / "fast.ckpt", lambda path: path.write_bytes(b"fast"))
        assert temporary.exists()
    finally:
        release.set()
        writer.join()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fast.ckpt", "slow.ckpt"]


def test_next_save_and_export_remove_abandoned_temporaries(tmp_path: Path) -> None:
    """Leftovers no writer holds (as after a kill): the next save removes its folder's, the next export its own."""
    abandoned = tmp_path / ".model.ckpt.0123456789ab.minimaxad-tmp"
    abandoned.write_bytes(b"half a checkpoint")
    atomic_write(tmp_path / "results.json", lambda path: path.write_text("{}"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]

    staging = tmp_path / ".minimaxad-export-k2x9q_7a"  # as tempfile.mkdtemp names it
    (staging / "weights" / "onnx").mkdir(parents=True)
    (staging / "weights" / "onnx" / "model.onnx").write_bytes(b"half")
    users = tmp_path / ".export-k2x9q_7a"
    users.mkdir()

    def exporter(root: Path) -> Path:
        path = root / "weights" / "onnx" / "model.onnx"
        path.parent.mkdir(parents=True)
        path.write_bytes(b"model")
        return path

    assert export_atomically(exporter, tmp_path).read_bytes() == b"model"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".export-k2x9q_7a", "results.json", "weights"]


# ----------------------------------------------------------------------------------------------------------------
# Distributed data parallel on CPU
# ----------------------------------------------------------------------------------------------------------------

DDP_SCRIPT = """
import json, sys, warnings
from pathlib import Path

warnings.filterwarnings("ignore")
import torch
from anomalib.data import MVTecAD
from anomalib.engine import Engine
from lightning.pytorch import Callback, Trainer, seed_everything

from anomalib_minimaxad import MiniMaxAD
from anomalib_minimaxad.data import Unified
from anomalib_minimaxad.fault_tolerance import AtomicCheckpointIO

root, out = Path(sys.argv[1]), Path(sys.argv[2])
torch.set_num_threads(1)
seed_everything(111)
datamodule = Unified(root=root, categories="all", train_batch_size=2, eval_batch_size=4, num_workers=0)
model = MiniMaxAD(pre_trained=False, dims=(16, 32, 64, 128), visualizer=False)
engine = Engine(default_root_dir=out, max_epochs=1, limit_val_batches=0, accelerator="cpu", devices=2,
                strategy="ddp", logger=False, enable_progress_bar=False, enable_model_summary=False,
                plugins=[AtomicCheckpointIO()])
engine.fit(model=model, datamodule=datamodule)
trainer = engine.trainer
parameters = {name: value.detach() for name, value in model.model.named_parameters()}
torch.save({"parameters": parameters, "state": model.model.state_dict()}, out / f"rank{trainer.global_rank}.pt")
if trainer.is_global_zero:
    report = {"world_size": trainer.world_size, "global_step": trainer.global_step,
              "checkpoint": trainer.checkpoint_callback.best_model_path,
              "checkpoint_io": type(trainer.strategy.checkpoint_io).__name__}
    (out / "report.json").write_text(json.dumps(report))
"""


@pytest.mark.slow
def test_ddp_on_cpu_with_two_processes(demo_root: Path, tmp_path: Path) -> None:
    script = tmp_path / "ddp_train.py"
    script.write_text(textwrap.dedent(DDP_SCRIPT))
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    start = time.monotonic()
    result = subprocess.run(  # noqa: S603 - our own script, run by this interpreter
        [sys.executable, str(script), str(demo_root), str(out)],
        capture_output=True,
        text=True,
        timeout=DDP_TIMEOUT_S,
        cwd=ROOT,
        env=env,
        check=False,
    )
    elapsed = time.monotonic() - start
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["world_size"] == 2
    assert report["global_step"] == 2  # 6 images, 3 per process, batches of 2 (the last one of 1)
    assert report["checkpoint_io"] == "AtomicCheckpointIO"
    rank0 = torch.load(out / "rank0.pt", weights_only=True)
    rank1 = torch.load(out / "rank1.pt", weights_only=True)
    # Gradients were averaged: both replicas hold the same weights (BatchNorm statistics stay per process).
    assert max_difference(rank0["parameters"], rank1["parameters"]) == 0.0
    # The checkpoint of the 2-process run (rank 0's) loads in a single process and holds the trained model.
    single = MiniMaxAD.load_from_checkpoint(report["checkpoint"], visualizer=False)
    assert max_difference(trained(single), rank0["state"]) == 0.0
    print(f"2-process DDP run: {elapsed:.1f} s")  # noqa: T201

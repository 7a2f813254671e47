"""The entry-point import hook (``anomalib_minimaxad_hook``) and the ``MVTec`` datamodule alias.

Hook tests run in fresh interpreters (``sys.executable``), because the hook acts at interpreter start
and on the first import of ``anomalib.models`` / ``anomalib.data``. They need the package installed
(``pip install -e .``), which puts ``anomalib_minimaxad_hook.pth`` into site-packages. Each of them
spends a few seconds importing anomalib, so every one checks as much as it can.
"""

from __future__ import annotations

import inspect
import itertools
import os
import subprocess
import sys
import textwrap
import urllib.error
from pathlib import Path

import pytest
from anomalib.data import MVTecAD
from anomalib.data.datamodules.image import mvtecad
from anomalib.data.utils import download

import anomalib_minimaxad.data
from anomalib_minimaxad.data.mvtec import MVTec, MVTecNotFoundError

NO_HOOK = "ANOMALIB_MINIMAXAD_NO_HOOK"
HOOK_WARNING = "anomalib-minimaxad:"  # prefix of every warning the hook logs
TIMEOUT_S = 600
IMPORT_ORDER_MODULES = (
    "anomalib.data",
    "anomalib.models",
    "anomalib.metrics",
    "anomalib.post_processing",
    "anomalib.engine",
)

# ----------------------------------------------------------------------------------------------------------------
# Code run in fresh interpreters
# ----------------------------------------------------------------------------------------------------------------

HOOK_OFF = """
import sys
assert "anomalib_minimaxad_hook" in sys.modules  # the .pth still imports it, but it installs nothing
assert not any(getattr(f, "_anomalib_minimaxad_hook", False) for f in sys.meta_path)
import anomalib.data
assert not hasattr(anomalib.data, "MVTec")
assert "anomalib_minimaxad" not in sys.modules
"""

REAL_PACKAGE = """
import importlib

importlib.import_module(FIRST)
import anomalib.data
import anomalib.models
from anomalib.models import get_model, list_models

from anomalib_minimaxad import MiniMaxAD
from anomalib_minimaxad.data import MVTec

assert anomalib.models.MiniMaxAD is MiniMaxAD
assert "MiniMaxAD" in anomalib.models.__all__
assert "MiniMaxAD" in list_models("pascal")
# get_model(name) looks the class up with _get_model_class_by_name; building MiniMaxAD takes seconds,
# so only one import order instantiates it.
assert anomalib.models._get_model_class_by_name("MiniMaxAD") is MiniMaxAD
assert anomalib.models._get_model_class_by_name("minimaxad") is MiniMaxAD
assert {"anomalib_minimaxad", "anomalib_minimaxad.lightning_model"} <= anomalib.models.ALLOWED_MODULES
if INSTANTIATE:
    assert type(get_model("MiniMaxAD")) is MiniMaxAD
    assert type(get_model({"class_path": "anomalib_minimaxad.MiniMaxAD"})) is MiniMaxAD

assert anomalib.data.MVTec is MVTec
assert "MVTec" in anomalib.data.__all__
config = {"class_path": "MVTec", "init_args": {"root": "/nonexistent/MVTecAD", "category": "carpet"}}
assert type(anomalib.data.get_datamodule(config)) is MVTec
"""

CLI = """
import sys
from anomalib.cli.cli import main

sys.argv = ["anomalib", "train", "--model", "MiniMaxAD", "--data", "MVTec",
            "--data.root", ROOT, "--data.category", "carpet", "--print_config"]
try:
    main()
except SystemExit as exc:
    assert not exc.code, exc.code
"""

# Every order of importing anomalib's main modules, each in a process that has imported no anomalib module
# before: the process preloads anomalib's dependencies (torch, Lightning, timm, ...; the hook follows only
# anomalib and our package) and forks a tree whose paths are the 120 orders, so that the common prefixes
# (and the expensive first imports) are executed once. Each leaf prints one line: OK/FAIL, its order, problems.
IMPORT_ORDERS = """
import importlib, logging, os, sys

for name in ("torch", "torchvision", "lightning", "torchmetrics", "timm"):
    importlib.import_module(name)
assert not [m for m in sys.modules if m.partition(".")[0] in {"anomalib", "anomalib_minimaxad"}]


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


collect = Collect()
logging.getLogger().addHandler(collect)


def problems():
    import anomalib.data, anomalib.models
    from anomalib_minimaxad.data.mvtec import MVTec
    from anomalib_minimaxad.data.unified import Unified
    from anomalib_minimaxad.lightning_model import MiniMaxAD

    found = [m for m in collect.messages if "anomalib-minimaxad" in m]
    # Published as attributes once the imports are done, not only on demand through __getattr__.
    for module, name, cls in ((anomalib.data, "MVTec", MVTec), (anomalib.data, "Unified", Unified),
                              (anomalib.models, "MiniMaxAD", MiniMaxAD)):
        if vars(module).get(name) is not cls or name not in module.__all__:
            found.append(f"{module.__name__}.{name} missing")
    return found


def visit(prefix):
    if len(prefix) == len(MODULES):
        found = problems()
        os.write(1, f"{'FAIL' if found else 'OK'} {','.join(prefix)} {found}\\n".encode())
        return
    for name in MODULES:
        if name in prefix:
            continue
        pid = os.fork()
        if pid == 0:
            try:
                importlib.import_module(name)
                visit((*prefix, name))
            except BaseException as exc:
                os.write(1, f"FAIL {','.join((*prefix, name))} {exc!r}\\n".encode())
                os._exit(1)
            os._exit(0)
        os.waitpid(pid, 0)


visit(())
"""

# A distribution "fakeplugin" with its own entry points shows that the hook is generic. Like ours, the
# package imports its model in __init__: importing it first fires the hook while it is mid-import.
FAKE_ENTRY_POINTS = """\
[anomalib.models]
FakeModel = fakeplugin.model:FakeModel
Broken = fakeplugin.broken:Thing
Padim = fakeplugin.model:FakeModel

[anomalib.data]
FakeData = fakeplugin.data:FakeData
"""

FAKE_MODEL = """\
from anomalib import LearningType
from anomalib.models import AnomalibModule


class FakeModel(AnomalibModule):
    @property
    def trainer_arguments(self):
        return {}

    @property
    def learning_type(self):
        return LearningType.ONE_CLASS
"""

FAKE_PLUGIN_FIRST = """
import fakeplugin  # imports anomalib.models while fakeplugin itself is half initialised
import anomalib.data
import anomalib.models
from anomalib.models import Padim, get_model, list_models

assert anomalib.models.FakeModel is fakeplugin.FakeModel
assert "FakeModel" in list_models("pascal")
assert "FakeModel" in anomalib.models.__all__
assert type(get_model("fake_model")) is fakeplugin.FakeModel
assert type(get_model({"class_path": "fakeplugin.model.FakeModel"})) is fakeplugin.FakeModel
assert Padim.__module__.startswith("anomalib.models"), "an entry point must not shadow anomalib's names"

from fakeplugin.data import FakeData
assert anomalib.data.FakeData is FakeData and "FakeData" in anomalib.data.__all__

assert not hasattr(anomalib.models, "Broken")
"""


def write_fake_distribution(directory: Path) -> Path:
    """Write package ``fakeplugin`` and its dist-info into ``directory`` (to put on ``PYTHONPATH``)."""
    package = directory / "fakeplugin"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("from fakeplugin.model import FakeModel\n")
    (package / "model.py").write_text(FAKE_MODEL)
    (package / "data.py").write_text("from anomalib.data import MVTecAD\n\n\nclass FakeData(MVTecAD):\n    pass\n")
    (package / "broken.py").write_text('raise RuntimeError("boom")\n')
    dist_info = directory / "fakeplugin-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeplugin\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text(FAKE_ENTRY_POINTS)
    return directory


# ----------------------------------------------------------------------------------------------------------------
# Running a fresh interpreter
# ----------------------------------------------------------------------------------------------------------------


def python_env(extra_env: dict[str, str] | None = None, pythonpath: Path | None = None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != NO_HOOK}
    env["PYTHONWARNINGS"] = "ignore"  # timm/anomalib deprecation noise
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), env.get("PYTHONPATH")]))
    env.update(extra_env or {})
    return env


def run_python(
    code: str, *, extra_env: dict[str, str] | None = None, pythonpath: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter, assert it exits with 0 and return the finished process."""
    proc = subprocess.run(  # noqa: S603  # our own interpreter and code
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=python_env(extra_env, pythonpath),
        timeout=TIMEOUT_S,
        check=False,
    )
    assert proc.returncode == 0, f"exit code {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


# ----------------------------------------------------------------------------------------------------------------
# Interpreter start and the switch
# ----------------------------------------------------------------------------------------------------------------


def test_hook_is_installed_and_imports_nothing_heavy() -> None:
    run_python(
        """
        import sys
        assert "anomalib_minimaxad_hook" in sys.modules, "the .pth file did not import the hook"
        import anomalib_minimaxad_hook
        assert any(getattr(f, "_anomalib_minimaxad_hook", False) for f in sys.meta_path)
        heavy = {"torch", "anomalib", "anomalib_minimaxad", "importlib.metadata"} & sys.modules.keys()
        assert not heavy, heavy
        """
    )


def test_env_var_switches_the_hook_off() -> None:
    run_python(HOOK_OFF, extra_env={NO_HOOK: "1"})


# ----------------------------------------------------------------------------------------------------------------
# The real MiniMaxAD model and MVTec alias, whichever module is imported first
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("first", ["anomalib.models", "anomalib_minimaxad", "anomalib.data", "anomalib.metrics"])
def test_real_model_and_datamodule_are_registered(first: str) -> None:
    instantiate = first == "anomalib.models"
    stderr = run_python(f"FIRST = {first!r}\nINSTANTIATE = {instantiate}\n{REAL_PACKAGE}").stderr
    assert HOOK_WARNING not in stderr, stderr


@pytest.mark.slow
def test_every_import_order_registers_everything() -> None:
    lines = run_python(f"MODULES = {IMPORT_ORDER_MODULES!r}\n{IMPORT_ORDERS}").stdout.splitlines()
    orders = {line.split()[1] for line in lines if line.startswith("OK ")}
    failures = [line for line in lines if not line.startswith("OK ")]
    assert not failures, "\n".join(failures)
    assert orders == {",".join(order) for order in itertools.permutations(IMPORT_ORDER_MODULES)}


def test_cli_accepts_minimaxad_and_mvtec(tmp_path: Path) -> None:
    root = tmp_path / "MVTecAD"
    proc = run_python(f"ROOT = {str(root)!r}\n{CLI}")
    assert HOOK_WARNING not in proc.stderr, proc.stderr
    assert "class_path: anomalib_minimaxad.MiniMaxAD" in proc.stdout, proc.stdout
    assert "class_path: anomalib_minimaxad.data.MVTec" in proc.stdout, proc.stdout
    assert f"root: {root}" in proc.stdout, proc.stdout
    assert not root.exists()  # parsing must not download anything


# ----------------------------------------------------------------------------------------------------------------
# The hook is generic: a fake distribution with its own entry points
# ----------------------------------------------------------------------------------------------------------------


def test_hook_registers_any_distribution_even_when_it_is_mid_import(tmp_path: Path) -> None:
    stderr = run_python(FAKE_PLUGIN_FIRST, pythonpath=write_fake_distribution(tmp_path)).stderr
    # The broken entry point is reported by name, with its error, and did not break importing anomalib.
    broken = [line for line in stderr.splitlines() if HOOK_WARNING in line and "'Broken'" in line]
    assert broken, stderr
    assert "boom" in broken[0]


# ----------------------------------------------------------------------------------------------------------------
# MVTec: same interface as MVTecAD, clear error and no leftovers when the download fails
# ----------------------------------------------------------------------------------------------------------------


def test_mvtec_has_the_signature_of_mvtecad() -> None:
    assert issubclass(MVTec, MVTecAD)
    assert inspect.signature(MVTec) == inspect.signature(MVTecAD)
    assert MVTec.__init__ is MVTecAD.__init__


def test_data_package_exports_mvtec_lazily() -> None:
    assert anomalib_minimaxad.data.MVTec is MVTec
    assert "MVTec" in anomalib_minimaxad.data.__all__
    assert "MVTec" not in vars(anomalib_minimaxad.data)  # served by the module __getattr__, imported on demand


def _offline_urlretrieve(url: str, filename: Path, reporthook: object = None) -> None:
    """Stand-in for ``urlretrieve`` that fails like a dropped connection after writing a partial file."""
    Path(filename).write_bytes(b"partial")
    msg = "[Errno -3] Temporary failure in name resolution"
    raise urllib.error.URLError(msg)


def _snapshot(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in root.rglob("*")}


def test_mvtec_failed_download_raises_clear_error_and_leaves_no_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(download, "urlretrieve", _offline_urlretrieve)
    root = tmp_path / "datasets" / "MVTecAD"
    datamodule = MVTec(root=root, category="bottle")
    with pytest.raises(MVTecNotFoundError) as excinfo:
        datamodule.prepare_data()
    message = str(excinfo.value)
    assert str(root / "bottle") in message
    assert "mvtec.com" in message
    assert "train/good" in message
    assert "URLError" in message
    assert isinstance(excinfo.value, FileNotFoundError)
    assert isinstance(excinfo.value.__cause__, urllib.error.URLError)
    assert list(tmp_path.iterdir()) == []  # neither datasets/ nor datasets/MVTecAD/ is left behind


def test_mvtec_failed_download_keeps_existing_user_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(download, "urlretrieve", _offline_urlretrieve)
    root = tmp_path / "MVTecAD"
    (root / "cable" / "train" / "good").mkdir(parents=True)
    (root / "cable" / "train" / "good" / "000.png").write_bytes(b"png")
    (root / "notes.txt").write_text("mine")
    before = _snapshot(root)
    with pytest.raises(MVTecNotFoundError):
        MVTec(root=root, category="bottle").prepare_data()
    assert _snapshot(root) == before  # the partial archive is gone, everything else untouched


def test_mvtec_failed_extraction_is_cleaned_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def partial_download_and_extract(root: Path, info: object) -> None:
        (root / "bottle" / "train").mkdir(parents=True)
        (root / "license.txt").write_text("partial")
        msg = "connection reset by peer"
        raise ConnectionError(msg)

    monkeypatch.setattr(mvtecad, "download_and_extract", partial_download_and_extract)
    root = tmp_path / "MVTecAD"
    root.mkdir()
    (root / "keep.txt").write_text("mine")
    with pytest.raises(MVTecNotFoundError, match="connection reset by peer"):
        MVTec(root=root, category="bottle").prepare_data()
    assert sorted(p.name for p in root.iterdir()) == ["keep.txt"]


def test_mvtec_interrupted_download_is_cleaned_up_and_not_disguised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(url: str, filename: Path, reporthook: object = None) -> None:
        Path(filename).write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(download, "urlretrieve", interrupted)
    root = tmp_path / "MVTecAD"
    with pytest.raises(KeyboardInterrupt):
        MVTec(root=root, category="bottle").prepare_data()
    assert not root.exists()


def test_mvtec_existing_category_is_used_without_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_download(*args: object) -> None:
        pytest.fail("must not download when root/category exists")

    monkeypatch.setattr(mvtecad, "download_and_extract", no_download)
    (tmp_path / "bottle").mkdir()
    MVTec(root=tmp_path, category="bottle").prepare_data()

"""Interpreter-start hook of anomalib-minimaxad, imported by ``anomalib_minimaxad_hook.pth``.

anomalib reads no entry points, so this module installs a ``sys.meta_path`` finder that follows the
execution of every module of ``anomalib`` and of our own package. When ``anomalib.models`` or
``anomalib.data`` has executed, and whenever the last of those modules still executing has finished,
it hands over to :mod:`anomalib_minimaxad._registration` (loaded by path, without the package
``__init__``), which registers the ``anomalib.models`` and ``anomalib.data`` entry-point groups.
Knowing which of anomalib's modules are mid-import is what makes the registration independent of
import order: ``import anomalib.metrics`` runs ``anomalib.data`` to completion while
``anomalib.metrics`` itself is half initialised, and loading our ``MVTec`` at that moment would meet
the half-initialised ``anomalib.metrics``. It runs at every interpreter start, so it imports nothing
but ``os``/``sys`` (both already loaded by ``site``). Set ``ANOMALIB_MINIMAXAD_NO_HOOK=1`` to disable it.
"""

import os
import sys

_PACKAGES = ("anomalib", "anomalib_minimaxad")  # followed with all their submodules
#: Modules whose completion registers an entry-point group (see ``_registration.GROUPS``).
_GROUP_MODULES = frozenset({"anomalib.models", "anomalib.data"})
_MARK = "_anomalib_minimaxad_hook"
_REGISTRATION = "anomalib_minimaxad._registration"

#: Followed modules whose code is executing now, outermost first (read by ``_registration``).
executing: list[str] = []


def _followed(name: str) -> bool:
    return any(name == package or name.startswith(package + ".") for package in _PACKAGES)


def _registration() -> object:
    """Load ``anomalib_minimaxad/_registration.py`` (stdlib only) *without* running the package ``__init__``.

    The hook may fire while our package is half imported.
    """
    if _REGISTRATION not in sys.modules:
        import importlib.util  # only once anomalib is imported, never at start

        package = importlib.util.find_spec("anomalib_minimaxad")  # locates the package, imports nothing
        path = os.path.join(next(iter(package.submodule_search_locations)), "_registration.py")  # noqa: PTH118
        spec = importlib.util.spec_from_file_location(_REGISTRATION, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[_REGISTRATION] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[_REGISTRATION]
            raise
    return sys.modules[_REGISTRATION]


def _fire(module: object) -> None:
    try:
        _registration().on_module_loaded(module)
    except Exception as exc:  # noqa: BLE001  # the hook must never break importing anomalib
        import logging

        logging.getLogger(__name__).warning("anomalib-minimaxad: registration with anomalib failed: %r", exc)


class _Loader:
    """Wraps the real loader of a followed module; records its execution and calls the registration."""

    def __init__(self, loader: object) -> None:
        self.loader = loader

    def __getattr__(self, name: str) -> object:  # get_code, get_source, is_package, ... of the real loader
        if name == "loader":  # not set yet (e.g. a copy): avoid endless recursion
            raise AttributeError(name)
        return getattr(self.loader, name)

    def create_module(self, spec: object) -> object:
        return self.loader.create_module(spec)

    def exec_module(self, module: object) -> None:
        executing.append(module.__name__)
        try:
            self.loader.exec_module(module)
        finally:  # leave no trace of the wrapper on the imported module
            executing.remove(module.__name__)
            module.__loader__ = module.__spec__.loader = self.loader
        # Anything else only matters once registration has started (something may be pending).
        if module.__name__ in _GROUP_MODULES or (not executing and _REGISTRATION in sys.modules):
            _fire(module)


class _Finder:
    """Meta-path finder that only wraps the loaders of followed modules; every other import is untouched."""

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> object:  # noqa: PLR6301
        if not _followed(fullname):
            return None
        for finder in sys.meta_path:
            if getattr(finder, _MARK, False) or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if hasattr(spec.loader, "exec_module"):
                    spec.loader = _Loader(spec.loader)
                return spec
        return None


setattr(_Finder, _MARK, True)

if os.environ.get("ANOMALIB_MINIMAXAD_NO_HOOK", "") in {"", "0"} and not any(
    getattr(finder, _MARK, False) for finder in sys.meta_path
):
    sys.meta_path.insert(0, _Finder())
    for _name in sorted(_GROUP_MODULES & sys.modules.keys()):  # imported before the hook (only if imported late)
        _fire(sys.modules[_name])

"""Interpreter-start hook of anomalib-minimaxad, imported by ``anomalib_minimaxad_hook.pth``.

anomalib reads no entry points, so this module installs a ``sys.meta_path`` finder that waits for
``anomalib.models`` / ``anomalib.data`` (and our own package) to finish executing and then hands
over to :mod:`anomalib_minimaxad._registration` (loaded by path, without the package's heavy ``__init__``),
which registers the ``anomalib.models`` and ``anomalib.data`` entry-point groups. It runs at every
interpreter start, so it imports nothing but ``os``/``sys`` (both already loaded by ``site``).
Set ``ANOMALIB_MINIMAXAD_NO_HOOK=1`` to disable it.
"""

import os
import sys

# Modules whose completion triggers registration; our own package is watched so that entry points
# deferred while it was mid-import are resolved as soon as it is complete.
_WATCHED = frozenset({"anomalib.models", "anomalib.data", "anomalib_minimaxad"})
_MARK = "_anomalib_minimaxad_hook"


def _registration() -> object:
    """Load ``anomalib_minimaxad/_registration.py`` (stdlib only) *without* running the package ``__init__``.

    The package imports anomalib and torch, and the hook may fire while anomalib is half imported.
    """
    name = "anomalib_minimaxad._registration"
    if name not in sys.modules:
        import importlib.util  # noqa: PLC0415  # only once anomalib is imported, never at start

        package = importlib.util.find_spec("anomalib_minimaxad")  # locates the package, imports nothing
        path = os.path.join(next(iter(package.submodule_search_locations)), "_registration.py")  # noqa: PTH118
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    return sys.modules[name]


def _fire(module: object) -> None:
    try:
        _registration().on_module_loaded(module)
    except Exception as exc:  # noqa: BLE001  # the hook must never break importing anomalib
        import logging  # noqa: PLC0415

        logging.getLogger(__name__).warning("anomalib-minimaxad: registration with anomalib failed: %r", exc)


class _Loader:
    """Wraps the real loader of a watched module; calls the registration once the module has executed."""

    def __init__(self, loader: object) -> None:
        self.loader = loader

    def __getattr__(self, name: str) -> object:  # get_code, get_source, is_package, ... of the real loader
        if name == "loader":  # not set yet (e.g. a copy): avoid endless recursion
            raise AttributeError(name)
        return getattr(self.loader, name)

    def create_module(self, spec: object) -> object:
        return self.loader.create_module(spec)

    def exec_module(self, module: object) -> None:
        try:
            self.loader.exec_module(module)
        finally:  # leave no trace of the wrapper on the imported module
            module.__loader__ = module.__spec__.loader = self.loader
        _fire(module)


class _Finder:
    """Meta-path finder that only wraps the loaders of the watched modules; every other import is untouched."""

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> object:
        if fullname not in _WATCHED:
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
    for _name in sorted(_WATCHED & sys.modules.keys()):  # imported before the hook (only if imported late)
        _fire(sys.modules[_name])

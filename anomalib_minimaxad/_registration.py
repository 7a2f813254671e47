# Copyright (C) 2026 anomalib-minimaxad developers
# SPDX-License-Identifier: Apache-2.0
"""Make the ``anomalib.models`` / ``anomalib.data`` entry points visible inside anomalib.

anomalib 2.x reads no entry points: ``get_model``/``list_models`` scan the direct subclasses of
``AnomalibModule``, ``get_datamodule`` looks names up on ``anomalib.data`` and the CLI (jsonargparse)
resolves ``--model X`` / ``--data X`` among the *imported* subclasses. The tiny root module
``anomalib_minimaxad_hook`` (imported by a ``.pth`` file at interpreter start) follows the execution of
every module of ``anomalib`` and ``anomalib_minimaxad`` and calls :func:`on_module_loaded` when
``anomalib.models`` or ``anomalib.data`` has executed and whenever no followed module is executing any
more. For every entry point of the group named like the module this

* sets the loaded object as an attribute of the module and appends its name to ``__all__``;
* adds the entry point's module (and its parent packages) to ``ALLOWED_MODULES`` where the module has
  one (``anomalib.models`` does, for ``get_model({"class_path": "anomalib_minimaxad.MiniMaxAD"})``).

Loading is deferred while any module of ``anomalib`` or ``anomalib_minimaxad`` is mid-import, or a
package of the entry point's own module is (another distribution whose ``__init__`` imports anomalib).
Whichever anomalib module a process imports first, our modules are therefore loaded only once
anomalib is consistent: e.g. ``import anomalib.metrics`` executes ``anomalib.data`` to completion while
``anomalib.metrics`` is still half initialised, and our ``MVTec`` imports ``anomalib.metrics``.
Deferred entry points are retried when the outermost followed import completes, on attribute access
(module ``__getattr__``) and before ``list_models`` / ``_get_model_class_by_name`` run. A failing entry
point is logged as a warning and skipped: it never breaks importing anomalib.

**Seeds on the command line.** anomalib 2.7's CLI parses ``seed_everything`` ("run seed_everything with
this value before classes instantiation") but never calls it, so a preset's ``seed_everything: 111`` does
nothing. Once ``anomalib.cli.cli`` has executed, :func:`on_module_loaded` wraps
``AnomalibCLI.before_instantiate_classes`` so that, for a MiniMaxAD model (or a subclass) only, it seeds as
``LightningCLI`` does before building the model and the datamodule: an int seeds with that value, ``true``
(anomalib's default) as Lightning's ``seed_everything()`` without a value (``PL_GLOBAL_SEED``, else 0),
``false`` not at all; the seed used is written back into the config, so the saved ``config.yaml`` records
it. Every other model runs exactly as anomalib runs it. The same fix for anomalib itself is
``scripts/upstream/cli_seed.patch``; with it applied, our wrapper seeds a second time with the same value,
which changes nothing. A wrapper of the CLI, rather than a callback or the model, because the seed must be
set before the model's initial weights and the datamodule exist, and only the CLI knows it then.

This module is imported only when the hook fires, so it must stay free of heavy imports.
"""

from __future__ import annotations

import functools
import logging
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable
    from importlib.metadata import EntryPoint
    from types import ModuleType

logger = logging.getLogger(__name__)

#: anomalib's CLI module, whose ``AnomalibCLI`` gets the seeding (see the module docstring).
_CLI_MODULE = "anomalib.cli.cli"
#: Module and name of the model class the seeding is for (itself and its subclasses).
_OUR_MODEL = ("anomalib_minimaxad.lightning_model", "MiniMaxAD")
#: Module of anomalib -> entry-point group whose objects are published on it.
GROUPS: dict[str, str] = {"anomalib.models": "anomalib.models", "anomalib.data": "anomalib.data"}
#: Packages whose modules the hook follows (``anomalib_minimaxad_hook.executing``).
_FOLLOWED: tuple[str, ...] = ("anomalib", "anomalib_minimaxad")
_HOOK_MODULE = "anomalib_minimaxad_hook"
#: anomalib functions that find classes by scanning ``__subclasses__()``: resolve pending entry points first.
_RESOLVING_FUNCTIONS: dict[str, tuple[str, ...]] = {"anomalib.models": ("list_models", "_get_model_class_by_name")}
_HOOKED = "__anomalib_minimaxad_hook__"
_MISSING = object()

_pending: dict[str, dict[str, EntryPoint]] = {}  # module name -> attribute name -> entry point
_resolving = False


def on_module_loaded(module: ModuleType) -> None:
    """Register the entry points belonging to ``module`` and retry deferred ones.

    Args:
        module: A module followed by the hook whose code has just finished executing.
    """
    if module.__name__ == __package__:  # the hook loads this module by path: bind it like a normal import would
        vars(module).setdefault(__name__.rpartition(".")[2], sys.modules[__name__])
    group = GROUPS.get(module.__name__)
    if group is not None:
        _register_group(module, group)
    resolve_pending()
    _seed_cli_runs_of_our_model()


def resolve_pending() -> None:
    """Load every deferred entry point whose packages are no longer mid-import."""
    global _resolving  # noqa: PLW0603  # re-entrancy guard: loading an entry point may fire the hook again
    if _resolving:
        return  # the outer call keeps looping until nothing changes
    _resolving = True
    try:
        progress = True
        while progress:
            progress = False
            for module_name, entry_points in list(_pending.items()):
                module = sys.modules.get(module_name)
                for name, entry_point in list(entry_points.items()):
                    if module is not None and not _blocked(entry_point):
                        _load(module, name, entry_point)
                        progress = True
    finally:
        _resolving = False


def _register_group(module: ModuleType, group: str) -> None:
    from importlib.metadata import entry_points  # only once anomalib is being imported

    try:
        found = entry_points(group=group)
    except Exception as exc:  # noqa: BLE001  # broken metadata must not break importing anomalib
        logger.warning("anomalib-minimaxad: cannot read the %r entry points: %r", group, exc)
        return
    pending = _pending.setdefault(module.__name__, {})
    for entry_point in found:
        if entry_point.name in vars(module) or entry_point.name in pending:
            # Never shadow a name anomalib (or an earlier distribution) already defines.
            logger.debug(
                "anomalib-minimaxad: %s.%s exists, entry point %r skipped",
                module.__name__,
                entry_point.name,
                entry_point,
            )
            continue
        pending[entry_point.name] = entry_point
        _allow_module(module, entry_point.module)
    if pending:
        _install_lazy_access(module)


def _allow_module(module: ModuleType, module_path: str) -> None:
    """Whitelist ``module_path`` and its parents for ``get_model({"class_path": ...})``."""
    allowed = getattr(module, "ALLOWED_MODULES", None)
    if isinstance(allowed, set):
        parts = module_path.split(".")
        allowed.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))


def _executing() -> list[str]:
    """The followed modules executing now, as recorded by the hook (none without the hook)."""
    return getattr(sys.modules.get(_HOOK_MODULE), "executing", [])


def _mid_import(name: str) -> bool:
    if any(name == package or name.startswith(package + ".") for package in _FOLLOWED):
        return name in _executing()
    # Another distribution's package: importlib marks a module's spec while it executes.
    spec = getattr(sys.modules.get(name), "__spec__", None)
    return bool(getattr(spec, "_initializing", False))


def _blocked(entry_point: EntryPoint) -> bool:
    """Whether loading ``entry_point`` now could meet a half-initialised module."""
    if _executing():
        return True
    parts = entry_point.module.split(".")
    return any(_mid_import(".".join(parts[:i])) for i in range(1, len(parts) + 1))


def _load(module: ModuleType, name: str, entry_point: EntryPoint) -> Any:  # noqa: ANN401  # any registered object
    """Load ``entry_point`` and publish it as ``module.<name>``; log and return ``_MISSING`` on failure."""
    _pending.get(module.__name__, {}).pop(name, None)  # whatever happens, try only once
    try:
        obj = entry_point.load()
    except Exception as exc:  # noqa: BLE001  # a broken plugin must not break anomalib
        logger.warning(
            "anomalib-minimaxad: could not load entry point %r = %r of group %r: %r",
            entry_point.name,
            entry_point.value,
            entry_point.group,
            exc,
        )
        return _MISSING
    setattr(module, name, obj)
    names = getattr(module, "__all__", None)
    if isinstance(names, list) and name not in names:
        names.append(name)
    return obj


def _install_lazy_access(module: ModuleType) -> None:
    """Resolve deferred entry points on ``module.<name>`` access and before subclass-scanning lookups."""
    previous = module.__dict__.get("__getattr__")
    if not getattr(previous, _HOOKED, False):

        def __getattr__(name: str) -> Any:  # noqa: ANN401, N807  # PEP 562 module __getattr__
            entry_point = _pending.get(module.__name__, {}).get(name)
            if entry_point is not None and not _blocked(entry_point):
                obj = _load(module, name, entry_point)
                if obj is not _MISSING:
                    return obj
            if previous is not None:
                return previous(name)
            msg = f"module {module.__name__!r} has no attribute {name!r}"
            raise AttributeError(msg)

        setattr(__getattr__, _HOOKED, True)
        module.__getattr__ = __getattr__

    for function_name in _RESOLVING_FUNCTIONS.get(module.__name__, ()):
        function = module.__dict__.get(function_name)
        if callable(function) and not getattr(function, _HOOKED, False):
            setattr(module, function_name, _resolving_first(function))


def _resolving_first(function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
        resolve_pending()
        return function(*args, **kwargs)

    setattr(wrapper, _HOOKED, True)
    return wrapper


def _seed_cli_runs_of_our_model() -> None:
    """Wrap ``AnomalibCLI.before_instantiate_classes`` once ``anomalib.cli.cli`` has fully executed."""
    module = sys.modules.get(_CLI_MODULE)
    cli_class = getattr(module, "AnomalibCLI", None)
    if cli_class is None or _CLI_MODULE in _executing():
        return
    original = cli_class.__dict__.get("before_instantiate_classes")
    if not callable(original) or getattr(original, _HOOKED, False):
        return

    @functools.wraps(original)
    def before_instantiate_classes(self: Any) -> None:  # noqa: ANN401
        if _config_builds_our_model(self.config, self.subcommand):
            _seed_like_lightning_cli(self.config, self.subcommand)
        original(self)

    setattr(before_instantiate_classes, _HOOKED, True)
    cli_class.before_instantiate_classes = before_instantiate_classes


def _config_builds_our_model(config: Any, subcommand: str | None) -> bool:  # noqa: ANN401  # jsonargparse Namespace
    """Whether the parsed ``config`` of ``subcommand`` builds MiniMaxAD or a subclass of it."""
    section = config.get(subcommand) if subcommand else config
    model = section.get("model") if section is not None else None
    class_path = model.get("class_path") if hasattr(model, "get") else None
    if not isinstance(class_path, str) or "." not in class_path:
        return False
    module_name, _, name = class_path.rpartition(".")
    model_class = getattr(sys.modules.get(module_name), name, None)  # jsonargparse has imported it
    our_model = getattr(sys.modules.get(_OUR_MODEL[0]), _OUR_MODEL[1], None)
    return isinstance(model_class, type) and our_model is not None and issubclass(model_class, our_model)


def _seed_like_lightning_cli(config: Any, subcommand: str | None) -> None:  # noqa: ANN401  # jsonargparse Namespace
    """``LightningCLI._set_seed``: seed with the config's ``seed_everything`` and record the seed used."""
    from lightning.pytorch import seed_everything  # anomalib's CLI has imported lightning

    section = config.get(subcommand) if subcommand else config
    seed = section.get("seed_everything", False)
    if seed is False:
        return
    section["seed_everything"] = seed_everything(None if seed is True else seed, workers=True)

"""
Every public module exports exactly its ``__all__``: its implementation lives in ``_private``
modules, so no helper, imported module or ``annotations`` (``from __future__``) shows up as a
public name, and every name it promises resolves.

A public module is one whose dotted path has no component starting with ``_``; they are found
by walking the package, so a new one is checked without being listed here.
"""

from __future__ import annotations

import importlib
import pkgutil
import types

import pytest

import etcdanyio

pytestmark = pytest.mark.unit


def _public_modules() -> list[str]:
    found = pkgutil.walk_packages(etcdanyio.__path__, f"{etcdanyio.__name__}.")
    names = [etcdanyio.__name__, *(info.name for info in found)]
    return sorted(name for name in names if not any(p.startswith("_") for p in name.split(".")))


PUBLIC_MODULES = _public_modules()


def _is_submodule(module: types.ModuleType, name: str, value: object) -> bool:
    """Whether ``name`` is the binding the import system adds for a submodule of ``module``."""
    return isinstance(value, types.ModuleType) and value.__name__ == f"{module.__name__}.{name}"


def _visible(module: types.ModuleType) -> set[str]:
    """
    The public names ``module`` shows: its globals, or what its ``__dir__`` lists if it has one
    (the lazy top-level package lists ``__all__`` before the API is loaded), without the
    submodules imported so far (unless ``__all__`` names them).
    """
    own_dir = vars(module).get("__dir__")
    listed = own_dir() if own_dir is not None else list(vars(module))
    exported = set(module.__all__)
    return {
        name
        for name in listed
        if not name.startswith("_")
        and name.isidentifier()  # not pytest's assertion-rewriting helpers (@py_builtins)
        and (name in exported or not _is_submodule(module, name, getattr(module, name, None)))
    }


def test_the_public_modules_are_found() -> None:
    # The walk must find subpackages' modules too, and nothing private.
    assert {"etcdanyio", "etcdanyio.testing", "etcdanyio.sync.recipes"} <= set(PUBLIC_MODULES)
    assert not [name for name in PUBLIC_MODULES if "._" in name]


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_public_module_exports_exactly_all(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert isinstance(exported, (list, tuple)), f"{name} has no __all__"
    assert len(set(exported)) == len(exported), f"{name}.__all__ repeats a name"
    for export in exported:  # also loads what a lazy module serves through __getattr__
        assert getattr(module, export, None) is not None, f"{name}.{export} does not resolve"
    visible = _visible(module)
    assert not visible - set(exported), f"{name} has public names not in __all__"
    # A name of __all__ may be missing from the globals only where __getattr__ serves it.
    unlisted = set(exported) - visible
    assert not unlisted or "__getattr__" in vars(module), f"{name} lacks {sorted(unlisted)}"

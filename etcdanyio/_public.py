"""How a public module presents what it re-exports from the private module implementing it."""

from __future__ import annotations

import contextlib
from typing import Any


def publish(module: str, namespace: dict[str, Any]) -> None:
    """
    Name ``module`` (a public module) as the home of the classes and functions it exports
    (``__all__``) that live in private modules of the package: reprs, tracebacks, pickles and
    the docs then say ``etcdanyio.lock.Lock``, not ``etcdanyio._lock.Lock``.
    """
    for name in namespace["__all__"]:
        obj = namespace[name]
        home = getattr(obj, "__module__", None) or ""
        if home.startswith("etcdanyio.") and home.rpartition(".")[2].startswith("_"):
            with contextlib.suppress(AttributeError, TypeError):
                obj.__module__ = module

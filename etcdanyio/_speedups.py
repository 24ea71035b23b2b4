"""
The compiled build of the hot pure-Python modules, when there is one.

The wire codec's modules (``_codec.PARTS``: ``_codec_encode``, ``_codec_decode``,
``_codec_watch``) are the reference and always importable; ``_codec`` gathers
their API into one namespace. A compiled build of the same sources (mypyc:
``python scripts/build_compiled.py``, or a wheel built with ``ETCDANYIO_COMPILE=1``)
sits next to them as the extension modules ``etcdanyio.<part>_c``, each with a
``SOURCE_SHA256`` recording the source it was compiled from. :data:`codec` is
that build, gathered the same way, if every part is present and matches the
source beside it, else the pure ``_codec``; ``ETCDANYIO_PURE_PYTHON=1`` in the
environment forces the pure modules. Everything in the package that encodes or
decodes on a hot path goes through :data:`codec`; :data:`STATUS` says which build
was picked and why.
"""

from __future__ import annotations

import hashlib
import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from . import _codec as _pure_codec

__all__ = ["COMPILED", "PURE_PYTHON_ENV", "STATUS", "codec", "compiled_build", "pure_forced"]

#: set to anything but ``""`` or ``"0"`` to use the pure-Python modules
PURE_PYTHON_ENV = "ETCDANYIO_PURE_PYTHON"


def pure_forced() -> bool:
    return os.environ.get(PURE_PYTHON_ENV, "") not in ("", "0")


def _source_digest(module: ModuleType) -> str | None:
    path = getattr(module, "__file__", None)
    if not path or not path.endswith(".py"):
        return None  # no source beside it (e.g. only bytecode): trust the build
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def compiled_build(pure: ModuleType) -> tuple[ModuleType | None, str]:
    """The compiled build of ``pure`` (``_codec``: the namespace of its ``PARTS``), or
    ``None``, and why."""
    parts: tuple[str, ...] = getattr(pure, "PARTS", ())
    package = pure.__name__.rpartition(".")[0]
    compiled_parts = []
    for part in parts:
        try:
            compiled = importlib.import_module(f"{package}.{part}_c")
        except ImportError as exc:
            return None, f"no compiled build ({exc})"
        if getattr(compiled, "__file__", "").endswith(".py"):
            return None, "the compiled build is a source file, not an extension module"
        digest = _source_digest(importlib.import_module(f"{package}.{part}"))
        if digest is not None and getattr(compiled, "SOURCE_SHA256", None) != digest:
            return None, "the compiled build is stale (the source changed since it was built)"
        compiled_parts.append(compiled)
    if not compiled_parts:
        return None, f"no compiled build ({pure.__name__} names no parts)"
    return _gathered(pure, tuple(compiled_parts)), "compiled (mypyc)"


_GATHERED: dict[tuple[ModuleType, ...], ModuleType] = {}


def _gathered(pure: ModuleType, parts: tuple[ModuleType, ...]) -> ModuleType:
    """One namespace with the API of ``parts``, as ``pure`` gathers the pure parts."""
    build = _GATHERED.get(parts)
    if build is None:
        build = ModuleType(pure.__name__ + "_c", pure.__doc__)
        for part in parts:
            for name in part.__all__:
                setattr(build, name, getattr(part, name))
        build.__all__ = list(pure.__all__)  # type: ignore[attr-defined]
        missing = [name for name in pure.__all__ if not hasattr(build, name)]
        if missing:
            raise ImportError(f"the compiled build lacks {missing}")
        build = _GATHERED.setdefault(parts, build)
    return build


def _pick(pure: ModuleType) -> tuple[ModuleType, str]:
    if pure_forced():
        return pure, f"pure Python ({PURE_PYTHON_ENV} is set)"
    compiled, why = compiled_build(pure)
    if compiled is None:
        return pure, f"pure Python: {why}"
    return compiled, why


if TYPE_CHECKING:
    codec = _pure_codec
    STATUS: str
else:
    codec, STATUS = _pick(_pure_codec)

#: whether :data:`codec` is the compiled build
COMPILED: bool = codec is not _pure_codec

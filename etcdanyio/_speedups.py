"""
The compiled build of the hot pure-Python modules, when there is one.

``etcdanyio/_codec.py`` is the reference and is always importable. A compiled
build of the same source (mypyc: ``python scripts/build_compiled.py``, or a
wheel built with ``ETCDANYIO_COMPILE=1``) sits next to it as the extension
module ``etcdanyio._codec_c``, whose ``SOURCE_SHA256`` records the source it
was compiled from. :data:`codec` is that build if it is present and matches
the source beside it, else the pure module; ``ETCDANYIO_PURE_PYTHON=1`` in the
environment forces the pure module. Everything in the package that encodes or
decodes on a hot path goes through :data:`codec`; :data:`STATUS` says which
build was picked and why.
"""

from __future__ import annotations

import hashlib
import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from . import _codec as _pure_codec

if TYPE_CHECKING:
    from types import ModuleType

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
    """The compiled build of the pure module ``pure`` (or ``None``), and why."""
    try:
        compiled = importlib.import_module(pure.__name__ + "_c")
    except ImportError as exc:
        return None, f"no compiled build ({exc})"
    if getattr(compiled, "__file__", "").endswith(".py"):
        return None, "the compiled build is a source file, not an extension module"
    digest = _source_digest(pure)
    if digest is not None and getattr(compiled, "SOURCE_SHA256", None) != digest:
        return None, "the compiled build is stale (the source changed since it was built)"
    return compiled, "compiled (mypyc)"


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

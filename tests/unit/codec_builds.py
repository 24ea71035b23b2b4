"""
The builds of the wire codec to test: the pure-Python reference always, the
compiled one (``scripts/build_compiled.py``) when it is built and current.

Test modules that check the codec take :func:`codec_builds` as the parameters of
a module-scoped fixture that rebinds their ``_codec``, so that every property
test runs against each build.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from etcdanyio import _codec, _speedups

if TYPE_CHECKING:
    from types import ModuleType

#: set in CI's compiled step: a missing or stale compiled build is then an error
EXPECT_COMPILED_ENV = "ETCDANYIO_EXPECT_COMPILED"


def codec_builds() -> list[ModuleType]:
    compiled, _ = _speedups.compiled_build(_codec)
    return [_codec] if compiled is None else [_codec, compiled]


def build_id(module: ModuleType) -> str:
    return "mypyc" if module is not _codec else "pure"


def compiled_expected() -> bool:
    return os.environ.get(EXPECT_COMPILED_ENV, "") not in ("", "0")

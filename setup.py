"""
Only for the optional compiled build; everything else is in pyproject.toml.

``ETCDANYIO_COMPILE=1`` compiles the hot pure-Python modules with mypyc into the
wheel (``python -m build --wheel --no-isolation`` with mypy installed, or
cibuildwheel with pyproject's ``[tool.cibuildwheel]``); without it (the default,
and what ``pip install -e .`` does) the package is pure Python. For a compiled
build in an editable checkout: ``python scripts/build_compiled.py``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from setuptools import setup

ext_modules = []
copies: list[Path] = []
if os.environ.get("ETCDANYIO_COMPILE", "") not in ("", "0"):
    sys.path.insert(0, str(Path(__file__).resolve().parent / "scripts"))
    from build_compiled import GROUP, ROOT
    from build_compiled import copies as write_copies

    try:
        from mypyc.build import mypycify
    except ImportError as exc:
        raise SystemExit(
            "ETCDANYIO_COMPILE=1 needs mypy in the build environment: install it and build"
            " without isolation (python -m build --no-isolation, pip --no-build-isolation)"
        ) from exc

    copies = write_copies()
    ext_modules = mypycify(
        [str(p.relative_to(ROOT)) for p in copies], opt_level="3", group_name=GROUP
    )
try:
    setup(ext_modules=ext_modules)
finally:
    for path in copies:
        path.unlink(missing_ok=True)

"""
Build the optional compiled fast path in place: the modules of the wire codec
(``etcdanyio/_codec_encode.py``, ``_codec_decode.py``, ``_codec_watch.py``) compiled
together by mypyc into the extension modules ``etcdanyio.<name>_c``
(``etcdanyio/_speedups.py`` picks them up; ``ETCDANYIO_PURE_PYTHON=1`` ignores them).

    python scripts/build_compiled.py [--optional] [--clean]

Needs mypy (in ``[dev]``) and a C compiler. ``--optional``: if the build fails
(no compiler, no headers), say so and exit 0, leaving the pure-Python modules
in use. ``--clean``: remove the compiled build. Rebuild after editing a
compiled module; a stale build is ignored (the source's SHA-256 is checked).
Wheels: ``ETCDANYIO_COMPILE=1 python -m build --wheel --no-isolation`` (see
``setup.py``) or cibuildwheel with the ``[tool.cibuildwheel]`` settings in
pyproject.toml.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "etcdanyio"
#: the pure modules that have a compiled build (``<name>_c``): the parts of ``_codec``
MODULES = ("_codec_encode", "_codec_decode", "_codec_watch")
#: the name of the library mypyc builds the modules into (``etcdanyio/_codec_c__mypyc.*``):
#: compiled together, they call each other's functions natively
GROUP = "etcdanyio._codec_c"
#: what builds them in place: mypyc's command line, with the group named
SETUP = """\
import sys
from setuptools import setup
from mypyc.build import mypycify
paths, opt_level, group = sys.argv[1:-1], sys.argv[-1], {group!r}
sys.argv[1:] = ["build_ext", "--inplace", "--build-temp", "build"]
setup(name="etcdanyio_compiled", ext_modules=mypycify(paths, opt_level=opt_level, group_name=group))
"""


def compiled_source(name: str) -> bytes:
    """The source of ``<name>_c``: the module's, importing its siblings' compiled builds,
    plus ``SOURCE_SHA256`` (of the module's own source, which ``_speedups`` checks)."""
    source = (PACKAGE / f"{name}.py").read_bytes()
    digest = hashlib.sha256(source).hexdigest()
    for sibling in MODULES:
        source = source.replace(
            f"from .{sibling} import".encode(), f"from .{sibling}_c import".encode()
        )
    return (
        source
        + b"\n\n# Written by scripts/build_compiled.py: the source this build came from.\n"
        + f'SOURCE_SHA256 = "{digest}"\n'.encode()
    )


def copies() -> list[Path]:
    """Write ``<name>_c.py`` beside each module (:func:`compiled_source`)."""
    out = []
    for name in MODULES:
        copy = PACKAGE / f"{name}_c.py"
        copy.write_bytes(compiled_source(name))
        out.append(copy)
    return out


def clean() -> None:
    for name in MODULES:
        for path in PACKAGE.glob(f"{name}_c.*"):
            path.unlink()
    for path in PACKAGE.glob(f"{GROUP.rpartition('.')[2]}__mypyc.*"):
        path.unlink()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--optional", action="store_true", help="a failed build is not an error")
    parser.add_argument("--clean", action="store_true", help="remove the compiled build")
    args = parser.parse_args()
    clean()
    if args.clean:
        return 0
    paths = copies()
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                SETUP.format(group=GROUP),
                *(str(p.relative_to(ROOT)) for p in paths),
                os.environ.get("MYPYC_OPT_LEVEL", "3"),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        for path in paths:
            path.unlink()  # the copy must not be importable as a pure module
    built = all((PACKAGE / f"{name}_c{suffix}").exists() for name in MODULES)
    if result.returncode != 0 or not built:
        clean()
        sys.stderr.write(result.stdout[-3000:] + result.stderr[-3000:])
        sys.stderr.write("compiled build failed: the pure-Python modules stay in use\n")
        return 0 if args.optional else 1
    sys.stderr.write(f"compiled: {', '.join(f'etcdanyio.{name}_c' for name in MODULES)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

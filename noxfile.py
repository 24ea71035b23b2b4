"""
The Python matrix: the unit suite and a short integration smoke on every supported Python the
machine has (``nox``; ``.ci/run`` runs it for the versions besides its own, which runs the whole
suite). Interpreters are found on ``PATH``, then under pyenv's ``versions/``; a version that is
not installed is skipped, not failed.

    nox                      # every version found
    nox -p 3.10              # one
    nox -s smoke -- -x       # arguments after -- go to pytest

Each session installs the wheel in ``dist/`` when one of the current version is there (CI
builds it once for ``twine check``), else the checkout, and the ``test`` dependency group of
pyproject.toml. Virtualenvs are reused between runs. etcd comes from the outer environment
(``$ETCD_BIN`` or :func:`etcdanyio.testing.find_etcd_binary`), not installed again per version.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
#: the integration tests of the smoke run: a client's life, and the pytest plugin
SMOKE = [
    "tests/integration/test_client.py",
    "tests/integration/test_plugin.py",
    # the two slowest client tests (load, 50 MiB) are left to the full run
    "-k",
    "not 64_tasks and not 50_mib and not opt_out and not environment_variable",
    # generated code is checked once, by .ci/run, with the dev tools (ruff) it needs
    "--deselect",
    "tests/unit/test_sync_api.py::test_generated_wrappers_are_up_to_date",
]

nox.options.sessions = ["smoke"]
nox.options.error_on_missing_interpreters = False
nox.options.download_python = "never"  # a missing version is skipped, never downloaded
nox.options.reuse_venv = "yes"


def _works(executable: str) -> bool:
    try:
        run = subprocess.run([executable, "-c", ""], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return run.returncode == 0


def _expose_pyenv_interpreters() -> None:
    """Put pyenv's interpreters on PATH where ``pythonX.Y`` is missing or a dead pyenv shim."""
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    extra = []
    for version in PYTHONS:
        found = shutil.which(f"python{version}")
        if found and _works(found):
            continue
        candidates = sorted(glob.glob(os.path.join(root, "versions", f"{version}.*", "bin")))
        candidates = [c for c in candidates if re.search(rf"/{re.escape(version)}\.\d+/bin$", c)]
        if candidates:
            extra.append(candidates[-1])  # the newest patch release
    if extra:
        os.environ["PATH"] = os.pathsep.join([*extra, os.environ.get("PATH", "")])


def _etcd_binary() -> str:
    if explicit := os.environ.get("ETCD_BIN"):
        return explicit
    from etcdanyio.testing import find_etcd_binary

    return find_etcd_binary()


def _package() -> str:
    from etcdanyio import __version__

    wheels = sorted(ROOT.glob(f"dist/etcdanyio-{__version__}-*.whl"))
    return str(wheels[-1]) if wheels else str(ROOT)


_expose_pyenv_interpreters()


@nox.session(python=PYTHONS)
def smoke(session: nox.Session) -> None:
    """The unit suite and the integration smoke on one Python."""
    pyproject = nox.project.load_toml(ROOT / "pyproject.toml")
    session.install(*nox.project.dependency_groups(pyproject, "test"))
    session.install(_package())
    # The wheel of an unchanged version would count as installed already: install it afresh.
    session.install("--force-reinstall", "--no-deps", _package())
    session.run(
        "python",
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-q",
        "tests/unit",
        *SMOKE,
        *session.posargs,
        env={"ETCD_BIN": _etcd_binary()},
    )

"""The packaging metadata keeps its promises (the wheel itself is checked by twine in CI)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import etcdanyio

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pyproject() -> dict[str, object]:
    tomllib = pytest.importorskip("tomllib")  # 3.11+; the metadata is the same on every Python
    data: dict[str, object] = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return data


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].lower() for r in requirements}


def test_the_version_is_written_once(pyproject: dict[str, object]) -> None:
    project = pyproject["project"]
    assert isinstance(project, dict)
    assert "version" not in project
    assert project["dynamic"] == ["version"]
    assert re.fullmatch(r"\d+\.\d+\.\d+((a|b|rc)\d+)?(\.dev\d+)?", etcdanyio.__version__)


def test_licence_is_spdx_and_shipped(pyproject: dict[str, object]) -> None:
    project = pyproject["project"]
    assert isinstance(project, dict)
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"]
    assert "MIT License" in (ROOT / "LICENSE").read_text()


def test_the_test_group_is_part_of_the_dev_extra(pyproject: dict[str, object]) -> None:
    groups = pyproject["dependency-groups"]
    project = pyproject["project"]
    assert isinstance(groups, dict)
    assert isinstance(project, dict)
    assert _names(groups["test"]) <= _names(project["optional-dependencies"]["dev"])


def test_import_does_not_read_package_metadata() -> None:
    # importlib.metadata costs ~30 ms at import; the version is a constant instead.
    code = "import sys, etcdanyio; print('importlib.metadata' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_readme_links_work_on_pypi() -> None:
    # PyPI renders the README without the repository around it: relative links break there.
    readme = (ROOT / "README.md").read_text()
    relative = [
        target
        for target in re.findall(r"\]\(([^)]+)\)", readme)
        if not target.startswith(("https://", "http://", "#", "mailto:"))
    ]
    assert relative == []

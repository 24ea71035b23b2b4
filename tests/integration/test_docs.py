"""
The documentation: every code block of README.md and of the guides under docs/ runs, and the
Sphinx site builds with warnings as errors.

A ``python`` block is one of two kinds:

- a program (it calls ``anyio.run(``): run as ``python -c`` with ``$ETCD_ENDPOINTS`` naming
  this module's etcd, under each backend it names (``sys.argv[1]`` or ``backend="..."``);
- a fragment: run with top-level ``await`` under the test's backend (asyncio and trio), where
  ``client`` is the plugin's ``etcd_client`` (a namespace of its own per test) and
  ``etcd_endpoints`` (and ``$ETCD_ENDPOINTS``) this module's etcd. The fragments of one page
  share one namespace, in order, like a reader's session.

A block after the line ``<!-- snippet: test-module -->`` is a pytest module: an inner pytest
runs it (with the plugin, ``--etcd-endpoints`` naming this module's etcd) and all its tests
must pass. A ``sh`` block is not run (it installs or starts things), but every
``python PATH`` in it must name a file of this repository; ``text`` and ``toml`` blocks are
data. The line ``<!-- snippet: skip REASON -->`` right before a block skips it; the reason is
required. Every fragment is bounded by ``FRAGMENT_TIMEOUT``.
"""

from __future__ import annotations

import ast
import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest

import etcdanyio
from etcdanyio.testing import EtcdServer

if TYPE_CHECKING:
    from collections.abc import Iterator

    from etcdanyio import Client

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
FRAGMENT_TIMEOUT = 30.0
_FENCE = re.compile(r"^```(\S*)\s*$")
_MARKER = re.compile(r"^<!-- snippet: (?:skip (?P<reason>\S.*?)|(?P<module>test-module)) -->$")


@dataclasses.dataclass
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    language: str
    code: str
    skip: str | None  # the reason, if skipped
    test_module: bool = False  # a pytest module, run by an inner pytest

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def is_program(self) -> bool:
        return "anyio.run(" in self.code


def blocks(page: Path) -> list[Block]:
    """The fenced code blocks of a Markdown page, with the skip marker before each."""
    found: list[Block] = []
    lines = page.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        language, start = opening.group(1), i
        i += 1
        body: list[str] = []
        while i < len(lines) and lines[i] != "```":
            body.append(lines[i])
            i += 1
        previous = lines[start - 1].strip() if start else ""
        marker = _MARKER.match(previous)
        assert marker or not previous.startswith("<!-- snippet"), f"bad marker at {page}:{start}"
        code = "\n".join(body) + "\n"
        skip = marker and marker.group("reason")
        module = bool(marker and marker.group("module"))
        found.append(Block(page, start + 1, language, code, skip, module))
        i += 1
    return found


ALL_BLOCKS = [block for page in PAGES for block in blocks(page)]
PYTHON = [b for b in ALL_BLOCKS if b.language == "python" and not b.skip]
PROGRAMS = [b for b in PYTHON if b.is_program and not b.test_module]
TEST_MODULES = [b for b in PYTHON if b.test_module]
FRAGMENT_PAGES = sorted({b.page for b in PYTHON if not b.is_program and not b.test_module})


def _is_fragment(block: Block) -> bool:
    return block.language == "python" and not (block.skip or block.is_program or block.test_module)


@pytest.fixture(scope="module")
def etcd_endpoints() -> Iterator[list[str]]:
    """
    A member of this module's own (overriding the plugin's fixture, so ``etcd_client`` uses it
    too): the guides compact, enable auth and so on, never on the session's member.
    """
    with EtcdServer() as server:
        yield server.endpoints


def test_every_block_has_a_known_language() -> None:
    # Sphinx directives ({toctree}, {eval-rst}) are structure, the rest code or data.
    known = ("python", "sh", "text", "toml", "{toctree}", "{eval-rst}")
    unknown = [b.where for b in ALL_BLOCKS if b.language not in known]
    assert unknown == [], f"blocks without a known language {known}"
    unparsable = []
    for block in ALL_BLOCKS:
        if block.language == "python":
            try:
                compile(block.code, block.where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
            except SyntaxError as exc:
                unparsable.append(f"{block.where}: {exc}")
    assert unparsable == []


def test_shell_blocks_name_files_that_exist() -> None:
    named = [
        (block.where, path)
        for block in ALL_BLOCKS
        if block.language == "sh"
        for path in re.findall(r"\bpython3? (?!-)(\S+\.py)\b", block.code)
    ]
    assert named, "no shell block names a script: the pattern is broken"
    assert [f"{where}: {path}" for where, path in named if not (ROOT / path).is_file()] == []


@pytest.mark.parametrize("block", PROGRAMS, ids=[b.where for b in PROGRAMS])
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_program_runs(block: Block, backend: str, etcd_endpoints: list[str]) -> None:
    code = block.code
    if "sys.argv" not in code:  # a fixed backend: run it under that one only
        named = re.search(r'backend="(\w+)"', code)
        if named is not None and named.group(1) != backend:
            pytest.skip(f"the block runs under {named.group(1)}")
    result = subprocess.run(
        [sys.executable, "-c", code, backend],
        env={**os.environ, "ETCD_ENDPOINTS": ",".join(etcd_endpoints), "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"{block.where}\n{result.stdout}\n{result.stderr}"


@pytest.mark.parametrize(
    "page", FRAGMENT_PAGES, ids=[str(p.relative_to(ROOT)) for p in FRAGMENT_PAGES]
)
async def test_fragments_run(
    page: Path, etcd_client: Client, etcd_endpoints: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # open_etcd() without endpoints, as the guides write it, finds this module's etcd.
    monkeypatch.setenv("ETCD_ENDPOINTS", ",".join(etcd_endpoints))
    namespace: dict[str, Any] = {
        "__name__": "__snippet__",
        "anyio": anyio,
        "etcdanyio": etcdanyio,
        "client": etcd_client,
        "etcd_endpoints": etcd_endpoints,
    }
    for block in blocks(page):
        if not _is_fragment(block):
            continue
        code = compile(block.code, block.where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        with anyio.fail_after(FRAGMENT_TIMEOUT):
            result = eval(code, namespace)  # our own documentation
            if result is not None:
                await result


@pytest.mark.parametrize("block", TEST_MODULES, ids=[b.where for b in TEST_MODULES])
def test_test_module_passes(block: Block, etcd_endpoints: list[str], tmp_path: Path) -> None:
    (tmp_path / "test_from_the_guide.py").write_text(block.code)
    result = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-p", "anyio", "-p", "no:cacheprovider", "-q",
            f"--etcd-endpoints={','.join(etcd_endpoints)}", "-W", "error",
        ],
        cwd=tmp_path,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "ETCDANYIO"))},
            "PYTHONPATH": str(ROOT),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"{block.where}\n{result.stdout}\n{result.stderr}"
    assert " passed" in result.stdout, result.stdout
    assert "skipped" not in result.stdout, result.stdout


def test_sphinx_builds_without_warnings(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
            "-d", str(tmp_path / "doctrees"), str(DOCS), str(tmp_path / "html"),
        ],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k != "ETCDANYIO_DOCS_INTERSPHINX"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    built = {p.stem for p in (tmp_path / "html").glob("*.html")}
    assert {p.stem for p in DOCS.glob("*.md")} <= built

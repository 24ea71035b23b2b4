"""How the build of the codec is picked (``etcdanyio._speedups``)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from etcdanyio import _codec, _speedups
from tests.unit.codec_builds import compiled_expected

pytestmark = pytest.mark.unit


def _status(env: dict[str, str]) -> str:
    code = "from etcdanyio import _speedups as s; print(s.COMPILED, s.STATUS)"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_the_environment_variable_forces_pure_python(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(_speedups.PURE_PYTHON_ENV, "1")
    assert _speedups.pure_forced()
    module, why = _speedups._pick(_codec)
    assert module is _codec
    assert _speedups.PURE_PYTHON_ENV in why
    for off in ("", "0"):
        monkeypatch.setenv(_speedups.PURE_PYTHON_ENV, off)
        assert not _speedups.pure_forced()


def test_a_stale_compiled_build_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    if _speedups.compiled_build(_codec)[0] is None:
        pytest.skip("no compiled build here (scripts/build_compiled.py)")
    monkeypatch.setattr(_speedups, "_source_digest", lambda module: "0" * 64)
    module, why = _speedups.compiled_build(_codec)
    assert module is None
    assert "stale" in why


def test_the_compiled_build_is_picked_when_present() -> None:
    compiled, why = _speedups.compiled_build(_codec)
    if compiled_expected():
        assert compiled is not None, why
    if _speedups.pure_forced():
        assert not _speedups.COMPILED
    else:
        assert (compiled is not None) == _speedups.COMPILED
        assert (_speedups.codec is compiled) if compiled else (_speedups.codec is _codec)


def test_the_pure_modules_import_without_the_compiled_build() -> None:
    env = {**os.environ, _speedups.PURE_PYTHON_ENV: "1"}
    assert _status(env).startswith("False pure Python")

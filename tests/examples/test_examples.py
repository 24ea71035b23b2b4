"""Every example runs, against the shared etcd member, on both backends."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from etcdanyio.testing import EtcdServer

pytestmark = pytest.mark.integration

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.py"))


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs(example: Path, backend: str, etcd_server: EtcdServer) -> None:
    env = {**os.environ, "ETCD_ENDPOINTS": ",".join(etcd_server.endpoints)}
    result = subprocess.run(
        [sys.executable, str(example), backend],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


def test_quickstart_starts_its_own_etcd_without_endpoints() -> None:
    example = Path(__file__).parents[2] / "examples" / "quickstart.py"
    env = {k: v for k, v in os.environ.items() if k != "ETCD_ENDPOINTS"}
    result = subprocess.run(
        [sys.executable, str(example)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "starting a throwaway etcd" in result.stdout
    assert "greeting = b'hello'" in result.stdout

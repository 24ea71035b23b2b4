"""
Maintenance calls against real etcd: status, leader transfer, hashes, alarms and recovery from
NOSPACE, defragmentation, downgrade validation, health, and snapshots restored with etcdutl.

Every wait is bounded; state is polled under a deadline, never slept for.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import uuid
from typing import TYPE_CHECKING

import anyio
import pytest

import etcdanyio
from etcdanyio import Alarm, AlarmType, NoSpaceError, RpcError, SnapshotError
from etcdanyio._maintenance import SnapshotVerifier
from etcdanyio.testing import EtcdCluster, EtcdServer, find_etcd_binary

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

from ._kit.helpers import free_ports, run_etcd, until

pytestmark = pytest.mark.integration

MiB = 1 << 20


async def _names(directory: Path) -> list[str]:
    return sorted([p.name async for p in anyio.Path(directory).iterdir()])


@pytest.fixture
async def client(etcd_server: EtcdServer) -> AsyncIterator[etcdanyio.Client]:
    async with etcdanyio.open_etcd(etcd_server.endpoints) as client:
        yield client


# -- status, leader, hashes ---------------------------------------------------------------------


async def test_status_of_every_member(etcd_cluster: EtcdCluster) -> None:
    leader_id = etcd_cluster.member_id(await etcd_cluster.aleader())
    async with etcdanyio.open_etcd(etcd_cluster.endpoints[1]) as client:
        default = await client.status()
        assert default.member_id == etcd_cluster.member_id(1)  # the member it is connected to
        statuses = [await client.status(endpoint) for endpoint in etcd_cluster.endpoints]
    for index, status in enumerate(statuses):
        assert isinstance(status, etcdanyio.StatusResult)
        assert status.member_id == status.header.member_id == etcd_cluster.member_id(index)
        assert status.version.startswith("3.5")
        assert status.leader == leader_id != 0
        assert status.raft_term >= 1
        assert status.raft_index >= 1
        assert status.raft_applied_index >= 1
        assert status.db_size >= status.db_size_in_use > 0
        assert status.errors == []
        assert not status.is_learner
        assert status.header.cluster_id == statuses[0].header.cluster_id != 0


async def test_move_leader_goes_through_the_current_leader(etcd_cluster: EtcdCluster) -> None:
    leader = await etcd_cluster.aleader()
    follower, target = (i for i in range(3) if i != leader)
    # Connected to a follower: the call must find the leader and be sent there.
    async with etcdanyio.open_etcd(etcd_cluster.endpoints[follower]) as client:
        await client.move_leader(etcd_cluster.member_id(target))

        async def target_leads() -> bool:
            return await etcd_cluster.aleader() == target

        await until("the target leads", target_leads)
        assert (await client.status()).leader == etcd_cluster.member_id(target)

        # Back again, from a client that is connected to the leader itself.
        await client.move_leader(etcd_cluster.member_id(follower))

        async def follower_leads() -> bool:
            return await etcd_cluster.aleader() == follower

        await until("the follower leads", follower_leads)

        with pytest.raises(RpcError) as bad:
            await client.move_leader(12345)
        assert bad.value.message == "etcdserver: bad leader transferee"


async def test_hash_kv_agrees_across_members(etcd_cluster: EtcdCluster) -> None:
    prefix = f"hash/{uuid.uuid4().hex}/"
    async with etcdanyio.open_etcd(etcd_cluster.endpoints) as client:
        for i in range(20):
            put = await client.put(f"{prefix}{i}", f"value {i}")
        await client.delete(f"{prefix}3")
        await client.compact(put.header.revision - 5)
        revision = put.header.revision
        # A barrier: every member has applied what the leader committed so far.
        committed = (await client.status()).raft_index
        for endpoint in etcd_cluster.endpoints:

            async def applied(endpoint: str = endpoint) -> bool:
                return (await client.status(endpoint)).raft_applied_index >= committed

            await until(f"{endpoint} applies the writes", applied)

        hashes = [await client.hash_kv(revision, endpoint=e) for e in etcd_cluster.endpoints]
        assert {(h.hash, h.compact_revision) for h in hashes} == {(hashes[0].hash, revision - 5)}
        assert [h.header.member_id for h in hashes] == [etcd_cluster.member_id(i) for i in range(3)]
        # The delete came after ``revision``: the latest history hashes differently.
        assert (await client.hash_kv()).hash != hashes[0].hash

        with pytest.raises(etcdanyio.CompactedError):
            await client.hash_kv(revision - 10)
        with pytest.raises(etcdanyio.FutureRevisionError):
            await client.hash_kv(revision + 1000)
        whole = await client.hash(etcd_cluster.endpoints[0])
        assert 0 <= whole < 2**32


# -- alarms, defragment -------------------------------------------------------------------------


async def test_nospace_alarm_then_recovery() -> None:
    async with (
        EtcdServer(extra_args=["--quota-backend-bytes", str(2 * MiB)]) as server,
        etcdanyio.open_etcd(server.endpoints) as client,
    ):
        member_id = (await client.status()).member_id
        assert await client.alarms() == []
        value = os.urandom(60_000)
        full: NoSpaceError | None = None
        with anyio.fail_after(20):
            for written in range(200):
                try:
                    await client.put(f"fill/{written:03d}", value)
                except NoSpaceError as exc:
                    full = exc
                    break
        assert full is not None, "the quota never ran out"
        assert full.message == "etcdserver: mvcc: database space exceeded"
        assert written > 10  # ~43 with a 2 MiB quota, more when etcd batches commits differently

        assert await client.alarms() == [Alarm(member_id, AlarmType.NOSPACE)]
        assert any("NOSPACE" in e for e in (await client.status()).errors)
        health = await client.health()
        assert not health.healthy
        assert health.reason == f"active alarm(s): NOSPACE on member {member_id:x}"

        # Reads and deletes still work; writes do not.
        kv = await client.get("fill/000")
        assert kv is not None
        assert kv.value == value
        # etcd applies the put that crosses the quota when the check before Raft let it through
        # (quotaApplierV3: applied, then "database space exceeded"), else rejects it unapplied.
        tripped = await client.get(f"fill/{written:03d}")
        deleted = await client.delete_prefix("fill/")
        assert deleted.deleted == written + (tripped is not None)
        with pytest.raises(NoSpaceError):
            await client.put("after", "v")

        # Recovery: compact, defragment, then disarm (etcd would raise it again otherwise).
        await client.compact(deleted.header.revision, physical=True)
        before = await client.status()
        await client.defragment()
        after = await client.status()
        assert after.db_size < before.db_size
        assert after.db_size < MiB
        # A specific member and type that is not raised: nothing to disarm.
        assert await client.alarm_disarm(member_id, AlarmType.CORRUPT) == []
        assert await client.alarm_disarm() == [Alarm(member_id, AlarmType.NOSPACE)]
        assert await client.alarms() == []
        assert await client.alarm_disarm(alarm="nospace") == []
        await client.put("after", "v")
        assert (await client.health()).healthy


async def test_alarm_disarm_of_one_member(client: etcdanyio.Client) -> None:
    member_id = (await client.status()).member_id
    # Nothing is raised on the shared server: disarming a given alarm is a no-op.
    assert await client.alarm_disarm(member_id, AlarmType.NOSPACE) == []
    assert await client.alarm_disarm(member_id, AlarmType.NONE) == []
    assert await client.alarm_disarm(0, "none") == []
    await client.defragment(client.endpoints[0])


# -- downgrade, health --------------------------------------------------------------------------


async def test_downgrade(client: etcdanyio.Client) -> None:
    assert await client.downgrade("validate", "3.4.0") == "3.5.0"
    assert await client.downgrade("VALIDATE", "3.4.0") == "3.5.0"
    with pytest.raises(RpcError) as invalid:
        await client.downgrade("validate", "3.3.0")
    assert invalid.value.message == "etcdserver: invalid downgrade target version"
    with pytest.raises(RpcError) as none:
        await client.downgrade("cancel")
    assert none.value.message == "etcdserver: no inflight downgrade job"
    with pytest.raises(ValueError, match="'validate', 'enable' or 'cancel', got 'upgrade'"):
        await client.downgrade("upgrade", "3.4.0")
    with pytest.raises(ValueError, match="needs a target version"):
        await client.downgrade("enable")


async def test_health(client: etcdanyio.Client, etcd_server: EtcdServer) -> None:
    healthy = await client.health()
    assert (healthy.healthy, healthy.reason) == (True, "")
    assert 0 < healthy.took < 5
    assert (await client.health(etcd_server.endpoints[0])).healthy
    down = await client.health("http://127.0.0.1:1", timeout=2)
    assert not down.healthy
    assert down.reason.startswith("read failed: could not connect")


async def test_health_of_a_paused_member_times_out(etcd_cluster: EtcdCluster) -> None:
    async with etcdanyio.open_etcd(etcd_cluster.endpoints[0]) as client:
        etcd_cluster.pause(2)
        try:
            result = await client.health(etcd_cluster.endpoints[2], timeout=0.3)
        finally:
            etcd_cluster.resume(2)
        assert (result.healthy, result.reason) == (False, "no answer within 0.3 s")
        assert 0.3 <= result.took < 2


# -- snapshots ----------------------------------------------------------------------------------


def _snapshot_bytes(data: bytes) -> bytes:
    return data + hashlib.sha256(data).digest()


@pytest.mark.parametrize("chunk", [1, 7, 31, 32, 33, 512, 4096, 32768])
def test_snapshot_verifier(chunk: int) -> None:
    good = _snapshot_bytes(os.urandom(4096 * 3))

    def feed(data: bytes) -> SnapshotVerifier:
        verifier = SnapshotVerifier()
        for i in range(0, len(data), chunk):
            verifier.feed(data[i : i + chunk])
        return verifier

    verifier = feed(good)
    verifier.check()
    assert verifier.size == len(good)

    tampered = bytearray(good)
    tampered[1000] ^= 0x01
    with pytest.raises(SnapshotError, match="sha256 mismatch"):
        feed(bytes(tampered)).check()
    bad_trailer = good[:-1] + bytes([good[-1] ^ 0xFF])
    with pytest.raises(SnapshotError, match="sha256 mismatch"):
        feed(bad_trailer).check()
    with pytest.raises(SnapshotError, match="truncated or not a snapshot"):
        feed(good[:-100]).check()
    with pytest.raises(SnapshotError, match="sha256 mismatch"):
        feed(good[:-4096]).check()  # cut at a page: the size looks right, the hash does not
    with pytest.raises(SnapshotError, match="has no sha256 trailer"):
        feed(good[:-32]).check()
    with pytest.raises(SnapshotError, match="of 0 bytes"):
        SnapshotVerifier().check()
    assert issubclass(SnapshotError, etcdanyio.EtcdError)


async def test_snapshot_to_path_and_file_then_restore(tmp_path: Path) -> None:
    values = {f"big/{i:02d}": os.urandom(MiB) for i in range(20)}  # ~20 MiB of values
    async with EtcdServer() as server, etcdanyio.open_etcd(server.endpoints) as client:
        for key, value in values.items():
            last = await client.put(key, value)

        seen: list[int] = []
        path = tmp_path / "backup.db"
        size = await client.snapshot(path, progress=seen.append)
        assert size == path.stat().st_size > 20 * MiB
        assert size % 512 == 32
        data = path.read_bytes()
        assert hashlib.sha256(data[:-32]).digest() == data[-32:]
        assert len(seen) > 100  # one call per 32 KiB chunk
        assert seen == sorted(set(seen))
        assert seen[-1] == size
        assert await _names(tmp_path) == ["backup.db"]  # no temporary left

        buffer = io.BytesIO()
        assert await client.snapshot(buffer, endpoint=server.endpoints[0]) == len(buffer.getvalue())
        copy = buffer.getvalue()
        assert len(copy) % 512 == 32
        assert hashlib.sha256(copy[:-32]).digest() == copy[-32:]

    # etcdutl checks the sha256 trailer while restoring.
    etcdutl = find_etcd_binary("etcdutl")
    status = await anyio.run_process([etcdutl, "snapshot", "status", str(path), "-w", "json"])
    info = json.loads(status.stdout)
    assert info["revision"] >= last.header.revision
    assert info["totalKey"] >= len(values)
    peer_port, client_port = free_ports(2)
    peer_url, client_url = f"http://127.0.0.1:{peer_port}", f"http://127.0.0.1:{client_port}"
    data_dir = tmp_path / "restored"
    await anyio.run_process(
        [
            *(etcdutl, "snapshot", "restore", str(path), "--data-dir", str(data_dir)),
            *("--name", "r0", "--initial-cluster", f"r0={peer_url}"),
            *("--initial-advertise-peer-urls", peer_url),
        ]
    )

    # The restored data dir serves the same keys and values.
    argv = [
        *("--name", "r0", "--data-dir", str(data_dir)),
        *("--listen-client-urls", client_url, "--advertise-client-urls", client_url),
        *("--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url),
        *("--initial-cluster", f"r0={peer_url}"),
    ]
    async with (
        run_etcd(argv, tmp_path / "restored.log"),
        etcdanyio.open_etcd(client_url) as restored,
    ):

        async def serving() -> bool:
            try:
                return (await restored.health()).healthy
            except etcdanyio.ConnectionFailedError:
                return False

        await until("the restored member serves", serving)
        result = await restored.get_prefix("big/")
        assert {kv.key.decode(): kv.value for kv in result.kvs} == values
        assert result.header.revision >= last.header.revision


async def test_snapshot_failure_and_cancellation_leave_no_file(
    client: etcdanyio.Client, tmp_path: Path
) -> None:
    path = tmp_path / "backup.db"

    def boom(size: int) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await client.snapshot(path, progress=boom)
    assert await _names(tmp_path) == []

    with anyio.CancelScope() as scope:
        await client.snapshot(str(path), progress=lambda size: scope.cancel())
    assert scope.cancelled_caught
    assert await _names(tmp_path) == []

    # The client is still usable, and a complete snapshot succeeds.
    assert await client.snapshot(path) == path.stat().st_size
    assert await _names(tmp_path) == ["backup.db"]

    # An async file's ``write`` is awaited.
    async with await anyio.open_file(tmp_path / "async.db", "wb") as file:
        size = await client.snapshot(file)
    data = (tmp_path / "async.db").read_bytes()
    assert size == len(data)
    assert size % 512 == 32
    assert hashlib.sha256(data[:-32]).digest() == data[-32:]

    with pytest.raises(FileNotFoundError):
        await client.snapshot(tmp_path / "missing" / "backup.db")


async def test_calls_after_close_raise_closed_resource(etcd_server: EtcdServer) -> None:
    async with etcdanyio.open_etcd(etcd_server.endpoints) as client:
        await client.status()
    for endpoint in (None, etcd_server.endpoints[0]):
        with pytest.raises(anyio.ClosedResourceError):
            await client.status(endpoint)
        with pytest.raises(anyio.ClosedResourceError):
            await client.snapshot(io.BytesIO(), endpoint=endpoint)


# -- bad input ----------------------------------------------------------------------------------


async def test_bad_input_raises_before_io() -> None:
    # Nothing listens on port 1: any I/O would raise ConnectionFailedError instead.
    async with etcdanyio.open_etcd("http://127.0.0.1:1") as client:
        with pytest.raises(TypeError, match=r"endpoint must be a str, got 5 \(int\)"):
            await client.status(5)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="endpoint scheme must be http or https"):
            await client.status("ftp://127.0.0.1:2379")
        with pytest.raises(ValueError, match="endpoint must look like host:port"):
            await client.defragment("")
        with pytest.raises(ValueError, match="revision must not be negative"):
            await client.hash_kv(-1)
        with pytest.raises(TypeError, match="revision must be an int"):
            await client.hash_kv("1")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="member ID must be an unsigned 64-bit int"):
            await client.alarm_disarm(-1)
        with pytest.raises(ValueError, match="alarm must be an AlarmType or one of"):
            await client.alarm_disarm(alarm="bogus")
        with pytest.raises(ValueError, match="alarm must be an AlarmType"):
            await client.alarm_disarm(alarm=7)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="member ID must not be 0"):
            await client.move_leader(0)
        with pytest.raises(TypeError, match="version must be a str"):
            await client.downgrade("validate", 3.4)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="got None"):
            await client.downgrade(None)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="dest must be a path or a binary file object"):
            await client.snapshot(object())  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="endpoint must be a str"):
            await client.health(b"http://127.0.0.1:1")  # type: ignore[arg-type]

"""
Cluster membership against real etcd: list, add (as a learner), promote, update, remove.

etcd refuses membership changes during the first 5 s of a cluster's life unless
``--strict-reconfig-check=false`` (``etcdserver: unhealthy cluster``: every voting member must
have been connected for 5 s), so the clusters that change membership are started with it.
Every wait is bounded; state is polled under a deadline, never slept for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

import etcdanyio
from etcdanyio import LearnerNotReadyError, MemberNotFoundError, RpcError, Status
from etcdanyio.testing import EtcdCluster

if TYPE_CHECKING:
    from pathlib import Path


from ._kit.helpers import NO_STRICT_RECONFIG, free_ports, run_etcd, until

pytestmark = pytest.mark.integration


async def test_members_lists_the_cluster(etcd_cluster: EtcdCluster) -> None:
    async with etcdanyio.open_etcd(etcd_cluster.endpoints[1]) as client:
        members = await client.members()
        serializable = await client.members(serializable=True)
    expected = {
        etcd_cluster.member_id(i): (m.name, [m.peer_url], [m.client_url])
        for i, m in enumerate(etcd_cluster.members)
    }
    assert {m.id: (m.name, m.peer_urls, m.client_urls) for m in members} == expected
    assert not any(m.is_learner for m in members)
    assert sorted(serializable, key=lambda m: m.id) == sorted(members, key=lambda m: m.id)
    assert all(isinstance(m, etcdanyio.Member) for m in members)


async def test_learner_is_added_started_promoted_and_removed(tmp_path: Path) -> None:
    async with (
        EtcdCluster(3, extra_args=NO_STRICT_RECONFIG) as cluster,
        etcdanyio.open_etcd(cluster.endpoints) as client,
    ):
        peer_port, client_port = free_ports(2)
        peer_url, client_url = f"http://127.0.0.1:{peer_port}", f"http://127.0.0.1:{client_port}"

        added = await client.member_add([peer_url], learner=True)
        new = added.member
        assert (new.name, new.peer_urls, new.client_urls, new.is_learner) == (
            "",
            [peer_url],
            [],
            True,
        )
        assert new.id in {m.id for m in added.members}
        assert len(added.members) == 4
        assert added.header.member_id in {cluster.member_id(i) for i in range(3)}

        initial = [f"{m.name}={m.peer_url}" for m in cluster.members] + [f"m3={peer_url}"]
        argv = [
            *("--name", "m3", "--data-dir", str(tmp_path / "m3")),
            *("--listen-client-urls", client_url, "--advertise-client-urls", client_url),
            *("--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url),
            *("--initial-cluster", ",".join(initial), "--initial-cluster-state", "existing"),
        ]
        async with run_etcd(argv, tmp_path / "m3.log"):

            async def learner_status() -> etcdanyio.StatusResult | None:
                try:
                    return await client.status(client_url)
                except etcdanyio.ConnectionFailedError:
                    return None

            status = await until("the learner serves", learner_status)
            assert status.is_learner
            assert status.member_id == new.id

            async def promote() -> list[etcdanyio.Member] | None:
                try:
                    return await client.member_promote(new.id)
                except LearnerNotReadyError:
                    return None  # still catching up with the leader's log

            promoted = await until("the learner is promoted", promote)
            by_id = {m.id: m for m in promoted}
            assert not by_id[new.id].is_learner
            listed = {m.id: m for m in await client.members()}
            assert (listed[new.id].name, listed[new.id].client_urls) == ("m3", [client_url])
            assert not listed[new.id].is_learner
            assert not (await client.status(client_url)).is_learner

            remaining = await client.member_remove(new.id)
            assert new.id not in {m.id for m in remaining}
            assert len(remaining) == 3
        assert {m.id for m in await client.members()} == {cluster.member_id(i) for i in range(3)}


async def test_unstarted_learner_and_typed_errors() -> None:
    async with (
        EtcdCluster(3, extra_args=NO_STRICT_RECONFIG) as cluster,
        etcdanyio.open_etcd(cluster.endpoints) as client,
    ):
        (port,) = free_ports(1)
        learner = (await client.member_add([f"http://127.0.0.1:{port}"], learner=True)).member

        # Never started, so never in sync with the leader.
        with pytest.raises(LearnerNotReadyError) as not_ready:
            await client.member_promote(learner.id)
        assert not_ready.value.message == (
            "etcdserver: can only promote a learner member which is in sync with leader"
        )
        assert not_ready.value.status is Status.FAILED_PRECONDITION
        assert not_ready.value.applied is False

        # etcd 3.5 allows one learner at a time.
        (other,) = free_ports(1)
        with pytest.raises(RpcError) as too_many:
            await client.member_add([f"http://127.0.0.1:{other}"], learner=True)
        assert too_many.value.message == "etcdserver: too many learner members in cluster"
        assert isinstance(too_many.value, etcdanyio.TooManyLearnersError)
        assert isinstance(too_many.value, etcdanyio.MemberError)

        voter = cluster.member_id(0)
        with pytest.raises(RpcError) as not_learner:
            await client.member_promote(voter)
        assert type(not_learner.value) is etcdanyio.MemberNotLearnerError
        assert not_learner.value.message == "etcdserver: can only promote a learner member"

        with pytest.raises(RpcError) as exists:
            await client.member_add([cluster.members[1].peer_url])
        assert exists.value.message == "etcdserver: Peer URLs already exists"

        remaining = await client.member_remove(learner.id)
        assert learner.id not in {m.id for m in remaining}

        with pytest.raises(MemberNotFoundError) as unknown:
            await client.member_remove(learner.id)
        assert unknown.value.message == "etcdserver: member not found"
        assert unknown.value.status is Status.NOT_FOUND
        assert unknown.value.applied is False
        # (Promoting an unknown member is not checked: etcd 3.5.1 answers "member not found"
        # only on the leader; a follower forwards it and times out, "request timed out".)
        assert len(await client.members()) == 3


async def test_member_update_changes_peer_urls(etcd_cluster: EtcdCluster) -> None:
    member = etcd_cluster.members[2]
    member_id = etcd_cluster.member_id(2)
    # The same port under another name of the loopback address: the member stays reachable.
    new_url = member.peer_url.replace("127.0.0.1", "localhost")
    async with etcdanyio.open_etcd(etcd_cluster.endpoints[0]) as client:
        updated = await client.member_update(member_id, [new_url])
        assert {m.id: m.peer_urls for m in updated}[member_id] == [new_url]
        listed = {m.id: m for m in await client.members()}
        assert listed[member_id].peer_urls == [new_url]
        assert listed[member_id].name == member.name
        assert len(listed) == 3

        with pytest.raises(MemberNotFoundError):
            await client.member_update(12345, [new_url.replace("localhost", "127.0.0.2")])


async def test_bad_input_raises_before_io() -> None:
    # Nothing listens on port 1: any I/O would raise ConnectionFailedError instead.
    async with etcdanyio.open_etcd("http://127.0.0.1:1") as client:
        url_cases: list[tuple[Any, type[Exception], str]] = [
            ("http://127.0.0.1:2380", TypeError, "peer_urls must be a list of URL strings"),
            ([], ValueError, "peer_urls must not be empty"),
            ([b"http://127.0.0.1:2380"], TypeError, "peer URL must be a str"),
            (["ftp://127.0.0.1:2380"], ValueError, "peer URL must look like http://host:port"),
            (["http://127.0.0.1"], ValueError, "peer URL must look like http://host:port"),
            (["http://127.0.0.1:99999"], ValueError, "peer URL must look like"),
            (["127.0.0.1:2380"], ValueError, "peer URL must look like http://host:port"),
            (["http://127.0.0.1:2380/x"], ValueError, "peer URL must not have a path"),
        ]
        for bad_urls, error, match in url_cases:
            with pytest.raises(error, match=match):
                await client.member_add(bad_urls)
            with pytest.raises(error, match=match):
                await client.member_update(1, bad_urls)
        id_cases: list[tuple[Any, type[Exception], str]] = [
            (-1, ValueError, "member ID must be an unsigned 64-bit int, got -1"),
            (2**64, ValueError, "member ID must be an unsigned 64-bit int"),
            (0, ValueError, "member ID must not be 0"),
            ("1", TypeError, r"member ID must be an int, got '1' \(str\)"),
            (True, TypeError, "member ID must be an int"),
            (1.0, TypeError, "member ID must be an int"),
        ]
        for bad_id, error, match in id_cases:
            for call in (client.member_remove, client.member_promote):
                with pytest.raises(error, match=match):
                    await call(bad_id)
            with pytest.raises(error, match=match):
                await client.member_update(bad_id, ["http://127.0.0.1:2380"])
        # The largest ID is valid (half of etcd's IDs are above 2**63): it reaches the network.
        with pytest.raises(etcdanyio.ConnectionFailedError):
            await client.member_remove(2**64 - 1)

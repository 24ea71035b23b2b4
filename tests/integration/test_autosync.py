"""
Auto-sync of the endpoint list from the member list, against real etcd.

A client given one endpoint learns the others; it rides through the death of the member it
started with; removed members leave its list, learners never enter it, and a failed sync
keeps the list. The clusters change membership within their first 5 s, so they run with
``--strict-reconfig-check=false`` (etcd refuses that otherwise: ``unhealthy cluster``). Every
wait is bounded and polls observable state under a deadline, never sleeps for it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import anyio
import pytest

import etcdanyio
from etcdanyio.testing import EtcdCluster, EtcdServer

if TYPE_CHECKING:
    from pathlib import Path


from ._kit.helpers import NO_STRICT_RECONFIG, free_ports, run_etcd, until

pytestmark = pytest.mark.integration

INTERVAL = 0.2


def pinned(client: etcdanyio.Client) -> str | None:
    endpoint = client._core.channel.current_endpoint
    return None if endpoint is None else str(endpoint)


async def test_auto_sync_follows_the_membership(tmp_path: Path) -> None:
    with anyio.fail_after(45):
        async with EtcdCluster(3, extra_args=NO_STRICT_RECONFIG) as cluster:
            urls = cluster.endpoints
            async with etcdanyio.open_etcd(urls[0], auto_sync_interval=INTERVAL) as client:
                assert client.endpoints == [urls[0]]

                async def all_three() -> bool:
                    return sorted(client.endpoints) == sorted(urls)

                await until("the client learns every member", all_three)
                await client.put("autosync/k", "v0")
                assert pinned(client) == urls[0]  # the connection it had stays pinned

                # A learner, started, is a member with a name and client URLs: never added.
                peer_port, client_port = free_ports(2)
                peer_url = f"http://127.0.0.1:{peer_port}"
                learner_url = f"http://127.0.0.1:{client_port}"
                learner = (await client.member_add([peer_url], learner=True)).member
                initial = [f"{m.name}={m.peer_url}" for m in cluster.members] + [f"m3={peer_url}"]
                argv = [
                    *("--name", "m3", "--data-dir", str(tmp_path / "m3")),
                    *("--listen-client-urls", learner_url, "--advertise-client-urls", learner_url),
                    *("--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url),
                    *("--initial-cluster", ",".join(initial)),
                    *("--initial-cluster-state", "existing"),
                ]
                async with run_etcd(argv, tmp_path / "m3.log"):

                    async def learner_started() -> bool:
                        listed = {m.id: m for m in await client.members()}
                        return listed[learner.id].client_urls == [learner_url]

                    await until("the learner starts", learner_started)
                    assert sorted(await client.sync_endpoints()) == sorted(urls)
                    assert learner_url not in client.endpoints
                    await client.member_remove(learner.id)

                # The member the client started with dies: calls go to the others.
                await anyio.to_thread.run_sync(cluster.kill, 0)
                with anyio.fail_after(10):
                    assert (await client.get("autosync/k")) is not None
                    await client.put("autosync/k", "v1")
                    kv = await client.get("autosync/k")
                assert kv is not None
                assert kv.value == b"v1"
                assert pinned(client) in urls[1:]
                assert sorted(client.endpoints) == sorted(urls)  # still a member, if dead

                # Removed, it leaves the list.
                await client.member_remove(cluster.member_id(0))

                async def two_left() -> bool:
                    return sorted(client.endpoints) == sorted(urls[1:])

                await until("the removed member leaves the list", two_left)

                # Remove the member the client is connected to (through the other one, whose
                # answer is not lost when the removed member shuts down): the client moves on.
                gone = urls.index(pinned(client))  # type: ignore[arg-type]  # asserted pinned
                other = 3 - gone
                async with etcdanyio.open_etcd(urls[other]) as admin:
                    await admin.member_remove(cluster.member_id(gone))

                async def one_left() -> bool:
                    return client.endpoints == [urls[other]]

                await until("only the last member is left", one_left)
                with anyio.fail_after(10):
                    await client.put("autosync/k", "v2")
                    kv = await client.get("autosync/k")
                assert kv is not None
                assert kv.value == b"v2"
                assert pinned(client) == urls[other]


async def test_a_failed_sync_keeps_the_list(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="etcdanyio.client")
    with anyio.fail_after(30):
        async with (
            EtcdServer() as server,
            etcdanyio.open_etcd(
                server.endpoint, auto_sync_interval=INTERVAL, connect_timeout=0.5
            ) as client,
        ):
            await client.sync_endpoints()
            assert client.endpoints == [server.endpoint]
            server.kill()

            async def failures() -> bool:
                return sum("auto-sync failed" in r.getMessage() for r in caplog.records) >= 2

            await until("two syncs fail", failures)
            assert client.endpoints == [server.endpoint]
            with pytest.raises(etcdanyio.ConnectionFailedError):
                await client.sync_endpoints()  # on demand, the error is raised
            assert client.endpoints == [server.endpoint]

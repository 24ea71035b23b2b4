"""The reprs users see in logs and debuggers name endpoints, keys and state, never secrets."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

import etcdanyio
from etcdanyio.testing import EtcdServer

if TYPE_CHECKING:
    from etcdanyio import Client

pytestmark = pytest.mark.integration


async def test_client_repr_shows_endpoints_namespace_and_user(etcd_endpoints: list[str]) -> None:
    async with etcdanyio.open_etcd(etcd_endpoints, namespace="app/") as client:
        assert repr(client) == f"Client(endpoints={etcd_endpoints!r}, namespace=b'app/')"
    async with etcdanyio.open_etcd(etcd_endpoints) as client:
        assert repr(client) == f"Client(endpoints={etcd_endpoints!r})"


async def test_watch_lock_election_leadership_reprs(etcd_client: Client) -> None:
    async with etcd_client.watch("config/", prefix=True) as events:
        assert re.fullmatch(
            r"Watch\(key=b'.*config/', range_end=b'.*config0', revision=\d+, active\)",
            repr(events),
        )
    lock = etcd_client.lock("reindex")
    assert repr(lock) == "Lock(name=b'reindex', held=False)"
    async with lock:
        assert repr(lock) == (
            f"Lock(name=b'reindex', key={lock.key!r}, revision={lock.revision}, held=True)"
        )
        assert lock.key.startswith(b"reindex/")
    election = etcd_client.election("leader")
    assert repr(election) == "Election(name=b'leader')"
    async with election.campaign("node-1") as leadership:
        assert repr(leadership) == (
            f"Leadership(name=b'leader', key={leadership.key!r}, "
            f"revision={leadership.revision}, lease={leadership.lease.id:#x})"
        )


def test_server_repr_shows_endpoints_and_running_members() -> None:
    server = EtcdServer()
    assert repr(server) == "EtcdServer(size=1, not started)"
    with server:
        assert repr(server) == f"EtcdServer(endpoints={server.endpoints!r}, running=1/1)"
        server.kill()
        assert repr(server) == f"EtcdServer(endpoints={server.endpoints!r}, running=0/1)"

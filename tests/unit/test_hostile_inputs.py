"""
Bad input is refused before anything is sent, and errors say what is known (issue #13, items 4
and 6-8). The client's calls go to an in-memory HTTP/2 peer that answers as etcd would.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import anyio
import pytest

import etcdanyio
from etcdanyio import txn
from etcdanyio._error_table import translate
from etcdanyio._grpc import Channel, Endpoint, GrpcError, Status
from etcdanyio.client import Client
from etcdanyio.errors import ResponseTooLargeError

from ..h2peer import H2Peer, PeerStream

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from anyio.abc import TaskGroup
    from anyio.streams.stapled import StapledObjectStream

pytestmark = pytest.mark.unit

TIMEOUT = 5
#: nothing listens there: a check that lets a call through fails the test by hanging or raising
NOWHERE = "127.0.0.1:1"

DURATIONS = ["timeout", "connect_timeout", "keepalive_interval", "keepalive_timeout"]


def _kwargs(option: str, value: object) -> dict[str, Any]:
    return {option: value}


@pytest.mark.parametrize("option", [*DURATIONS, "auto_sync_interval"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 0, -1.0])
async def test_open_etcd_rejects_bad_durations(option: str, value: float) -> None:
    with anyio.fail_after(TIMEOUT), pytest.raises(ValueError, match=option):
        async with etcdanyio.open_etcd(NOWHERE, **_kwargs(option, value)):
            pytest.fail("the block must not run")


@pytest.mark.parametrize("option", [*DURATIONS, "auto_sync_interval"])
@pytest.mark.parametrize("value", [True, "1", 1j])
async def test_open_etcd_rejects_durations_of_the_wrong_type(option: str, value: object) -> None:
    with anyio.fail_after(TIMEOUT), pytest.raises(TypeError, match=option):
        async with etcdanyio.open_etcd(NOWHERE, **_kwargs(option, value)):
            pytest.fail("the block must not run")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"ssl_context": "x"}, TypeError, "ssl_context"),
        ({"tls_server_hostname": 5}, TypeError, "tls_server_hostname"),
        ({"max_receive_message": 0}, ValueError, "max_receive_message"),
        ({"max_send_message": 1.5}, TypeError, "max_send_message"),
    ],
)
async def test_open_etcd_rejects_bad_options(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    with anyio.fail_after(TIMEOUT), pytest.raises(error, match=match):
        async with etcdanyio.open_etcd(NOWHERE, **kwargs):
            pytest.fail("the block must not run")


@pytest.mark.parametrize("value", [math.nan, math.inf, 1.5, True, 0, -3])
async def test_watch_max_buffered_is_a_positive_int(value: object) -> None:
    with anyio.fail_after(TIMEOUT):
        async with etcdanyio.open_etcd(NOWHERE) as client:
            with pytest.raises((TypeError, ValueError), match="max_buffered"):
                async with client.watch("k", max_buffered=value):  # type: ignore[arg-type]
                    pytest.fail("the block must not run")
            with pytest.raises((TypeError, ValueError), match="max_buffered"):
                async with client.election("e").observe(max_buffered=value):  # type: ignore[arg-type]
                    pytest.fail("the block must not run")


@pytest.mark.parametrize("value", [math.nan, math.inf, -1.0, True])
async def test_health_timeout_is_checked(value: object) -> None:
    with anyio.fail_after(TIMEOUT):
        async with etcdanyio.open_etcd(NOWHERE) as client:
            with pytest.raises((TypeError, ValueError), match="timeout"):
                await client.health(timeout=value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "endpoint",
    [
        "a..b:2379",  # an empty label: asyncio's IDNA codec raised UnicodeError at dial time
        "x" * 64 + ".example:2379",  # a label over 63 characters
        ".:2379",
        "127.0.0.1:\u0663\u0663",  # Arabic-Indic digits: int() takes them, a port must not
        "http://[zz::1]:2379",
    ],
)
def test_bad_hosts_and_ports_are_refused_when_parsed(endpoint: str) -> None:
    with pytest.raises(ValueError, match="endpoint"):
        Endpoint.parse(endpoint)


def test_good_hosts_still_parse() -> None:
    assert Endpoint.parse("etcd-0.etcd.svc.cluster.local:2379").port == 2379
    assert Endpoint.parse("http://[::1]:2379").host == "::1"
    assert Endpoint.parse("bücher.example:2379").host == "bücher.example"
    assert Endpoint.parse("localhost.").host == "localhost."


async def test_a_bad_endpoint_among_good_ones_is_refused_before_any_io() -> None:
    with anyio.fail_after(TIMEOUT), pytest.raises(ValueError, match=r"a\.\.b"):
        async with etcdanyio.open_etcd(["a..b:2379", NOWHERE]):
            pytest.fail("the block must not run")


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ((99, 0, b"k", b"", 5), ValueError),  # no such target
        ((1, 7, b"k", b"", 5), ValueError),  # no such result
        ((3, 0, b"k", b"", 5), TypeError),  # a value compared with an int
        ((1, 0, b"k", b"", b"5"), TypeError),  # a revision compared with bytes
        ((1, 0, "k", b"", 5), TypeError),  # a str key
        ((1, 0, b"k", b"", -1), ValueError),
    ],
)
def test_hand_built_compares_are_checked(fields: tuple[Any, ...], error: type[Exception]) -> None:
    with pytest.raises(error):
        txn.Compare(*fields)


def test_a_valid_hand_built_compare_has_a_repr() -> None:
    assert repr(txn.Compare(1, 0, b"k", b"", 5)) == "txn.create_revision(b'k') == 5"


def test_an_answer_over_max_receive_message_is_typed() -> None:
    exc = GrpcError(Status.RESOURCE_EXHAUSTED, "received message larger than max (9 vs. 4)")
    read = translate(exc, write=False)
    assert isinstance(read, ResponseTooLargeError)
    assert read.applied is False
    write = translate(exc, write=True)
    assert isinstance(write, ResponseTooLargeError)
    assert write.applied is None  # etcd applied the write, or not, before answering


# -- .applied of writes that are safe to retry (item 6) -------------------------------------


@pytest.fixture
async def peer_client() -> AsyncIterator[tuple[Client, list[str]]]:
    """A client whose every call is answered DEADLINE_EXCEEDED by an in-memory peer."""
    paths: list[str] = []

    def handle(peer: H2Peer, stream: PeerStream) -> None:
        paths.append(stream.path or "")
        peer.reply(stream.stream_id, status=int(Status.DEADLINE_EXCEEDED), message="slow")

    async def dial(endpoint: Endpoint, tg: TaskGroup) -> StapledObjectStream[bytes]:
        peer = H2Peer(handle)
        transport = peer.connect()
        tg.start_soon(peer.serve)
        return transport

    async with anyio.create_task_group() as tg:
        channel = Channel(
            [Endpoint.parse("peer:2379")], tg, connect=lambda endpoint: dial(endpoint, tg)
        )
        try:
            yield Client(channel, tg, timeout=None), paths
        finally:
            await channel.aclose()
            tg.cancel_scope.cancel()


async def test_a_retryable_write_that_may_have_reached_etcd_is_not_applied_false(
    peer_client: tuple[Client, list[str]],
) -> None:
    client, paths = peer_client
    with anyio.fail_after(TIMEOUT):
        for call in (
            lambda: client.lease_grant(10, id=7),
            lambda: client.lease_revoke(7),
            lambda: client.lock_release(b"lock/7"),
        ):
            with pytest.raises(etcdanyio.DeadlineExceededError) as info:
                await call()
            assert info.value.applied is None, paths[-1]
        # A read that failed so had nothing to apply.
        with pytest.raises(etcdanyio.DeadlineExceededError) as info:
            await client.lease_time_to_live(7)
        assert info.value.applied is False

"""The one backoff formula (``_grpc._backoff``) and the streams' reconnect policy (``_streams``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import pytest

from etcdanyio import AuthenticationError, ConnectionLostError, NoLeaderError
from etcdanyio._grpc import GrpcError, Status, TransportError
from etcdanyio._grpc._backoff import backoff
from etcdanyio._grpc._channel import ChannelOptions
from etcdanyio._grpc._retry import RetryPolicy
from etcdanyio._streams import Reconnect, StreamRestart

if TYPE_CHECKING:
    from etcdanyio._grpc._connection import Connection
    from etcdanyio.errors import EtcdError

pytestmark = pytest.mark.unit

#: stands for the connection the stream ran on
CONNECTION = cast("Connection", object())


def test_backoff_doubles_up_to_its_cap_with_jitter() -> None:
    for failures, full in [(1, 0.1), (2, 0.2), (3, 0.4), (5, 1.0), (60, 1.0), (5000, 1.0)]:
        delays = [backoff(failures, base=0.1, cap=1.0) for _ in range(200)]
        assert all(full * 0.5 <= d <= full for d in delays), failures
        assert max(delays) - min(delays) > full * 0.1  # jittered


def test_the_callers_keep_their_numbers() -> None:
    options = ChannelOptions()
    assert (options.backoff_base, options.backoff_max) == (0.05, 2.0)
    policy = RetryPolicy()
    error = GrpcError(Status.UNAVAILABLE, "etcdserver: no leader")
    delays = [policy.delay(error, 3, repeatable=True) for _ in range(100)]
    assert all(d is not None and 0.05 <= d <= 0.1 for d in delays)
    assert policy.delay(error, 4, repeatable=True) is None


class FakeChannel:
    def __init__(self) -> None:
        self.rotated: list[object] = []

    def rotate(self, connection: object) -> None:
        self.rotated.append(connection)


class Auth:
    def __init__(self, error: EtcdError | None = None) -> None:
        self.calls: list[bytes] = []
        self.error = error

    async def __call__(self, stale: bytes) -> None:
        self.calls.append(stale)
        if self.error is not None:
            raise self.error


def policy(auth: Auth, cap: float = 2.0) -> tuple[Reconnect, FakeChannel]:
    channel = FakeChannel()
    return Reconnect(channel, auth, cap=cap), channel  # type: ignore[arg-type]


async def test_unavailable_moves_to_another_member() -> None:
    reconnect, channel = policy(Auth())
    error = await reconnect.recover(
        GrpcError(Status.UNAVAILABLE, "etcdserver: no leader"), CONNECTION, b"m"
    )
    assert isinstance(error, NoLeaderError)
    assert error.applied is False
    assert channel.rotated == [CONNECTION]


@pytest.mark.parametrize(
    "exc",
    [
        StreamRestart("etcdserver: permission denied"),
        GrpcError(Status.UNAUTHENTICATED, "etcdserver: invalid auth token"),
        GrpcError(Status.INVALID_ARGUMENT, "etcdserver: user name is empty"),
        GrpcError(Status.UNKNOWN, "auth: revision in header is old"),
    ],
)
async def test_a_stale_token_is_renewed_and_the_stream_reopened_at_once(
    exc: GrpcError | StreamRestart,
) -> None:
    auth = Auth()
    reconnect, channel = policy(auth)
    reconnect.served = True
    assert await reconnect.recover(exc, CONNECTION, b"old token") is None
    assert auth.calls == [b"old token"]
    assert channel.rotated == []
    assert not reconnect.served


async def test_a_failed_renewal_is_the_error_reported() -> None:
    auth = Auth(AuthenticationError(Status.INVALID_ARGUMENT, "etcdserver: authentication failed"))
    reconnect, _ = policy(auth)
    error = await reconnect.recover(StreamRestart("x"), None, b"m")
    assert isinstance(error, AuthenticationError)
    assert error.status == Status.UNAUTHENTICATED
    assert error.applied is False


async def test_a_lost_connection_is_translated() -> None:
    reconnect, channel = policy(Auth())
    error = await reconnect.recover(TransportError("reset", applied=None), None, b"m")
    assert isinstance(error, ConnectionLostError)
    assert error.applied is False
    assert channel.rotated == []


def test_the_delay_grows_only_while_streams_fail_before_serving() -> None:
    reconnect, _ = policy(Auth(), cap=1.0)
    fulls = []
    for served in (False, False, False, True, False, False, False, False, False):
        reconnect.served = served
        fulls.append(reconnect.delay())
    bounds = [0.1, 0.2, 0.4, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert all(full * 0.5 <= d <= full for d, full in zip(fulls, bounds, strict=False)), fulls

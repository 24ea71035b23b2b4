"""
What the services need from the client's core: the one declaration of the call path.

Each service of :class:`~etcdanyio.Client` (KV, watch, lease, cluster, maintenance, auth, lock,
election, HTTP endpoints) is a mixin class deriving from :class:`Service`; it reaches the call
path, the namespace, the default timeout and the shared machinery only through ``self._core``,
typed as :class:`CallPath` (as redis-py's ``CommandsProtocol``). :class:`etcdanyio._core.Core`
is the implementation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from collections.abc import Sequence
    from contextlib import AbstractAsyncContextManager

    import betterproto2
    from anyio.abc import TaskGroup

    from ._cleanup import Cleanups, KeyGuards
    from ._grpc import Channel
    from ._grpc._call import Call
    from ._keepalive import KeepAliveStream
    from ._keys import Namespace
    from ._watch_stream import WatchStream

#: a betterproto2 message class (a request's answer type)
M = TypeVar("M", bound="betterproto2.Message")


class CallPath(Protocol):
    """The client's core as the services see it."""

    #: the client's channel (endpoints, connections, failover)
    channel: Channel
    #: the client's task group: background tasks live (and die) with the client
    tg: TaskGroup
    #: the key prefix of every key sent, stripped from every key returned
    ns: Namespace
    #: the default deadline (seconds) of every unary call
    timeout: float | None
    #: the codec's memo of the IDs in this client's responses (``_codec_decode.IdMemo``)
    wire_ids: dict[bytes, tuple[int, int]]
    #: background clean-ups (revokes and deletes) that outlive a scope
    cleanups: Cleanups
    #: per-key exclusion of this client's lock and campaign keys (sessions share leases)
    key_guards: KeyGuards
    #: the locks held through this client, by ``(name, task ID)`` (``reentrant=``); the values
    #: are ``etcdanyio.lock.Lock`` (not named here: the lock module is built on this one)
    lock_holds: dict[tuple[bytes, int], Any]

    async def call(
        self,
        path: str,
        request: betterproto2.Message,
        response_type: type[M],
        *,
        repeatable: bool,
        write: bool | None = None,
    ) -> M:
        """One unary call of a betterproto2 message (``call_raw`` then ``parse``)."""
        ...

    async def call_raw(
        self,
        path: str,
        request: bytes,
        *,
        repeatable: bool,
        channel: Channel | None = None,
        write: bool | None = None,
    ) -> bytes:
        """
        One unary call: the default timeout, re-authentication, typed errors, telemetry.
        ``repeatable``: safe to retry; ``write``: may change state (default: not
        ``repeatable``), so that a failure after it was sent has ``applied=None``.
        """
        ...

    async def call_at(
        self,
        path: str,
        request: betterproto2.Message,
        response_type: type[M],
        *,
        repeatable: bool,
        endpoints: Sequence[str] | None,
    ) -> M:
        """:meth:`call` on a connection to ``endpoints`` (one member); ``None``: the client's."""
        ...

    async def call_raw_at(
        self, path: str, request: bytes, *, repeatable: bool, endpoints: Sequence[str] | None
    ) -> bytes:
        """:meth:`call_raw` on a connection to ``endpoints`` (one member); ``None``: ours."""
        ...

    def open_stream(
        self, path: str, request: bytes, *, endpoints: Sequence[str] | None
    ) -> AbstractAsyncContextManager[Call]:
        """A server-streaming call, its one request sent (the caller translates errors)."""
        ...

    def stream_metadata(self) -> bytes:
        """Metadata of long-lived streams: the token, and ``hasleader: true``."""
        ...

    async def reauthenticate(self, stale: bytes) -> None:
        """Authenticate again, once for every task that saw the metadata ``stale`` refused."""
        ...

    def has_credentials(self) -> bool:
        """Whether the client authenticates (and so may re-authenticate)."""
        ...

    def watches(self) -> WatchStream:
        """The client's one watch stream (created on first use)."""
        ...

    def keepalives(self) -> KeepAliveStream:
        """The client's one keepalive stream: the registry of leases kept alive."""
        ...


class Service:
    """The base of every service mixin of :class:`~etcdanyio.Client`."""

    _core: CallPath

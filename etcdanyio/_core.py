"""
The client's core: the one call path every service uses (see :class:`~._service.CallPath`).

It owns the channel and task group of the client, the default timeout, the namespace, the
credentials and their token, the observers (telemetry), the background clean-ups, the key
guards and lock holds, and the client's two shared streams (watch, keepalive).
"""

from __future__ import annotations

import dataclasses
import logging
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio

from ._cleanup import Cleanups, KeyGuards, cleaning
from ._error_table import (
    is_deadline_answer,
    let_deadline_fire,
    needs_reauthentication,
    translate,
    unsupported,
)
from ._grpc import Channel, Endpoint, GrpcError, Status, TransportError
from ._grpc._headers import encode_metadata
from ._keepalive import KeepAliveStream
from ._keys import Namespace
from ._lazy import etcdserverpb as pb  # imported on first use
from ._telemetry import Rpc, RpcObserver
from ._watch_stream import WatchStream
from .errors import AuthNotEnabledError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    import betterproto2
    from anyio.abc import TaskGroup

    from ._client import Client
    from ._grpc._call import Call
    from ._service import CallPath, M

logger = logging.getLogger("etcdanyio.client")

_HASLEADER = encode_metadata([("hasleader", "true")])


class Credentials:
    """A user name and password; the password never appears in a repr or message."""

    __slots__ = ("_password", "name")

    def __init__(self, name: str, password: str) -> None:
        if not name:
            raise ValueError("username must not be empty")
        if not isinstance(password, str):
            raise TypeError(f"password must be a str, got {type(password).__name__}")
        self.name = name
        self._password = password

    def __repr__(self) -> str:
        return f"Credentials(name={self.name!r}, password=***)"

    def request(self) -> pb.AuthenticateRequest:
        return pb.AuthenticateRequest(name=self.name, password=self._password)


class Core:
    """The call path and shared state of one client (created by :class:`~etcdanyio.Client`)."""

    def __init__(
        self,
        client: Client,
        channel: Channel,
        task_group: TaskGroup,
        *,
        timeout: float | None,
        namespace: bytes = b"",
        credentials: Credentials | None = None,
        observers: Sequence[RpcObserver] = (),
    ) -> None:
        self.channel = channel
        self.tg = task_group
        self.timeout = timeout
        self.ns = Namespace(namespace)
        #: the codec's memo of the IDs in this client's responses (``_codec_decode.IdMemo``)
        self.wire_ids: dict[bytes, tuple[int, int]] = {}
        self.credentials = credentials
        #: the encoded ``token`` metadata of every call (empty without auth)
        self.token_metadata = b""
        self._auth_lock = anyio.Lock()
        self.reauthentications = 0
        #: clean-ups left to the background (through the public client), and key guards
        self.cleanups = Cleanups(client, task_group)
        self.key_guards = KeyGuards()
        #: the lock registry: the locks held through this client, by ``(name, task ID)``
        self.lock_holds: dict[tuple[bytes, int], Any] = {}
        self.watch_stream: WatchStream | None = None
        self.keepalive_stream: KeepAliveStream | None = None
        #: who sees every RPC (telemetry); empty: the call path checks this and nothing else
        self.observers: tuple[RpcObserver, ...] = tuple(observers)
        if self.observers:
            channel.stream_observer = self._stream_record

    def _stream_record(self, path: str) -> Rpc:
        record = Rpc(self.observers, path, "stream", 0)
        record.started()
        return record

    # -- the shared streams ------------------------------------------------------------------

    def watches(self) -> WatchStream:
        if self.watch_stream is None:
            self.watch_stream = WatchStream(
                self.channel,
                self.tg,
                self.ns,
                metadata=self.stream_metadata,
                reauthenticate=self.reauthenticate,
                credentials=self.has_credentials(),
            )
        return self.watch_stream

    def keepalives(self) -> KeepAliveStream:
        if self.keepalive_stream is None:
            self.keepalive_stream = KeepAliveStream(
                self.channel,
                self.tg,
                metadata=self.stream_metadata,
                reauthenticate=self.reauthenticate,
            )
        return self.keepalive_stream

    # -- unary calls -------------------------------------------------------------------------

    async def call(
        self,
        path: str,
        request: betterproto2.Message,
        response_type: type[M],
        *,
        repeatable: bool,
        write: bool | None = None,
    ) -> M:
        raw = await self.call_raw(path, bytes(request), repeatable=repeatable, write=write)
        return response_type.parse(raw)

    async def call_raw(
        self,
        path: str,
        request: bytes,
        *,
        repeatable: bool,
        channel: Channel | None = None,
        write: bool | None = None,
        record: Rpc | None = None,
    ) -> bytes:
        if self.observers and record is None:
            return await self._call_observed(path, request, repeatable, channel, write)
        channel = self.channel if channel is None else channel
        metadata = self.token_metadata
        try:
            try:
                return await self._unary(channel, path, request, repeatable, metadata, record)
            except GrpcError as exc:
                if not (self.credentials and needs_reauthentication(exc.message)):
                    raise
            # The token expired or the auth store moved on; the server refused the
            # request before applying it, so a retry with a fresh token is safe.
            if record is not None:
                record.event("reauthenticate")
            await self.reauthenticate(metadata)
            return await self._unary(
                channel, path, request, repeatable, self.token_metadata, record
            )
        except (GrpcError, TransportError) as exc:
            if isinstance(exc, GrpcError) and exc.status == Status.UNIMPLEMENTED:
                raise unsupported(path, exc.message) from exc
            raise translate(exc, write=not repeatable if write is None else write) from exc

    async def _call_observed(
        self,
        path: str,
        request: bytes,
        repeatable: bool,
        channel: Channel | None,
        write: bool | None,
    ) -> bytes:
        """:meth:`call_raw` seen by the observers (telemetry)."""
        record = Rpc(self.observers, path, "unary", len(request))
        record.started()
        try:
            response = await self.call_raw(
                path, request, repeatable=repeatable, channel=channel, write=write, record=record
            )
        except BaseException as exc:
            record.finished(exc)
            raise
        record.finished(None, len(response))
        return response

    async def _unary(
        self,
        channel: Channel,
        path: str,
        request: bytes,
        repeatable: bool,
        metadata: bytes,
        record: Rpc | None,
    ) -> bytes:
        try:
            if self.timeout is None or cleaning():
                return await channel.unary(
                    path, request, repeatable=repeatable, metadata=metadata, record=record
                )
            with anyio.fail_after(self.timeout):
                try:
                    return await channel.unary(
                        path, request, repeatable=repeatable, metadata=metadata, record=record
                    )
                except GrpcError as exc:
                    if is_deadline_answer(exc):
                        await let_deadline_fire()  # the client's timeout, if it was that
                    raise
        except GrpcError as exc:
            if is_deadline_answer(exc):
                await let_deadline_fire()
            raise

    # -- authentication ----------------------------------------------------------------------

    async def authenticate(self) -> None:
        """Get a token with the client's credentials (no token is sent for this call)."""
        credentials = self.credentials
        assert credentials is not None
        try:
            raw = await self.channel.unary(
                "/etcdserverpb.Auth/Authenticate", bytes(credentials.request()), repeatable=True
            )
        except GrpcError as exc:
            error = translate(exc, write=False)
            if isinstance(error, AuthNotEnabledError):
                # Auth was turned off: calls need no token any more (as Go's client does).
                self.token_metadata = b""
                return
            raise error from None  # the request held the password
        except TransportError as exc:
            raise translate(exc, write=False) from None
        token = pb.AuthenticateResponse.parse(raw).token
        self.token_metadata = encode_metadata([("token", token)])

    async def reauthenticate(self, stale: bytes) -> None:
        if self.credentials is None:
            return
        async with self._auth_lock:
            # ``stale`` is what a call or a stream sent (streams add hasleader).
            if stale in (self.token_metadata, self.token_metadata + _HASLEADER):
                self.reauthentications += 1
                logger.info("authenticating again (the token expired or the auth store changed)")
                await self.authenticate()

    def has_credentials(self) -> bool:
        return self.credentials is not None

    def stream_metadata(self) -> bytes:
        return self.token_metadata + _HASLEADER

    # -- calls to one member -----------------------------------------------------------------

    @asynccontextmanager
    async def endpoint_channel(self, endpoints: Sequence[str] | None) -> AsyncIterator[Channel]:
        """
        A channel to one member's client URLs: the client's own for ``None`` or when it is
        connected to one of them already, else a short-lived one (the client's task group, TLS
        context and options) closed on exit. Bad URLs raise before any I/O.
        """
        if endpoints is None:
            yield self.channel
            return
        tls = any(e.tls for e in self.channel.endpoints)
        parsed = [Endpoint.parse(e) for e in endpoints]
        # A bare host:port means the client's scheme.
        parsed = [
            dataclasses.replace(p, tls=True) if tls and "://" not in e else p
            for p, e in zip(parsed, endpoints, strict=True)
        ]
        if self.channel.current_endpoint in parsed:
            yield self.channel
            return
        if self.channel._closed:  # the task group is gone too
            raise anyio.ClosedResourceError
        channel = Channel(
            parsed,
            self.tg,
            ssl_context=self.channel._ssl_context,  # the context of https:// endpoints too
            options=self.channel.options,
        )
        try:
            yield channel
        finally:
            with anyio.CancelScope(shield=True):
                await channel.aclose()

    async def call_at(
        self,
        path: str,
        request: betterproto2.Message,
        response_type: type[M],
        *,
        repeatable: bool,
        endpoints: Sequence[str] | None,
    ) -> M:
        raw = await self.call_raw_at(
            path, bytes(request), repeatable=repeatable, endpoints=endpoints
        )
        return response_type.parse(raw)

    async def call_raw_at(
        self, path: str, request: bytes, *, repeatable: bool, endpoints: Sequence[str] | None
    ) -> bytes:
        async with self.endpoint_channel(endpoints) as channel:
            return await self.call_raw(path, request, repeatable=repeatable, channel=channel)

    @asynccontextmanager
    async def open_stream(
        self, path: str, request: bytes, *, endpoints: Sequence[str] | None
    ) -> AsyncIterator[Call]:
        async with (
            self.endpoint_channel(endpoints) as channel,
            channel.open_call(path, metadata=self.token_metadata) as call,
        ):
            await call.send_message(request, end=True)
            yield call


if TYPE_CHECKING:

    def _implements_call_path(core: Core) -> CallPath:
        return core  # mypy checks here that Core is what the services are typed against

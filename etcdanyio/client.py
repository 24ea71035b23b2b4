"""The client: :func:`open_etcd` and :class:`Client`."""

from __future__ import annotations

import dataclasses
import logging
import os
import ssl
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, TypeVar

import anyio

from ._auth import REAUTHENTICATE, AuthMixin, Credentials
from ._cleanup import CLEANUP_TIMEOUT, Cleanups, KeyGuards, cleaning
from ._cluster import ClusterMixin
from ._discovery import discover_endpoints, endpoints_from_members
from ._election_rpc import ElectionRpcMixin
from ._grpc import Channel, Endpoint, GrpcError, Status, TransportError
from ._grpc._channel import ChannelOptions
from ._grpc._headers import encode_metadata
from ._http import HttpMixin
from ._keys import Namespace, to_bytes
from ._kv import KVMixin
from ._lazy import etcdserverpb as pb  # imported on first use
from ._lease import LeaseMixin
from ._maintenance import MaintenanceMixin
from ._mirror import Mirror, open_mirror
from ._requests import check_int, check_optional_seconds, check_seconds
from ._telemetry import ClientStatistics, Rpc, RpcObserver
from ._watch import WatchMixin
from .election import ElectionMixin
from .errors import EtcdError, is_deadline_answer, translate, unsupported
from .lock import LockMixin

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

if TYPE_CHECKING:
    import betterproto2
    from anyio.abc import TaskGroup

    from ._grpc._call import Call
    from ._keepalive import KeepAliveStream
    from ._watch_stream import WatchStream

M = TypeVar("M", bound="betterproto2.Message")

DEFAULT_ENDPOINT = "http://127.0.0.1:2379"
#: the bound of one member-list call of the endpoint auto-sync (Go's ``autoSync`` uses 5 s)
SYNC_TIMEOUT = 5.0

logger = logging.getLogger("etcdanyio.client")


def parse_endpoints(endpoints: str | Sequence[str] | None) -> list[Endpoint]:
    """
    Endpoints from a string (comma-separated allowed), a sequence, or ``None``
    (then ``$ETCD_ENDPOINTS``, else ``http://127.0.0.1:2379``).
    """
    if endpoints is None:
        endpoints = os.environ.get("ETCD_ENDPOINTS") or DEFAULT_ENDPOINT
    if isinstance(endpoints, str):
        items = [e for e in endpoints.split(",") if e.strip()]
    elif isinstance(endpoints, Sequence):
        items = list(endpoints)
    else:
        raise TypeError(
            f"endpoints must be a str or a sequence of str, got {endpoints!r} "
            f"({type(endpoints).__name__})"
        )
    if not items:
        raise ValueError("no endpoints given")
    parsed = [Endpoint.parse(e) for e in items]
    if len({e.tls for e in parsed}) > 1:
        raise ValueError("endpoints mix http:// and https://")
    return parsed


class Client(
    KVMixin,
    WatchMixin,
    ClusterMixin,
    MaintenanceMixin,
    LeaseMixin,
    LockMixin,
    ElectionMixin,
    ElectionRpcMixin,
    AuthMixin,
    HttpMixin,
):
    """
    A connection to an etcd cluster. Create it with :func:`open_etcd`.

    Every method is a coroutine that works the same under asyncio and trio.
    Bound a call with your own cancel scope (``anyio.fail_after``); its
    deadline is sent to etcd as ``grpc-timeout``.
    """

    def __init__(
        self,
        channel: Channel,
        task_group: TaskGroup,
        *,
        timeout: float | None,
        namespace: bytes = b"",
        credentials: Credentials | None = None,
        observers: Sequence[RpcObserver] = (),
    ) -> None:
        self._channel = channel
        self._tg = task_group
        self._timeout = timeout
        self._ns = Namespace(namespace)
        self._watch_stream: WatchStream | None = None
        self._keepalive_stream: KeepAliveStream | None = None
        self._credentials = credentials
        #: the encoded ``token`` metadata of every call (empty without auth)
        self._token_metadata = b""
        self._auth_lock = anyio.Lock()
        #: clean-ups left to the background, and the guards of keys shared by sessions
        self._cleanups = Cleanups(self, task_group)
        self._key_guards = KeyGuards()
        #: who sees every RPC (telemetry); empty: the call path checks this and nothing else
        self._observers: tuple[RpcObserver, ...] = tuple(observers)
        if self._observers:
            channel.stream_observer = self._stream_record
        self._reauthentications = 0

    def _stream_record(self, path: str) -> Rpc:
        record = Rpc(self._observers, path, "stream", 0)
        record.started()
        return record

    def statistics(self) -> ClientStatistics:
        """
        A snapshot of the client: connections, calls in flight, watches and the most lagging
        one, leases kept alive, and counters of connects, failovers, re-authentications and
        watch resumes (anyio's ``statistics()`` convention).

        .. versionadded:: 0.1
        """
        channel = self._channel
        connection = channel.connection
        watches = self._watch_stream
        keepalive = self._keepalive_stream
        return ClientStatistics(
            endpoints=tuple(self.endpoints),
            connected_endpoint=str(channel.current_endpoint or ""),
            connections=1 if connection is not None and connection.error is None else 0,
            calls_in_flight=connection.open_calls if connection is not None else 0,
            watches=watches.watchers if watches is not None else 0,
            most_lagging_watch=watches.most_lagging() if watches is not None else None,
            leases_kept_alive=keepalive.leases if keepalive is not None else 0,
            nearest_lease_deadline=keepalive.nearest_deadline() if keepalive else None,
            connects=channel.connects,
            failovers=channel.failovers,
            reauthentications=self._reauthentications,
            watch_resumes=watches.resumes if watches is not None else 0,
            watch_compactions=watches.compactions if watches is not None else 0,
            pending_cleanups=self._cleanups.pending,
        )

    def __repr__(self) -> str:
        parts = [f"endpoints={self.endpoints!r}"]
        if self._ns:
            parts.append(f"namespace={self._ns.prefix!r}")
        if self._credentials is not None:
            parts.append(f"user={self._credentials.name!r}")  # never the password
        return f"Client({', '.join(parts)})"

    @property
    def namespace(self) -> bytes:
        """The prefix added to every key sent and stripped from every key returned."""
        return self._ns.prefix

    @property
    def endpoints(self) -> list[str]:
        """The endpoints the client connects to, as URLs (``sync_endpoints`` changes them)."""
        return [str(e) for e in self._channel.endpoints]

    async def sync_endpoints(self) -> list[str]:
        """
        Replace the endpoint list with the client URLs of the cluster's started, voting members,
        once (``auto_sync_interval`` does it periodically; Go's ``Client.Sync``).

        The member list is linearizable: a member cut off from the quorum cannot hand back a
        stale list (one that still has removed members, say); without a leader the call fails
        and the list stays. Learners and members added but never started are left out, and so
        are client URLs of the other scheme (``http`` for a TLS client and vice versa). If
        nothing is left, the list is kept as it is. Endpoints that stay keep their backoff
        state; if the endpoint the client is connected to is gone, new calls go to another one
        and the calls in flight finish.

        :return: the endpoint list after the sync, as URLs
        :raises EtcdError: if the member list could not be read; the list is then unchanged

        .. versionadded:: 0.1
        """
        members = await self.members()
        channel = self._channel
        tls = channel._ssl_context is not None or any(e.tls for e in channel.endpoints)
        endpoints = endpoints_from_members(members, tls=tls)
        if endpoints:
            channel.set_endpoints(endpoints)
        else:
            logger.debug("endpoint sync found no usable client URL, keeping the list")
        return self.endpoints

    async def _auto_sync(self, interval: float) -> None:
        """Sync the endpoint list now and every ``interval`` s; failures keep the old list."""
        while True:
            with anyio.move_on_after(SYNC_TIMEOUT) as scope:
                try:
                    await self.sync_endpoints()
                except (EtcdError, TimeoutError) as exc:
                    logger.debug("endpoint auto-sync failed, keeping the list error=%r", exc)
                except anyio.ClosedResourceError:
                    return  # the client is closing
            if scope.cancelled_caught:
                logger.debug("endpoint auto-sync timed out, keeping the list")
            await anyio.sleep(interval)

    def mirror(
        self,
        key: str | bytes,
        *,
        prefix: bool = False,
        end: str | bytes | None = None,
        page_size: int = 1000,
        max_buffered: int = 10_000,
    ) -> AbstractAsyncContextManager[Mirror]:
        """
        A local copy of ``key`` (or a range, with ``prefix=True`` or ``end=``), kept equal to
        the store by a watch: ``async with client.mirror("config/", prefix=True) as m``.

        The block starts once the range was read (``page_size`` keys per request, all at one
        revision); leaving it stops the watch and the mirror's task. See :doc:`mirror`.

        :param max_buffered: events the mirror's watch buffers before it is paused on the
            server (see :meth:`watch`)
        """
        return open_mirror(
            self, key, prefix=prefix, end=end, page_size=page_size, max_buffered=max_buffered
        )

    async def _call(
        self,
        path: str,
        request: betterproto2.Message,
        response_type: type[M],
        *,
        repeatable: bool,
        write: bool | None = None,
    ) -> M:
        raw = await self._call_raw(path, bytes(request), repeatable=repeatable, write=write)
        return response_type.parse(raw)

    async def _call_raw(
        self,
        path: str,
        request: bytes,
        *,
        repeatable: bool,
        channel: Channel | None = None,
        write: bool | None = None,
        record: Rpc | None = None,
    ) -> bytes:
        """
        One unary call. ``repeatable``: safe to retry; ``write``: may change state (default:
        not ``repeatable``), so that a failure after it was sent has ``applied=None``.
        """
        if self._observers and record is None:
            return await self._call_observed(path, request, repeatable, channel, write)
        channel = self._channel if channel is None else channel
        metadata = self._token_metadata
        try:
            try:
                return await self._unary(channel, path, request, repeatable, metadata, record)
            except GrpcError as exc:
                if not (self._credentials and exc.message in REAUTHENTICATE):
                    raise
            # The token expired or the auth store moved on; the server refused the
            # request before applying it, so a retry with a fresh token is safe.
            if record is not None:
                record.event("reauthenticate")
            await self._reauthenticate(metadata)
            return await self._unary(
                channel, path, request, repeatable, self._token_metadata, record
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
        """:meth:`_call_raw` seen by the observers (telemetry)."""
        record = Rpc(self._observers, path, "unary", len(request))
        record.started()
        try:
            response = await self._call_raw(
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
            if self._timeout is None or cleaning():
                return await channel.unary(
                    path, request, repeatable=repeatable, metadata=metadata, record=record
                )
            with anyio.fail_after(self._timeout):
                try:
                    return await channel.unary(
                        path, request, repeatable=repeatable, metadata=metadata, record=record
                    )
                except GrpcError as exc:
                    if is_deadline_answer(exc):
                        await _let_deadline_fire()  # the client's timeout, if it was that
                    raise
        except GrpcError as exc:
            if is_deadline_answer(exc):
                await _let_deadline_fire()
            raise

    async def _authenticate(self) -> None:
        """Get a token with the client's credentials (no token is sent for this call)."""
        credentials = self._credentials
        assert credentials is not None
        try:
            raw = await self._channel.unary(
                "/etcdserverpb.Auth/Authenticate", bytes(credentials.request()), repeatable=True
            )
        except GrpcError as exc:
            if exc.message == "etcdserver: authentication is not enabled":
                # Auth was turned off: calls need no token any more (as Go's client does).
                self._token_metadata = b""
                return
            raise translate(exc, write=False) from None  # the request held the password
        except TransportError as exc:
            raise translate(exc, write=False) from None
        token = pb.AuthenticateResponse.parse(raw).token
        self._token_metadata = encode_metadata([("token", token)])

    async def _reauthenticate(self, stale: bytes) -> None:
        """Authenticate again, once for every task that saw the token ``stale`` fail."""
        if self._credentials is None:
            return
        async with self._auth_lock:
            # ``stale`` is what a call or a stream sent (streams add hasleader).
            if stale in (self._token_metadata, self._token_metadata + _HASLEADER):
                self._reauthentications += 1
                logger.info("authenticating again (the token expired or the auth store changed)")
                await self._authenticate()

    def _has_credentials(self) -> bool:
        return self._credentials is not None

    def _stream_metadata(self) -> bytes:
        """Metadata for long-lived streams: the token, and ``hasleader: true``."""
        return self._token_metadata + _HASLEADER

    @asynccontextmanager
    async def _endpoint_channel(self, endpoints: Sequence[str] | None) -> AsyncIterator[Channel]:
        """
        A channel to one member's client URLs: the client's own for ``None`` or when it is
        connected to one of them already, else a short-lived one (the client's task group, TLS
        context and options) closed on exit. Bad URLs raise before any I/O.
        """
        if endpoints is None:
            yield self._channel
            return
        tls = any(e.tls for e in self._channel.endpoints)
        parsed = [Endpoint.parse(e) for e in endpoints]
        # A bare host:port means the client's scheme.
        parsed = [
            dataclasses.replace(p, tls=True) if tls and "://" not in e else p
            for p, e in zip(parsed, endpoints, strict=True)
        ]
        if self._channel.current_endpoint in parsed:
            yield self._channel
            return
        if self._channel._closed:  # the task group is gone too
            raise anyio.ClosedResourceError
        channel = Channel(
            parsed,
            self._tg,
            ssl_context=self._channel._ssl_context,  # the context of https:// endpoints too
            options=self._channel.options,
        )
        try:
            yield channel
        finally:
            with anyio.CancelScope(shield=True):
                await channel.aclose()

    async def _call_at(
        self,
        path: str,
        request: betterproto2.Message,
        response_type: type[M],
        *,
        repeatable: bool,
        endpoints: Sequence[str] | None,
    ) -> M:
        """:meth:`_call` on a connection to ``endpoints`` (one member); ``None``: the client's."""
        raw = await self._call_raw_at(
            path, bytes(request), repeatable=repeatable, endpoints=endpoints
        )
        return response_type.parse(raw)

    async def _call_raw_at(
        self, path: str, request: bytes, *, repeatable: bool, endpoints: Sequence[str] | None
    ) -> bytes:
        """:meth:`_call_raw` on a connection to ``endpoints`` (one member); ``None``: ours."""
        async with self._endpoint_channel(endpoints) as channel:
            return await self._call_raw(path, request, repeatable=repeatable, channel=channel)

    @asynccontextmanager
    async def _open_stream(
        self, path: str, request: bytes, *, endpoints: Sequence[str] | None
    ) -> AsyncIterator[Call]:
        """
        A server-streaming call to ``endpoints`` (one member; ``None``: the client's), its one
        request sent. The caller translates ``_grpc`` errors; the stream is reset on exit.
        """
        async with (
            self._endpoint_channel(endpoints) as channel,
            channel.open_call(path, metadata=self._token_metadata) as call,
        ):
            await call.send_message(request, end=True)
            yield call


@asynccontextmanager
async def open_etcd(
    endpoints: str | Sequence[str] | None = None,
    *,
    ssl_context: ssl.SSLContext | None = None,
    timeout: float | None = None,  # noqa: ASYNC109 -- api.md: a client-wide default deadline
    connect_timeout: float = 5.0,
    keepalive_interval: float = 10.0,
    keepalive_timeout: float = 5.0,
    max_receive_message: int = 2**31 - 1,
    max_send_message: int = 2**31 - 1,
    tls_server_hostname: str | None = None,
    namespace: str | bytes | None = None,
    username: str | None = None,
    password: str | None = None,
    discovery_srv: str | None = None,
    discovery_srv_name: str = "",
    discovery_srv_nameserver: tuple[str, int] | None = None,
    auto_sync_interval: float | None = None,
    observers: Sequence[RpcObserver] = (),
    opentelemetry: bool | None = None,
) -> AsyncIterator[Client]:
    """
    Open a client; leaving the block closes every connection and background task.

    :param endpoints: ``"host:port"``, ``"http://host:port"``, ``"https://host:port"``,
        a comma-separated string or a sequence of them; ``None`` reads
        ``$ETCD_ENDPOINTS``, else ``http://127.0.0.1:2379``
    :param ssl_context: TLS for every endpoint (also for ``host:port`` ones)
    :param timeout: default deadline in seconds of every unary call; expiry
        raises ``TimeoutError``
    :param connect_timeout: how long to wait for one endpoint to connect
    :param keepalive_interval: seconds without traffic, while a call is open,
        before the connection is checked with a PING (etcd refuses PINGs more
        often than every 5 s by default)
    :param keepalive_timeout: seconds to wait for the PING's answer before the
        connection is given up
    :param tls_server_hostname: the name to check the server certificate
        against, for endpoints given by IP address
    :param namespace: a prefix added to every key sent and stripped from every
        key returned, so that the client sees only its part of the keyspace
    :param username: etcd user; the client authenticates before the block runs,
        sends the token on every call and stream, and authenticates again by
        itself when the token expires
    :param password: that user's password (never shown in reprs or errors)
    :param discovery_srv: find the endpoints in DNS instead (Go's ``--discovery-srv``): the SRV
        records ``_etcd-client-ssl._tcp.<domain>`` give ``https://target:port`` endpoints,
        ``_etcd-client._tcp.<domain>`` ``http://`` ones (only the ``https://`` ones are used
        when both exist; pass ``ssl_context`` to never connect without TLS). Looked up once,
        before the block runs, within ``connect_timeout``; not with ``endpoints``
    :param discovery_srv_name: a suffix of the SRV service label (Go's
        ``--discovery-srv-name``): ``_etcd-client-<name>._tcp.<domain>``
    :param discovery_srv_nameserver: the DNS server ``(host, port)`` to ask; default the
        nameservers of ``/etc/resolv.conf``, the first that answers
    :param auto_sync_interval: every this many seconds (and once at the start), replace the
        endpoint list with the client URLs of the cluster's started, voting members, as
        :meth:`Client.sync_endpoints` does, in a task of the client; a failed or empty sync
        keeps the list. ``None`` (the default) never syncs
    :param observers: :class:`~etcdanyio.telemetry.RpcObserver` instances that see every RPC
        (method, endpoint, attempts, retries and failovers, status, error, sizes, duration)
    :param opentelemetry: record a span and a duration per RPC through OpenTelemetry's global
        providers (``etcdanyio[otel]``). ``None`` (the default): when ``opentelemetry-api`` is
        installed and the application configured an SDK provider before opening the client.
        ``True``: whenever the API is installed; ``False``: never. For providers of your own,
        pass ``observers=[etcdanyio.telemetry.OpenTelemetryObserver(tracer_provider=...)]``
    :raises AuthenticationError: if the credentials are wrong
    :raises ConnectionFailedError: if ``discovery_srv`` finds no endpoint
    """
    if discovery_srv is not None and endpoints is not None:
        raise ValueError("give endpoints or discovery_srv, not both")
    parsed = parse_endpoints(endpoints) if discovery_srv is None else []
    prefix = to_bytes(namespace, "namespace") if namespace is not None else b""
    if (username is None) != (password is None):
        raise ValueError("give both username and password, or neither")
    credentials = (
        Credentials(username, password) if username is not None and password is not None else None
    )
    timeout = check_optional_seconds(timeout, "timeout")
    connect_timeout = check_seconds(connect_timeout, "connect_timeout")
    keepalive_interval = check_seconds(keepalive_interval, "keepalive_interval")
    keepalive_timeout = check_seconds(keepalive_timeout, "keepalive_timeout")
    auto_sync_interval = check_optional_seconds(auto_sync_interval, "auto_sync_interval")
    check_int(max_receive_message, "max_receive_message", minimum=1)
    check_int(max_send_message, "max_send_message", minimum=1)
    if ssl_context is not None and not isinstance(ssl_context, ssl.SSLContext):
        raise TypeError(
            f"ssl_context must be an ssl.SSLContext, got {ssl_context!r} "
            f"({type(ssl_context).__name__})"
        )
    if tls_server_hostname is not None and not isinstance(tls_server_hostname, str):
        raise TypeError(
            f"tls_server_hostname must be a str, got {tls_server_hostname!r} "
            f"({type(tls_server_hostname).__name__})"
        )
    observers = _with_opentelemetry(list(observers), opentelemetry)
    if discovery_srv is not None:
        parsed = await discover_endpoints(
            discovery_srv,
            discovery_srv_name,
            nameserver=discovery_srv_nameserver,
            timeout=connect_timeout,
        )
    options = ChannelOptions(
        connect_timeout=connect_timeout,
        keepalive_interval=keepalive_interval,
        keepalive_timeout=keepalive_timeout,
        max_receive_message=max_receive_message,
        max_send_message=max_send_message,
        tls_server_hostname=tls_server_hostname,
    )
    body_error: BaseException | None = None
    try:
        async with anyio.create_task_group() as tg:
            channel = Channel(parsed, tg, ssl_context=ssl_context, options=options)
            client: Client | None = None
            try:
                client = Client(
                    channel,
                    tg,
                    timeout=timeout,
                    namespace=prefix,
                    credentials=credentials,
                    observers=observers,
                )
                if credentials is not None:
                    await client._authenticate()
                if auto_sync_interval is not None:
                    tg.start_soon(client._auto_sync, auto_sync_interval)
                yield client
            except BaseException as exc:
                body_error = exc
                raise
            finally:
                with anyio.CancelScope(shield=True):
                    if client is not None:
                        await client._cleanups.close(CLEANUP_TIMEOUT)
                    await channel.aclose()
                tg.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # One exception out: what the body raised leaves the block as itself.
        if body_error is not None and group.exceptions == (body_error,):
            raise body_error from body_error.__cause__
        raise


_HASLEADER = encode_metadata([("hasleader", "true")])


def _with_opentelemetry(
    observers: list[RpcObserver], opentelemetry: bool | None
) -> list[RpcObserver]:
    """``observers``, plus OpenTelemetry's when asked for (or configured, by default)."""
    for observer in observers:
        if not isinstance(observer, RpcObserver):
            raise TypeError(
                f"observers must be RpcObserver instances, got {observer!r} "
                f"({type(observer).__name__})"
            )
    if opentelemetry is False:
        return observers
    try:
        from . import _otel
    except ImportError:
        if opentelemetry:
            raise ImportError(
                "opentelemetry=True needs opentelemetry-api: pip install 'etcdanyio[otel]'"
            ) from None
        return observers
    if any(isinstance(o, _otel.OpenTelemetryObserver) for o in observers):
        return observers
    if opentelemetry or _otel.configured():
        observers.append(_otel.OpenTelemetryObserver())
    return observers


async def _let_deadline_fire() -> None:
    """
    etcd gave up on the deadline we sent it (DEADLINE_EXCEEDED, or UNAVAILABLE "request timed
    out" for a proposal): if that deadline was a cancel scope's (the caller's own or the
    client's default timeout), let the scope fire (it is due now), so that the caller sees its
    ``TimeoutError`` or ``move_on_after``, not an error of ours.
    """
    if anyio.current_effective_deadline() <= anyio.current_time():
        await anyio.sleep_forever()

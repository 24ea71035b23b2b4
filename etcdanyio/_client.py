"""The client: :func:`open_etcd` and :class:`Client`."""

from __future__ import annotations

import logging
import os
import ssl
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING

import anyio

from ._auth import AuthMixin
from ._cleanup import CLEANUP_TIMEOUT
from ._cluster import ClusterMixin
from ._core import Core, Credentials
from ._discovery import discover_endpoints, endpoints_from_members
from ._election import ElectionMixin
from ._election_rpc import ElectionRpcMixin
from ._grpc import Channel, Endpoint
from ._grpc._channel import ChannelOptions
from ._http import HttpMixin
from ._keys import to_bytes
from ._kv import KVMixin
from ._lease_rpc import LeaseMixin
from ._lock import LockMixin
from ._maintenance import MaintenanceMixin
from ._mirror import Mirror, open_mirror
from ._requests import check_int, check_optional_seconds, check_seconds
from ._telemetry import ClientStatistics, RpcObserver
from ._watch import WatchMixin
from .errors import EtcdError

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

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

    _core: Core

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
        self._core = Core(
            self,
            channel,
            task_group,
            timeout=timeout,
            namespace=namespace,
            credentials=credentials,
            observers=observers,
        )

    def statistics(self) -> ClientStatistics:
        """
        A snapshot of the client: connections, calls in flight, watches and the most lagging
        one, leases kept alive, and counters of connects, failovers, re-authentications and
        watch resumes (anyio's ``statistics()`` convention).

        .. versionadded:: 0.1
        """
        core = self._core
        channel = core.channel
        connection = channel.connection
        watches = core.watch_stream
        keepalive = core.keepalive_stream
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
            reauthentications=core.reauthentications,
            watch_resumes=watches.resumes if watches is not None else 0,
            watch_compactions=watches.compactions if watches is not None else 0,
            pending_cleanups=core.cleanups.pending,
        )

    def __repr__(self) -> str:
        parts = [f"endpoints={self.endpoints!r}"]
        if self._core.ns:
            parts.append(f"namespace={self._core.ns.prefix!r}")
        if self._core.credentials is not None:
            parts.append(f"user={self._core.credentials.name!r}")  # never the password
        return f"Client({', '.join(parts)})"

    @property
    def namespace(self) -> bytes:
        """The prefix added to every key sent and stripped from every key returned."""
        return self._core.ns.prefix

    @property
    def endpoints(self) -> list[str]:
        """The endpoints the client connects to, as URLs (``sync_endpoints`` changes them)."""
        return [str(e) for e in self._core.channel.endpoints]

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
        channel = self._core.channel
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
                    await client._core.authenticate()
                if auto_sync_interval is not None:
                    tg.start_soon(client._auto_sync, auto_sync_interval)
                yield client
            except BaseException as exc:
                body_error = exc
                raise
            finally:
                with anyio.CancelScope(shield=True):
                    if client is not None:
                        await client._core.cleanups.close(CLEANUP_TIMEOUT)
                    await channel.aclose()
                tg.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # One exception out: what the body raised leaves the block as itself.
        if body_error is not None and group.exceptions == (body_error,):
            raise body_error from body_error.__cause__
        raise


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

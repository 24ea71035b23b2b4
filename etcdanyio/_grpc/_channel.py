"""
Endpoints, dialing (TCP, TLS with ALPN ``h2``), reconnect with backoff and jitter.

A :class:`Channel` keeps one pinned :class:`Connection` at a time. When it
fails, the next call dials again, trying endpoints in order of when each may
be tried next (an endpoint that just failed waits out its backoff).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import math
import ssl
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Protocol, TypeVar

import anyio
import anyio.abc
import anyio.lowlevel

from ._backend import primitives
from ._backoff import backoff
from ._call import Call, remaining
from ._connection import Connection
from ._errors import GrpcError, TransportError, UnreachableError
from ._retry import RetryPolicy
from ._status import Status
from ._wire import Wire, connect_tcp, wire_for

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

    from anyio.abc import AnyByteStream, TaskGroup

logger = logging.getLogger("etcdanyio.grpc")

T = TypeVar("T")


@dataclasses.dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a server listens. ``tls`` comes from ``https://`` (or an SSL context)."""

    host: str
    port: int
    tls: bool = False

    @classmethod
    def parse(cls, text: str, *, default_port: int = 2379) -> Endpoint:
        """
        Parse ``host:port``, ``http://host:port`` or ``https://host:port``.

        IPv6 addresses go in brackets: ``[::1]:2379``.

        :raises ValueError: for anything else
        """
        if not isinstance(text, str):
            raise TypeError(f"endpoint must be a str, got {text!r} ({type(text).__name__})")
        original = text
        text = text.strip()
        tls = False
        if "://" in text:
            scheme, _, text = text.partition("://")
            scheme = scheme.lower()
            if scheme == "https":
                tls = True
            elif scheme != "http":
                raise ValueError(f"endpoint scheme must be http or https, got {original!r}")
        text = text.rstrip("/")
        if not text or "/" in text:
            raise ValueError(f"endpoint must look like host:port, got {original!r}")
        if text.startswith("["):
            host, sep, rest = text[1:].partition("]")
            if not sep or (rest and not rest.startswith(":")):
                raise ValueError(f"bad IPv6 endpoint {original!r}")
            port_text = rest[1:]
        else:
            host, sep, port_text = text.rpartition(":")
            if not sep:
                host, port_text = text, ""
            elif ":" in host:
                raise ValueError(f"IPv6 endpoints need brackets, e.g. [::1]:2379; got {original!r}")
        if not host:
            raise ValueError(f"endpoint has no host: {original!r}")
        if port_text:
            # ASCII digits only: str.isdigit() and int() also take other scripts' digits.
            if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
                raise ValueError(f"bad port in endpoint {original!r}")
            port = int(port_text)
        else:
            port = default_port
        _check_host(host, original)
        return cls(host, port, tls)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def _check_host(host: str, original: str) -> None:
    """A host name DNS (and IDNA) can take, or an IP address: checked before any I/O."""
    if ":" in host:
        try:
            ipaddress.IPv6Address(host.partition("%")[0])
        except ValueError:
            raise ValueError(f"bad IPv6 address in endpoint {original!r}") from None
        return
    try:
        encoded = host.rstrip(".").encode("idna")
    except UnicodeError as exc:
        raise ValueError(f"bad host name in endpoint {original!r}: {exc}") from None
    if len(encoded) > 253 or any(not 0 < len(label) < 64 for label in encoded.split(b".")):
        raise ValueError(
            f"bad host name in endpoint {original!r}: labels must be 1-63 characters, "
            "the name at most 253"
        )


class AttemptRecord(Protocol):
    """What the channel tells telemetry of a call (``etcdanyio._telemetry.Rpc``)."""

    attempts: int
    endpoint: str

    def event(self, name: str, **attributes: object) -> None: ...


class StreamRecord(AttemptRecord, Protocol):
    def finished(self, error: BaseException | None, response_size: int = 0) -> None: ...


@dataclasses.dataclass
class _EndpointState:
    endpoint: Endpoint
    failures: int = 0
    next_attempt: float = 0.0
    last_error: BaseException | None = None


@dataclasses.dataclass(frozen=True)
class ChannelOptions:
    connect_timeout: float = 5.0
    keepalive_interval: float = 10.0
    keepalive_timeout: float = 5.0
    max_receive_message: int = 2**31 - 1
    max_send_message: int = 2**31 - 1
    backoff_base: float = 0.05
    backoff_max: float = 2.0
    tls_server_hostname: str | None = None
    user_agent: str = "etcdanyio"


class Channel:
    """
    Calls over one pinned connection to one of several endpoints.

    :param endpoints: where to connect, tried in order
    :param task_group: the group the connection reader tasks run in
    :param ssl_context: TLS for every endpoint (``https://`` endpoints without
        it use a default context)
    """

    def __init__(
        self,
        endpoints: Sequence[Endpoint],
        task_group: TaskGroup,
        *,
        ssl_context: ssl.SSLContext | None = None,
        options: ChannelOptions | None = None,
        connect: Callable[[Endpoint], Awaitable[AnyByteStream | Wire]] | None = None,
    ) -> None:
        if not endpoints:
            raise ValueError("at least one endpoint is needed")
        self._endpoints = [_EndpointState(e) for e in endpoints]
        self._tg = task_group
        self._ssl_context = ssl_context
        self.options = options or ChannelOptions()
        self._connect = connect or self._connect_tcp
        self._connection: Connection | None = None
        self._connection_endpoint: Endpoint | None = None
        self._dial_lock = anyio.Lock()
        self._closed = False
        self.retry = RetryPolicy()
        self._deadline = primitives().deadline
        #: connections made, and moves away from a member (counters for statistics)
        self.connects = 0
        self.failovers = 0
        #: called with a :class:`StreamRecord` per stream opened, if set (telemetry)
        self.stream_observer: Callable[[str], StreamRecord] | None = None

    @property
    def endpoints(self) -> list[Endpoint]:
        return [s.endpoint for s in self._endpoints]

    @property
    def current_endpoint(self) -> Endpoint | None:
        return self._connection_endpoint if self._connection is not None else None

    @property
    def connection(self) -> Connection | None:
        return self._connection

    def _context_for(self, endpoint: Endpoint) -> ssl.SSLContext | None:
        if not endpoint.tls and self._ssl_context is None:
            return None
        if self._ssl_context is None:
            # Built once, on first use: loading the system CAs is not cheap.
            self._ssl_context = ssl.create_default_context()
        # ALPN h2 is required (grpc-go refuses TLS without it); setting it is idempotent.
        self._ssl_context.set_alpn_protocols(["h2"])
        return self._ssl_context

    async def _connect_tcp(self, endpoint: Endpoint) -> AnyByteStream | Wire:
        context = self._context_for(endpoint)
        if context is None:
            return await connect_tcp(endpoint.host, endpoint.port)
        try:
            connected = await connect_tcp(
                endpoint.host,
                endpoint.port,
                ssl_context=context,
                server_hostname=self.options.tls_server_hostname or endpoint.host,
            )
        except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionResetError) as exc:
            # A peer that hangs up mid-handshake: anyio reports it this way, not as
            # OSError, and asyncio as a reset ("connection lost").
            raise ConnectionError(
                f"TLS handshake with {endpoint} failed: connection closed "
                "(does the endpoint serve TLS?)"
            ) from exc
        wire = wire_for(connected)
        protocol = wire.alpn_protocol()
        if protocol not in ("h2", None):
            await wire.aclose()
            raise ConnectionError(f"server chose ALPN protocol {protocol!r}, not h2")
        return wire

    async def _dial(self, state: _EndpointState) -> Connection:
        endpoint = state.endpoint
        options = self.options
        with anyio.fail_after(options.connect_timeout):
            stream = await self._connect(endpoint)
            connection = Connection(
                stream,
                authority=endpoint.authority,
                tls=self._context_for(endpoint) is not None,
                keepalive_interval=options.keepalive_interval,
                keepalive_timeout=options.keepalive_timeout,
                max_receive_message=options.max_receive_message,
                max_send_message=options.max_send_message,
                user_agent=options.user_agent,
            )
            try:
                await self._tg.start(connection.run)
            except BaseException:
                await connection.aclose()
                raise
        return connection

    def _backoff(self, state: _EndpointState) -> None:
        state.failures += 1
        options = self.options
        delay = backoff(state.failures, base=options.backoff_base, cap=options.backoff_max)
        state.next_attempt = anyio.current_time() + delay

    def _usable(self) -> Connection | None:
        """The pinned connection, if new calls may start on it."""
        connection = self._connection
        return connection if connection is not None and connection.usable else None

    async def get_connection(self) -> Connection:
        """The pinned connection, dialing one if there is none usable."""
        connection = self._usable()
        if connection is not None:
            return connection
        if self._closed:
            raise anyio.ClosedResourceError
        async with self._dial_lock:
            connection = self._connection
            if connection is not None and connection.usable:
                return connection
            if connection is not None and connection.error is not None:
                # It failed under a stream (PING timeout, EOF): back its endpoint off
                # too, or a frozen member would be redialled first.
                self.mark_failed(connection)
            self._connection = None
            causes: list[BaseException] = []
            order = sorted(self._endpoints, key=lambda s: s.next_attempt)
            for state in order:
                wait = state.next_attempt - anyio.current_time()
                if wait > 0:
                    await anyio.sleep(wait)
                try:
                    connection = await self._dial(state)
                except (OSError, TimeoutError, TransportError, ssl.SSLError) as exc:
                    logger.debug("dial failed endpoint=%s error=%r", state.endpoint, exc)
                    state.last_error = exc
                    causes.append(exc)
                    self._backoff(state)
                    continue
                state.failures = 0
                state.next_attempt = 0.0
                self._connection = connection
                self._connection_endpoint = state.endpoint
                self.connects += 1
                if self.connects > 1:
                    logger.info("connected endpoint=%s", state.endpoint)
                return connection
            names = ", ".join(str(s.endpoint) for s in order)
            detail = "; ".join(f"{s.endpoint}: {s.last_error!r}" for s in order)
            raise UnreachableError(f"could not connect to any of {names} ({detail})", causes)

    def rotate(self, connection: Connection | None, record: AttemptRecord | None = None) -> None:
        """
        Move away from ``connection``'s member (it answered "unavailable"): new calls
        go to another endpoint; the calls in flight on it finish undisturbed.
        """
        if connection is None or self._connection is not connection or len(self._endpoints) < 2:
            return
        self._fail_over("member unavailable", record)
        connection.retire()

    def _fail_over(self, reason: str, record: AttemptRecord | None) -> None:
        """Unpin the connection's member and back it off; count and report the failover."""
        self._connection = None
        endpoint = self._connection_endpoint
        for state in self._endpoints:
            if state.endpoint == endpoint:
                self._backoff(state)
        self.failovers += 1
        logger.info("failing over (%s): moving away from endpoint=%s", reason, endpoint)
        if record is not None:
            record.event("failover", from_endpoint=str(endpoint))

    def set_endpoints(self, endpoints: Sequence[Endpoint]) -> None:
        """
        Replace the endpoint list (duplicates dropped, order kept); the endpoints that stay keep
        their backoff state. If the pinned connection's endpoint is gone, new calls go to one of
        the new endpoints; the calls and streams in flight on it finish undisturbed.

        A dial already under way when this is called may still pin a removed endpoint; the next
        call of this method (or that connection's failure) moves away from it.

        :raises ValueError: if ``endpoints`` is empty
        """
        if not endpoints:
            raise ValueError("at least one endpoint is needed")
        old = {state.endpoint: state for state in self._endpoints}
        self._endpoints = [old.get(e) or _EndpointState(e) for e in dict.fromkeys(endpoints)]
        connection = self._connection
        if connection is not None and self._connection_endpoint not in self.endpoints:
            self._connection = None
            logger.debug("endpoint removed, unpinning endpoint=%s", self._connection_endpoint)
            connection.retire()

    def mark_failed(self, connection: Connection, record: AttemptRecord | None = None) -> None:
        """Stop using ``connection`` (e.g. after a keepalive or protocol failure)."""
        if self._connection is connection:
            self._fail_over("connection failed", record)

    async def unary(
        self,
        path: str,
        request: bytes,
        *,
        metadata: bytes = b"",
        repeatable: bool = False,
        record: AttemptRecord | None = None,
    ) -> bytes:
        """
        One unary call, retried per :class:`RetryPolicy` within the caller's deadline.

        The caller's cancel scopes bound the call; their deadline is sent as
        ``grpc-timeout``. ``record`` (telemetry) is told of each attempt, retry and failover.
        """
        attempt = 0
        while True:
            attempt += 1
            # (get_connection() only when needed: awaiting it costs a coroutine.)
            connection = self._usable() or await self.get_connection()
            if record is not None:
                record.attempts += 1
                record.endpoint = str(self._connection_endpoint)
            # One walk of the cancel scopes gives both the deadline and whether one
            # of them was cancelled (-inf); nothing yields from here to the write.
            deadline = self._deadline()
            if deadline == -math.inf:
                await anyio.lowlevel.checkpoint_if_cancelled()
            try:
                return await connection.unary(
                    path,
                    request,
                    grpc_timeout=remaining(deadline),
                    metadata=metadata,
                    cancel_checked=True,
                )
            except (TransportError, GrpcError) as exc:
                if isinstance(exc, TransportError) and connection.error is not None:
                    self.mark_failed(connection, record)
                delay = self.retry.delay(exc, attempt, repeatable=repeatable)
                if delay is None:
                    raise
                if isinstance(exc, GrpcError) and exc.status == Status.UNAVAILABLE:
                    self.rotate(connection, record)
                if record is not None:
                    record.event("retry", attempt=attempt, error=repr(exc), delay=delay)
                logger.debug("retry path=%s attempt=%d error=%r", path, attempt, exc)
            await anyio.sleep(delay)

    @asynccontextmanager
    async def open_call(self, path: str, *, metadata: bytes = b"") -> AsyncIterator[Call]:
        """A streaming call on the pinned connection; reset on exit unless it ended."""
        observe = self.stream_observer
        record = observe(path) if observe is not None else None
        error: BaseException | None = None
        try:
            connection = await self.get_connection()
            if record is not None:
                record.attempts += 1
                record.endpoint = str(self._connection_endpoint)
            call = await connection.open_call(
                path, grpc_timeout=remaining(anyio.current_effective_deadline()), metadata=metadata
            )
            try:
                yield call
            finally:
                await call.aclose()
        except BaseException as exc:
            error = exc
            raise
        finally:
            if record is not None:
                record.finished(error)

    async def aclose(self) -> None:
        self._closed = True
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.aclose()

"""
etcd's plain HTTP endpoints on the client port: ``/version``, ``/health`` and ``/metrics``.

These are not gRPC, so they do not go through the client's channel: each call opens one
short-lived connection to a member, sends one ``GET`` and closes it. Which HTTP depends on
how etcd serves its client port (``embed/serve.go``):

* **plaintext**: etcd splits the port with ``cmux``, and every HTTP/2 connection goes to the
  gRPC server, which answers nothing but gRPC; HTTP/1.1 goes to the HTTP handlers. So the
  ``GET`` is HTTP/1.1 (below: one request, ``Connection: close``, the answer read to EOF).
* **TLS**: one Go HTTP server serves gRPC and HTTP alike, told apart by the ``content-type``,
  and speaks HTTP/2 when ALPN picks ``h2``. The client's own SSL context is used (so a client
  certificate is presented), and it offers only ``h2``, which gRPC requires; an SSL context
  cannot offer another protocol list for one connection. So the ``GET`` is one HTTP/2 stream
  on the transport's own HTTP/2 core (:meth:`._grpc._connection.Connection.get`). Should a
  server not negotiate ALPN at all, HTTP/1.1 is spoken over TLS.

Only what these three endpoints need is implemented: one request, one response, no
redirects, no compression, no connection reuse.
"""

from __future__ import annotations

import dataclasses
import json
import ssl
from typing import TYPE_CHECKING, Any

import anyio
from anyio.streams.tls import TLSAttribute

from ._grpc import (
    ConnectionLostError,
    Endpoint,
    GrpcError,
    StreamRefusedError,
    TransportError,
)
from ._grpc._call import HttpResponse
from ._grpc._connection import Connection
from ._service import Service
from .errors import ConnectionFailedError, EtcdError, ProtocolViolationError
from .types import HealthResult

if TYPE_CHECKING:
    from anyio.abc import AnyByteStream, ByteStream

    from ._grpc import Channel

__all__ = ["VersionResult"]

#: the largest response accepted (``/metrics`` of a busy member is a few hundred KiB)
MAX_RESPONSE = 64 << 20
_USER_AGENT = "etcdanyio"
#: what a failed read raises: asking the next member is harmless then
_IO_ERRORS = (OSError, ssl.SSLError, anyio.BrokenResourceError)


@dataclasses.dataclass(frozen=True, slots=True)
class VersionResult:
    """What ``GET /version`` says: the member's etcd version and the cluster's."""

    #: the version of the member's etcd binary, e.g. ``"3.5.1"``
    server: str
    #: the version the cluster runs at (``major.minor.0``, the lowest of its members);
    #: ``"not_decided"`` while a new cluster has not agreed on one yet
    cluster: str


class HttpMixin(Service):
    """``version()``, ``http_health()`` and ``metrics()``."""

    async def version(self, endpoint: str | None = None) -> VersionResult:
        """
        The etcd version of a member and of the cluster (``GET /version``; etcd3-py's
        ``version()``, ``etcdctl version``).

        Not retried on another member once a connection answered; connection failures try
        the next endpoint (see :meth:`metrics` for how the member is chosen).

        :param endpoint: a client URL of the member to ask; ``None``: the member this client
            is connected to (or else its endpoints in order)
        :return: ``.server`` and ``.cluster``
        :raises ConnectionFailedError: if no endpoint could be reached
        :raises EtcdError: if the member answered with an HTTP error status

        .. versionadded:: 0.1
        """
        response = await http_get(self._core.channel, self._core.timeout, "/version", endpoint)
        data = _json(response)
        return VersionResult(str(data.get("etcdserver", "")), str(data.get("etcdcluster", "")))

    async def http_health(self, endpoint: str | None = None) -> HealthResult:
        """
        A member's own health check (``GET /health``; etcd3-py's ``health()``): etcd answers
        healthy if it has a leader, no alarm is raised, and a linearizable read goes through
        in time. Compare :meth:`health`, which checks the same over gRPC, as ``etcdctl
        endpoint health`` does, and also works where the HTTP endpoints are not reachable.

        Never raises for an unhealthy member (etcd answers ``503`` with a reason then), only
        when no member answers at all.

        :param endpoint: a client URL of the member to ask; ``None``: the member this client
            is connected to (or else its endpoints in order)
        :return: ``.healthy``, ``.reason`` (etcd's, empty when healthy) and ``.took`` (seconds)
        :raises ConnectionFailedError: if no endpoint could be reached

        .. versionadded:: 0.1
        """
        started = anyio.current_time()
        response = await http_get(
            self._core.channel, self._core.timeout, "/health", endpoint, ok=(200, 503)
        )
        return health_result(response, anyio.current_time() - started)

    async def metrics(self, endpoint: str | None = None) -> str:
        """
        A member's Prometheus metrics in the text exposition format (``GET /metrics``;
        etcd3-py's ``metrics_raw()``). Parse them with ``prometheus_client.parser.
        text_string_to_metric_families`` if you need them as objects.

        The member asked is ``endpoint``, else the one this client is connected to, else its
        endpoints in order until one connects. A bare ``host:port`` uses the client's scheme;
        an explicit ``http://`` URL is asked without TLS even on a TLS client (a plaintext
        ``--listen-metrics-urls`` port); ``https://`` uses the client's SSL context.

        :param endpoint: a URL of the member to ask; ``None``: as above
        :return: the metrics text
        :raises ConnectionFailedError: if no endpoint could be reached
        :raises EtcdError: if the member answered with an HTTP error status

        .. versionadded:: 0.1
        """
        response = await http_get(self._core.channel, self._core.timeout, "/metrics", endpoint)
        return response.body.decode("utf-8", "replace")


# ------------------------------------------------------------------------- the request


async def http_get(
    channel: Channel,
    timeout: float | None,  # noqa: ASYNC109 -- the client's default timeout, as for every call
    path: str,
    endpoint: str | None,
    *,
    ok: tuple[int, ...] = (200,),
) -> HttpResponse:
    """
    ``GET path`` of ``endpoint`` or else of the channel's members (see :func:`targets`),
    within ``timeout`` seconds.

    :raises EtcdError: if the status is not in ``ok``
    :raises ConnectionFailedError: if no member could be reached
    """
    order = targets(channel, endpoint)
    if timeout is None:
        response = await get_any(channel, path, order)
    else:
        with anyio.fail_after(timeout):
            response = await get_any(channel, path, order)
    if response.status not in ok:
        text = response.body[:200].decode("utf-8", "replace").strip()
        raise EtcdError(f"GET {path} answered HTTP {response.status}: {text}", applied=False)
    return response


def health_result(response: HttpResponse, took: float) -> HealthResult:
    """What etcd's ``/health`` answer says."""
    data = _json(response)
    healthy = str(data.get("health", "")).lower() == "true"
    reason = str(data.get("reason") or ("" if healthy else f"HTTP {response.status}"))
    return HealthResult(healthy, reason, took)


def targets(channel: Channel, endpoint: str | None) -> list[tuple[Endpoint, bool]]:
    """``(endpoint, tls)`` pairs to try, in order."""
    client_tls = channel._ssl_context is not None
    if endpoint is not None:
        if not isinstance(endpoint, str):
            raise TypeError(f"endpoint must be a str, got {endpoint!r} ({type(endpoint).__name__})")
        parsed = Endpoint.parse(endpoint)
        explicit = "://" in endpoint
        return [(parsed, parsed.tls or (client_tls and not explicit))]
    current = channel.current_endpoint
    ordered = channel.endpoints
    if current is not None:
        ordered = [current, *(e for e in ordered if e != current)]
    return [(e, e.tls or client_tls) for e in ordered]


async def get_any(channel: Channel, path: str, order: list[tuple[Endpoint, bool]]) -> HttpResponse:
    """The answer of the first of ``order`` that can be reached and read."""
    causes: list[BaseException] = []
    for endpoint, tls in order:
        try:
            stream, h2 = await connect(channel, endpoint, tls)
        except (TimeoutError, *_IO_ERRORS) as exc:
            causes.append(exc)
            continue
        async with stream:
            try:
                if h2:
                    return await get_h2(stream, endpoint.authority, path)
                return await get_h11(stream, endpoint.authority, path)
            except _IO_ERRORS as exc:
                causes.append(exc)  # a read: asking the next member is harmless
    names = ", ".join(str(e) for e, _ in order)
    detail = "; ".join(repr(c) for c in causes)
    raise ConnectionFailedError(
        f"GET {path}: could not reach any of {names} ({detail})", causes=causes
    )


async def connect(channel: Channel, endpoint: Endpoint, tls: bool) -> tuple[ByteStream, bool]:
    """A connection to ``endpoint`` and whether it speaks HTTP/2 (ALPN ``h2``)."""
    options = channel.options
    with anyio.fail_after(options.connect_timeout):
        if not tls:
            return await anyio.connect_tcp(endpoint.host, endpoint.port), False
        # The client's context (or the default one an https:// client uses), ALPN h2 set.
        context = channel._context_for(dataclasses.replace(endpoint, tls=True))
        try:
            stream = await anyio.connect_tcp(
                endpoint.host,
                endpoint.port,
                ssl_context=context,
                tls_hostname=options.tls_server_hostname or endpoint.host,
                tls_standard_compatible=False,
            )
        except anyio.EndOfStream as exc:
            raise OSError(f"TLS handshake with {endpoint} failed: connection closed") from exc
    return stream, stream.extra(TLSAttribute.alpn_protocol, None) == "h2"


def _json(response: HttpResponse) -> dict[str, Any]:
    try:
        data = json.loads(response.body)
    except ValueError as exc:
        raise ProtocolViolationError(f"expected JSON, got {response.body[:100]!r}") from exc
    if not isinstance(data, dict):
        raise ProtocolViolationError(f"expected a JSON object, got {response.body[:100]!r}")
    return data


# -------------------------------------------------------------------------------- HTTP/2


async def get_h2(stream: AnyByteStream, authority: str, path: str) -> HttpResponse:
    """
    ``GET path`` as one stream on a connection of the transport's HTTP/2 core.

    :raises OSError: (or another of ``_IO_ERRORS``) if the connection broke or the server
        refused the stream (GOAWAY): the next member may be asked
    :raises ProtocolViolationError: if the server broke HTTP/2, reset the stream, closed the
        connection before the response ended, or sent more than :data:`MAX_RESPONSE`
    """
    connection = Connection(
        stream, authority=authority, tls=True, keepalive_interval=0, user_agent=_USER_AGENT
    )
    failure: TransportError | GrpcError
    async with anyio.create_task_group() as tg:
        try:
            await tg.start(connection.run)
            return await connection.get(path, limit=MAX_RESPONSE)
        except (TransportError, GrpcError) as exc:
            failure = exc
        finally:
            await connection.aclose()
    raise _h2_failure(failure)


def _h2_failure(exc: TransportError | GrpcError) -> BaseException:
    """What a failed HTTP/2 ``GET`` raises (see :func:`get_h2`)."""
    if isinstance(exc, GrpcError):  # the connection's account of a RST_STREAM
        return ProtocolViolationError(f"server reset the HTTP/2 stream: {exc.message}")
    if isinstance(exc, StreamRefusedError):
        return OSError(f"HTTP/2 {exc.message}")
    if isinstance(exc, ConnectionLostError):
        cause = exc.__cause__
        if isinstance(cause, _IO_ERRORS):
            return cause
        return ProtocolViolationError("HTTP/2 connection closed before the response ended")
    return ProtocolViolationError(exc.message)


# ------------------------------------------------------------------------------ HTTP/1.1


async def get_h11(stream: ByteStream, authority: str, path: str) -> HttpResponse:
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: {_USER_AGENT}\r\n"
        "Accept-Encoding: identity\r\nConnection: close\r\n\r\n"
    )
    await stream.send(request.encode("ascii"))
    data = bytearray()
    # "Connection: close": the response ends where the connection does.
    while True:
        try:
            data += await stream.receive(65536)
        except anyio.EndOfStream:
            break
        if len(data) > MAX_RESPONSE:
            raise ProtocolViolationError(f"HTTP response larger than {MAX_RESPONSE} bytes")
    return parse_h11(bytes(data))


def parse_h11(data: bytes) -> HttpResponse:
    """Parse a whole HTTP/1.1 response (the connection closed after it)."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        raise ProtocolViolationError("HTTP response ended inside its header")
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise ProtocolViolationError(f"bad HTTP status line {lines[0][:100]!r}")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon:
            raise ProtocolViolationError(f"bad HTTP header line {line[:100]!r}")
        headers.append((name.strip().lower().decode("latin-1"), value.strip().decode("latin-1")))
    fields = dict(headers)
    if "chunked" in fields.get("transfer-encoding", "").lower():
        body = _dechunk(body)
    elif (length := fields.get("content-length")) is not None:
        if not length.isdigit() or len(body) < int(length):
            raise ProtocolViolationError("HTTP response body shorter than its content-length")
        body = body[: int(length)]
    return HttpResponse(int(parts[1]), headers, body)


def _dechunk(body: bytes) -> bytes:
    """The payload of a ``Transfer-Encoding: chunked`` body (RFC 9112, section 7.1)."""
    out = bytearray()
    pos = 0
    while True:
        end = body.find(b"\r\n", pos)
        if end < 0:
            raise ProtocolViolationError("chunked HTTP body truncated")
        size_text = body[pos:end].split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ProtocolViolationError(f"bad HTTP chunk size {size_text[:20]!r}") from None
        pos = end + 2
        if size == 0:
            return bytes(out)
        if pos + size + 2 > len(body):
            raise ProtocolViolationError("chunked HTTP body truncated")
        out += body[pos : pos + size]
        pos += size + 2

"""
etcd's plain HTTP endpoints on the client port: ``/version``, ``/health`` and ``/metrics``.

These are not gRPC, so they do not go through the client's channel: each call opens one
short-lived connection to a member, sends one ``GET`` and closes it. Plaintext endpoints get
HTTP/1.1. Over TLS the client's own SSL context is used (so a client certificate is
presented), and that context offers only ALPN ``h2``, which gRPC requires; an SSL context
cannot offer another protocol list for one connection, so etcd answers in HTTP/2 and the
``GET`` is sent as one HTTP/2 stream (etcd's TLS listener serves gRPC and HTTP on the same
HTTP/2 server, told apart by the ``content-type``).

Only what these three endpoints need is implemented: one request, one response, no
redirects, no compression, no connection reuse.
"""

from __future__ import annotations

import dataclasses
import json
import ssl
import struct
from typing import TYPE_CHECKING, Any

import anyio
import hpack
import hpack.exceptions
from anyio.streams.tls import TLSAttribute

from ._grpc import Endpoint
from .errors import ConnectionFailedError, EtcdError, ProtocolViolationError
from .types import HealthResult

if TYPE_CHECKING:
    from anyio.abc import ByteStream

    from ._grpc import Channel

__all__ = ["VersionResult"]

#: the largest response accepted (``/metrics`` of a busy member is a few hundred KiB)
MAX_RESPONSE = 64 << 20
_USER_AGENT = "etcdanyio"


@dataclasses.dataclass(frozen=True, slots=True)
class VersionResult:
    """What ``GET /version`` says: the member's etcd version and the cluster's."""

    #: the version of the member's etcd binary, e.g. ``"3.5.1"``
    server: str
    #: the version the cluster runs at (``major.minor.0``, the lowest of its members);
    #: ``"not_decided"`` while a new cluster has not agreed on one yet
    cluster: str


@dataclasses.dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    #: header names in lower case, in the order received
    headers: list[tuple[str, str]]
    body: bytes


class HttpMixin:
    """``version()``, ``http_health()`` and ``metrics()``; rely on ``self._channel``."""

    _channel: Channel
    _timeout: float | None

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
        data = _json(await self._http_get("/version", endpoint))
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
        response = await self._http_get("/health", endpoint, ok=(200, 503))
        data = _json(response)
        healthy = str(data.get("health", "")).lower() == "true"
        reason = str(data.get("reason") or ("" if healthy else f"HTTP {response.status}"))
        return HealthResult(healthy, reason, anyio.current_time() - started)

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
        response = await self._http_get("/metrics", endpoint)
        return response.body.decode("utf-8", "replace")

    async def _http_get(
        self, path: str, endpoint: str | None, *, ok: tuple[int, ...] = (200,)
    ) -> HttpResponse:
        targets = self._http_targets(endpoint)
        if self._timeout is None:
            response = await self._http_get_any(path, targets)
        else:
            with anyio.fail_after(self._timeout):
                response = await self._http_get_any(path, targets)
        if response.status not in ok:
            text = response.body[:200].decode("utf-8", "replace").strip()
            raise EtcdError(f"GET {path} answered HTTP {response.status}: {text}", applied=False)
        return response

    def _http_targets(self, endpoint: str | None) -> list[tuple[Endpoint, bool]]:
        """``(endpoint, tls)`` pairs to try, in order."""
        channel = self._channel
        client_tls = channel._ssl_context is not None
        if endpoint is not None:
            if not isinstance(endpoint, str):
                raise TypeError(
                    f"endpoint must be a str, got {endpoint!r} ({type(endpoint).__name__})"
                )
            parsed = Endpoint.parse(endpoint)
            explicit = "://" in endpoint
            return [(parsed, parsed.tls or (client_tls and not explicit))]
        current = channel.current_endpoint
        ordered = channel.endpoints
        if current is not None:
            ordered = [current, *(e for e in ordered if e != current)]
        return [(e, e.tls or client_tls) for e in ordered]

    async def _http_get_any(self, path: str, targets: list[tuple[Endpoint, bool]]) -> HttpResponse:
        causes: list[BaseException] = []
        for endpoint, tls in targets:
            try:
                stream, h2 = await self._http_connect(endpoint, tls)
            except (OSError, TimeoutError, ssl.SSLError, anyio.BrokenResourceError) as exc:
                causes.append(exc)
                continue
            async with stream:
                try:
                    if h2:
                        return await _get_h2(stream, endpoint.authority, path)
                    return await _get_h11(stream, endpoint.authority, path)
                except (OSError, ssl.SSLError, anyio.BrokenResourceError) as exc:
                    causes.append(exc)  # a read: asking the next member is harmless
        names = ", ".join(str(e) for e, _ in targets)
        detail = "; ".join(repr(c) for c in causes)
        raise ConnectionFailedError(
            f"GET {path}: could not reach any of {names} ({detail})", causes=causes
        )

    async def _http_connect(self, endpoint: Endpoint, tls: bool) -> tuple[ByteStream, bool]:
        """A connection to ``endpoint`` and whether it speaks HTTP/2 (ALPN ``h2``)."""
        channel = self._channel
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


# ------------------------------------------------------------------------------ HTTP/1.1


async def _get_h11(stream: ByteStream, authority: str, path: str) -> HttpResponse:
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


# -------------------------------------------------------------------------------- HTTP/2
# One stream (ID 1) on a fresh connection; RFC 9113. Windows are opened to the maximum up
# front, so the response never waits for a WINDOW_UPDATE of ours.

_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_DATA, _HEADERS, _RST_STREAM, _SETTINGS = 0x0, 0x1, 0x3, 0x4
_PING, _GOAWAY, _CONTINUATION = 0x6, 0x7, 0x9
_END_STREAM = _ACK = 0x1
_END_HEADERS, _PADDED, _PRIORITY = 0x4, 0x8, 0x20
_MAX_WINDOW = 2**31 - 1
_DEFAULT_WINDOW = 65535
_U32 = struct.Struct(">I")
_SETTING = struct.Struct(">HI")


def _frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return _U32.pack(len(payload))[1:] + bytes((kind, flags)) + _U32.pack(stream_id) + payload


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


def _unpad(flags: int, payload: bytes, kind: int) -> bytes:
    if flags & _PADDED:
        if not payload or payload[0] >= len(payload):
            raise ProtocolViolationError("bad HTTP/2 padding")
        payload = payload[1 : len(payload) - payload[0]]
    if kind == _HEADERS and flags & _PRIORITY:
        payload = payload[5:]
    return payload


async def _get_h2(stream: ByteStream, authority: str, path: str) -> HttpResponse:
    request_headers = [
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", authority),
        (":path", path),
        ("user-agent", _USER_AGENT),
    ]
    settings = _SETTING.pack(0x2, 0) + _SETTING.pack(0x4, _MAX_WINDOW)  # no push; max window
    await stream.send(
        _PREFACE
        + _frame(_SETTINGS, 0, 0, settings)
        + _frame(0x8, 0, 0, _U32.pack(_MAX_WINDOW - _DEFAULT_WINDOW))  # WINDOW_UPDATE
        + _frame(_HEADERS, _END_STREAM | _END_HEADERS, 1, hpack.Encoder().encode(request_headers))
    )
    decoder = hpack.Decoder()
    buffer = bytearray()
    block = bytearray()
    status = 0
    headers: list[tuple[str, str]] = []
    body = bytearray()
    ended = False
    while True:
        while len(buffer) < 9 or len(buffer) < 9 + int.from_bytes(buffer[:3], "big"):
            try:
                buffer += await stream.receive(65536)
            except anyio.EndOfStream:
                raise ProtocolViolationError(
                    "HTTP/2 connection closed before the response ended"
                ) from None
        length = int.from_bytes(buffer[:3], "big")
        kind, flags = buffer[3], buffer[4]
        stream_id = _U32.unpack_from(buffer, 5)[0] & 0x7FFFFFFF
        payload = bytes(buffer[9 : 9 + length])
        del buffer[: 9 + length]
        if kind == _SETTINGS and not flags & _ACK:
            await stream.send(_frame(_SETTINGS, _ACK, 0))
        elif kind == _PING and not flags & _ACK:
            await stream.send(_frame(_PING, _ACK, 0, payload))
        elif kind == _GOAWAY:
            code = _U32.unpack_from(payload, 4)[0] if len(payload) >= 8 else 0
            last = _U32.unpack_from(payload, 0)[0] & 0x7FFFFFFF if len(payload) >= 4 else 0
            if code or last < 1:  # a graceful GOAWAY still lets stream 1 finish
                raise OSError(f"HTTP/2 GOAWAY (error code {code}) before the response ended")
        elif stream_id != 1:
            continue  # WINDOW_UPDATE and the like on the connection
        elif kind == _RST_STREAM:
            code = _U32.unpack_from(payload)[0] if len(payload) >= 4 else 0
            raise ProtocolViolationError(f"server reset the HTTP/2 stream (error code {code})")
        elif kind in (_HEADERS, _CONTINUATION):
            block += _unpad(flags, payload, kind)
            if kind == _HEADERS and flags & _END_STREAM:
                ended = True
            if flags & _END_HEADERS:
                try:
                    fields = decoder.decode(bytes(block))
                except hpack.exceptions.HPACKError as exc:
                    raise ProtocolViolationError(f"bad HTTP/2 header block: {exc}") from exc
                block.clear()
                for raw_name, raw_value in fields:
                    name, value = _text(raw_name), _text(raw_value)
                    if name == ":status" and value.isdigit():
                        status = int(value)
                    elif not name.startswith(":"):
                        headers.append((name, value))
                if 100 <= status < 200:
                    status, headers = 0, []  # an informational response: the real one follows
        elif kind == _DATA:
            body += _unpad(flags, payload, kind)
            if len(body) > MAX_RESPONSE:
                raise ProtocolViolationError(f"HTTP response larger than {MAX_RESPONSE} bytes")
            ended = bool(flags & _END_STREAM)
        if ended and not block:
            if not status:
                raise ProtocolViolationError("HTTP/2 response without a :status")
            return HttpResponse(status, headers, bytes(body))

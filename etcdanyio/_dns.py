"""
A small DNS resolver for SRV records, on asyncio and trio alike and without a dependency.

An RFC 1035 query over UDP, asked again over TCP when the answer is truncated (RFC 1035
§4.2.2, RFC 7766), to the nameservers of ``/etc/resolv.conf`` in order until one answers.
Only what an SRV lookup needs is here: the message format (names with compression, the
answer section, CNAME and SRV RDATA of RFC 2782), the two transports and resolv.conf.
What to look up and in which order to use the records is :mod:`._discovery`'s business.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import struct
from typing import TYPE_CHECKING

import anyio
from anyio.streams.buffered import BufferedByteReceiveStream

if TYPE_CHECKING:
    from collections.abc import Sequence

#: the discovery's logger: a lookup is one step of it
logger = logging.getLogger("etcdanyio.discovery")

TYPE_CNAME = 5
TYPE_SRV = 33
CLASS_IN = 1
RCODE_NOERROR = 0
RCODE_NXDOMAIN = 3
_RCODES = {1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
_HEADER = struct.Struct("!HHHHHH")
_RR_FIXED = struct.Struct("!HHIH")  # type, class, ttl, rdlength
_SRV_FIXED = struct.Struct("!HHH")  # priority, weight, port
_FLAG_QR = 0x8000
_FLAG_TC = 0x0200
_FLAG_RD = 0x0100
#: glibc reads at most three nameservers (MAXNS) and falls back to the local host without any
_MAXNS = 3
_DEFAULT_NAMESERVER = ("127.0.0.1", 53)
DNS_PORT = 53


class DnsFormatError(ValueError):
    """Raised when a DNS message (or a name to query) breaks RFC 1035."""


@dataclasses.dataclass(frozen=True, slots=True)
class SrvRecord:
    """One SRV record (RFC 2782); ``target`` has no trailing dot (``""`` is the root)."""

    priority: int
    weight: int
    port: int
    target: str


@dataclasses.dataclass(frozen=True, slots=True)
class Record:
    """One resource record of the answer section, its RDATA decoded for CNAME and SRV."""

    name: str
    type: int
    rclass: int
    ttl: int
    data: SrvRecord | str | bytes


@dataclasses.dataclass(frozen=True, slots=True)
class Response:
    """The parts of a DNS response the lookup needs."""

    ident: int
    rcode: int
    truncated: bool
    #: the question echoed back, ``(name, type, class)``; ``None`` if there was none
    question: tuple[str, int, int] | None
    #: the answer section; empty for a truncated response (it is not parsed)
    answers: list[Record]


# -- messages ---------------------------------------------------------------------------------


def encode_name(name: str) -> bytes:
    """
    ``name`` as a sequence of labels (RFC 1035 §3.1), no compression.

    :raises DnsFormatError: for an empty label, a label over 63 bytes or a name over 255
    """
    text = name.rstrip(".") if name != "." else ""
    out = bytearray()
    for label in text.split(".") if text else []:
        try:
            raw = label.encode("ascii") if label.isascii() else label.encode("idna")
        except UnicodeError as exc:
            raise DnsFormatError(f"bad DNS label {label!r} in {name!r}") from exc
        if not 0 < len(raw) < 64:
            raise DnsFormatError(f"bad DNS label {label!r} in {name!r}")
        out += bytes([len(raw)]) + raw
    out.append(0)
    if len(out) > 255:
        raise DnsFormatError(f"DNS name longer than 255 bytes: {name!r}")
    return bytes(out)


def build_query(name: str, qtype: int = TYPE_SRV, *, ident: int) -> bytes:
    """A standard query (recursion desired) for ``name`` of type ``qtype``, class IN."""
    header = _HEADER.pack(ident, _FLAG_RD, 1, 0, 0, 0)
    return header + encode_name(name) + struct.pack("!HH", qtype, CLASS_IN)


def read_name(message: bytes, offset: int) -> tuple[str, int]:
    """
    The (possibly compressed, RFC 1035 §4.1.4) name at ``offset``, and the offset after it.

    A pointer must point before itself, so a loop cannot be built.

    :raises DnsFormatError: if the name runs off the message, loops or is too long
    """
    labels: list[str] = []
    end: int | None = None
    size = 1
    while True:
        if offset >= len(message):
            raise DnsFormatError("DNS name runs past the end of the message")
        length = message[offset]
        if length & 0xC0 == 0xC0:
            if offset + 1 >= len(message):
                raise DnsFormatError("DNS compression pointer runs past the end of the message")
            pointer = ((length & 0x3F) << 8) | message[offset + 1]
            if pointer >= offset:
                raise DnsFormatError(f"DNS compression pointer at {offset} points forward")
            if end is None:
                end = offset + 2
            offset = pointer
            continue
        if length & 0xC0:
            raise DnsFormatError(f"unsupported DNS label type {length:#04x} at {offset}")
        offset += 1
        if length == 0:
            break
        label = message[offset : offset + length]
        if len(label) < length:
            raise DnsFormatError("DNS label runs past the end of the message")
        size += length + 1
        if size > 255:
            raise DnsFormatError("DNS name longer than 255 bytes")
        labels.append(label.decode("ascii", "backslashreplace"))
        offset += length
    return ".".join(labels), offset if end is None else end


def parse_response(message: bytes) -> Response:
    """
    Parse a response; a truncated one (TC) only as far as its header.

    :raises DnsFormatError: if it is not a well-formed response
    """
    if len(message) < _HEADER.size:
        raise DnsFormatError(f"DNS message of {len(message)} bytes is shorter than its header")
    ident, flags, qdcount, ancount, _, _ = _HEADER.unpack_from(message)
    if not flags & _FLAG_QR:
        raise DnsFormatError("DNS message is a query, not a response")
    rcode, truncated = flags & 0x000F, bool(flags & _FLAG_TC)
    if truncated:
        return Response(ident, rcode, True, None, [])
    offset = _HEADER.size
    question = None
    for _ in range(qdcount):
        qname, offset = read_name(message, offset)
        if offset + 4 > len(message):
            raise DnsFormatError("DNS question runs past the end of the message")
        qtype, qclass = struct.unpack_from("!HH", message, offset)
        offset += 4
        question = question or (qname, qtype, qclass)
    answers = []
    for _ in range(ancount):
        owner, offset = read_name(message, offset)
        if offset + _RR_FIXED.size > len(message):
            raise DnsFormatError("DNS record runs past the end of the message")
        rtype, rclass, ttl, rdlength = _RR_FIXED.unpack_from(message, offset)
        start = offset + _RR_FIXED.size
        offset = start + rdlength
        if offset > len(message):
            raise DnsFormatError("DNS record data runs past the end of the message")
        data: SrvRecord | str | bytes = message[start:offset]
        if rtype == TYPE_SRV:
            if rdlength < _SRV_FIXED.size + 1:
                raise DnsFormatError(f"SRV record data of {rdlength} bytes is too short")
            priority, weight, port = _SRV_FIXED.unpack_from(message, start)
            # RFC 2782 forbids compressing the target, but servers do it; accept pointers.
            target, after = read_name(message, start + _SRV_FIXED.size)
            if after != offset:
                raise DnsFormatError("SRV target does not fill the record data")
            data = SrvRecord(priority, weight, port, target)
        elif rtype == TYPE_CNAME:
            data, after = read_name(message, start)
            if after != offset:
                raise DnsFormatError("CNAME target does not fill the record data")
        answers.append(Record(owner, rtype, rclass, ttl, data))
    return Response(ident, rcode, False, question, answers)


def srv_records(response: Response, name: str) -> list[SrvRecord]:
    """
    The SRV records for ``name`` in ``response``, following CNAMEs in its answer section.

    Records whose target is the root (``.``: "decidedly not available", RFC 2782) are left out.
    """
    names = {name.rstrip(".").lower()}
    for _ in range(len(response.answers)):  # a CNAME chain is at most this long
        more = {
            r.data.lower()
            for r in response.answers
            if r.type == TYPE_CNAME and isinstance(r.data, str) and r.name.lower() in names
        }
        if more <= names:
            break
        names |= more
    return [
        r.data
        for r in response.answers
        if r.type == TYPE_SRV
        and r.rclass == CLASS_IN
        and isinstance(r.data, SrvRecord)
        and r.name.lower() in names
        and r.data.target
    ]


# -- transports -------------------------------------------------------------------------------


def read_resolv_conf(path: str = "/etc/resolv.conf") -> list[tuple[str, int]]:
    """The ``nameserver`` lines of ``path`` (at most three, as glibc), else the local host."""
    servers: list[tuple[str, int]] = []
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            lines = file.readlines()
    except OSError:
        lines = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver" and len(servers) < _MAXNS:
            servers.append((fields[1], DNS_PORT))
    return servers or [_DEFAULT_NAMESERVER]


def _check_reply(response: Response, ident: int, name: str) -> bool:
    if response.ident != ident:
        return False
    if response.truncated or response.question is None:
        return True  # a truncated answer is cut before its question; TCP checks again
    qname, qtype, qclass = response.question
    return (qname.lower(), qtype, qclass) == (name.rstrip(".").lower(), TYPE_SRV, CLASS_IN)


async def _query_udp(name: str, query: bytes, ident: int, server: tuple[str, int]) -> Response:
    async with await anyio.create_connected_udp_socket(server[0], server[1]) as udp:
        await udp.send(query)
        while True:
            packet = await udp.receive()
            try:
                response = parse_response(packet)
            except DnsFormatError:
                if packet[:2] == query[:2]:
                    raise  # our answer, and it is broken
                continue  # a stray datagram: keep waiting for ours
            if _check_reply(response, ident, name):
                return response


async def _query_tcp(name: str, query: bytes, ident: int, server: tuple[str, int]) -> Response:
    async with await anyio.connect_tcp(server[0], server[1]) as tcp:
        # Over TCP each message is prefixed with its two-byte length (RFC 1035 §4.2.2).
        await tcp.send(struct.pack("!H", len(query)) + query)
        buffered = BufferedByteReceiveStream(tcp)
        try:
            (length,) = struct.unpack("!H", await buffered.receive_exactly(2))
            response = parse_response(await buffered.receive_exactly(length))
        except anyio.IncompleteRead as exc:
            raise DnsFormatError("DNS server closed the TCP connection mid-answer") from exc
    if not _check_reply(response, ident, name):
        raise DnsFormatError("DNS answer over TCP does not match the question")
    return response


async def query_srv(name: str, server: tuple[str, int]) -> Response:
    """
    Ask ``server`` for the SRV records of ``name``: over UDP, then over TCP if truncated.

    Bounded only by the caller's cancel scope.

    :raises DnsFormatError: if the answer is malformed
    :raises OSError: if the server cannot be reached
    """
    ident = random.getrandbits(16)
    query = build_query(name, TYPE_SRV, ident=ident)
    response = await _query_udp(name, query, ident, server)
    if response.truncated:
        logger.debug("DNS answer truncated, asking again over TCP name=%s server=%s", name, server)
        response = await _query_tcp(name, query, ident, server)
    return response


async def lookup_srv(
    name: str,
    nameservers: Sequence[tuple[str, int]],
    *,
    attempt_timeout: float,
) -> list[SrvRecord]:
    """
    The SRV records of ``name`` (in the order of the answer); ``[]`` when there are none.

    The nameservers are asked in order, each for at most ``attempt_timeout`` seconds, until
    one answers ``NOERROR`` or ``NXDOMAIN``.

    :raises LookupError: if no nameserver answered (the message says why for each)
    """
    problems: list[str] = []
    for server in nameservers:
        where = f"{server[0]}:{server[1]}"
        try:
            with anyio.fail_after(attempt_timeout):
                response = await query_srv(name, server)
        except TimeoutError:
            problems.append(f"{where}: no answer within {attempt_timeout:g} s")
            continue
        except (OSError, anyio.BrokenResourceError, DnsFormatError) as exc:
            # trio reports a refused datagram (ICMP port unreachable) as BrokenResourceError
            problems.append(f"{where}: {str(exc) or repr(exc.__cause__ or exc)}")
            continue
        if response.rcode == RCODE_NXDOMAIN:
            return []
        if response.rcode != RCODE_NOERROR:
            rcode = _RCODES.get(response.rcode, str(response.rcode))
            problems.append(f"{where}: answered {rcode}")
            continue
        return srv_records(response, name)
    raise LookupError(f"DNS lookup of {name} failed: {'; '.join(problems)}")

"""
DNS SRV discovery and endpoint lists: hand-built DNS packets, a fake DNS server on loopback
(UDP, and TCP for truncated answers), the member-list filter of auto-sync and
``Channel.set_endpoints``.
"""

from __future__ import annotations

import contextlib
import random
import socket
import struct
from typing import TYPE_CHECKING

import anyio
import pytest
from anyio.abc import SocketAttribute
from anyio.streams.buffered import BufferedByteReceiveStream

import etcdanyio
from etcdanyio import ConnectionFailedError, Member
from etcdanyio._discovery import discover_endpoints, endpoints_from_members, order_srv, srv_names
from etcdanyio._dns import (
    CLASS_IN,
    TYPE_CNAME,
    TYPE_SRV,
    DnsFormatError,
    Record,
    SrvRecord,
    build_query,
    encode_name,
    lookup_srv,
    parse_response,
    read_name,
    read_resolv_conf,
    srv_records,
)
from etcdanyio._grpc import Channel, Endpoint
from tests.h2peer import H2Peer, PeerStream

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from pathlib import Path

    from anyio.abc import AnyByteStream, SocketStream, TaskGroup, UDPSocket

TIMEOUT = 5
SSL_NAME = "_etcd-client-ssl._tcp.example.com"
PLAIN_NAME = "_etcd-client._tcp.example.com"

# -- building packets by hand (independent of the code under test) ----------------------------


def name(text: str) -> bytes:
    """An uncompressed wire name; ``""`` is the root."""
    labels = [label.encode() for label in text.rstrip(".").split(".") if label]
    return b"".join(bytes([len(label)]) + label for label in labels) + b"\0"


def pointer(offset: int) -> bytes:
    return struct.pack("!H", 0xC000 | offset)


def rr(owner: bytes, rtype: int, rdata: bytes, *, rclass: int = CLASS_IN, ttl: int = 60) -> bytes:
    return owner + struct.pack("!HHIH", rtype, rclass, ttl, len(rdata)) + rdata


def srv(owner: bytes, priority: int, weight: int, port: int, target: bytes) -> bytes:
    return rr(owner, TYPE_SRV, struct.pack("!HHH", priority, weight, port) + target)


def header(ident: int, *, rcode: int = 0, tc: bool = False, qd: int = 1, an: int = 0) -> bytes:
    flags = 0x8180 | rcode | (0x0200 if tc else 0)  # QR, RD, RA
    return struct.pack("!HHHHHH", ident, flags, qd, an, 0, 0)


def question(qname: str, qtype: int = TYPE_SRV) -> bytes:
    return name(qname) + struct.pack("!HH", qtype, CLASS_IN)


def packet(qname: str, answers: list[bytes], *, ident: int = 7, rcode: int = 0) -> bytes:
    return header(ident, rcode=rcode, an=len(answers)) + question(qname) + b"".join(answers)


#: the question name always starts right after the 12-byte header
QNAME = pointer(12)


def query_name(query: bytes) -> str:
    """The question name of a query (our queries never compress it)."""
    labels, offset = [], 12
    while length := query[offset]:
        labels.append(query[offset + 1 : offset + 1 + length].decode())
        offset += 1 + length
    return ".".join(labels)


def reply_to(
    query: bytes, answers: list[bytes], *, rcode: int = 0, tc: bool = False, ident: bytes = b""
) -> bytes:
    """A response echoing ``query``'s ID and question."""
    ident_value = struct.unpack("!H", ident or query[:2])[0]
    if tc:  # a truncated answer: only what fits, here just the header
        return header(ident_value, tc=True, an=len(answers))
    return header(ident_value, rcode=rcode, an=len(answers)) + query[12:] + b"".join(answers)


# -- messages -----------------------------------------------------------------------------------


def test_build_query_is_a_standard_srv_query() -> None:
    query = build_query(PLAIN_NAME, ident=0x1234)
    assert query == (
        struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
        + b"\x0c_etcd-client\x04_tcp\x07example\x03com\x00"
        + struct.pack("!HH", 33, 1)
    )
    assert build_query(PLAIN_NAME + ".", ident=0x1234) == query


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param("a..b", id="empty-label"),
        pytest.param("x" * 64 + ".com", id="label-over-63"),
        pytest.param(".".join(["abcdefghi"] * 26), id="name-over-255"),
    ],
)
def test_encode_name_rejects_bad_names(bad: str) -> None:
    with pytest.raises(DnsFormatError):
        encode_name(bad)


def test_parse_multiple_answers_with_compression() -> None:
    qname = "_etcd-client._tcp.example.com"
    body = header(0xBEEF, an=3) + question(qname)
    # The first target is written out; the others point into it ("example.com" at +3).
    first_target = len(body) + 2 + 10 + 6  # owner pointer, fixed RR fields, SRV fields
    answers = srv(QNAME, 10, 5, 2379, name("m0.example.com"))
    answers += srv(QNAME, 20, 0, 2380, b"\x02m1" + pointer(first_target + 3))
    answers += srv(QNAME, 10, 1, 2381, b"\x02m2" + pointer(first_target + 3))
    response = parse_response(body + answers)

    assert (response.ident, response.rcode, response.truncated) == (0xBEEF, 0, False)
    assert response.question == (qname, TYPE_SRV, CLASS_IN)
    assert [a.name for a in response.answers] == [qname] * 3
    assert srv_records(response, qname) == [
        SrvRecord(10, 5, 2379, "m0.example.com"),
        SrvRecord(20, 0, 2380, "m1.example.com"),
        SrvRecord(10, 1, 2381, "m2.example.com"),
    ]
    ordered = order_srv(srv_records(response, qname), random.Random(0))
    assert {r.target for r in ordered[:2]} == {"m0.example.com", "m2.example.com"}
    assert ordered[2].target == "m1.example.com"


def test_names_match_case_insensitively_and_other_records_are_ignored() -> None:
    qname = "_etcd-client._tcp.example.com"
    other = name("_etcd-client._tcp.example.org")
    answers = [
        srv(name(qname.upper()), 1, 1, 1, name("a")),
        srv(other, 1, 1, 2, name("b")),  # another owner
        rr(QNAME, 16, b"\x02hi"),  # TXT
        rr(QNAME, TYPE_SRV, struct.pack("!HHH", 1, 1, 3) + name("c"), rclass=3),  # class CH
    ]
    response = parse_response(packet(qname, answers))
    assert srv_records(response, qname) == [SrvRecord(1, 1, 1, "a")]
    assert response.answers[2] == Record(qname, 16, CLASS_IN, 60, b"\x02hi")
    assert response.answers[3].data == SrvRecord(1, 1, 3, "c")


def test_cname_chain_is_followed() -> None:
    qname = "_etcd-client._tcp.example.com"
    answers = [
        rr(QNAME, TYPE_CNAME, name("alias.example.net")),
        rr(name("alias.example.net"), TYPE_CNAME, name("real.example.net")),
        srv(name("real.example.net"), 0, 0, 2379, name("m0.example.net")),
    ]
    response = parse_response(packet(qname, answers))
    assert response.answers[0].data == "alias.example.net"
    assert srv_records(response, qname) == [SrvRecord(0, 0, 2379, "m0.example.net")]


def test_root_target_means_not_available() -> None:
    qname = "_etcd-client._tcp.example.com"
    response = parse_response(packet(qname, [srv(QNAME, 0, 0, 0, b"\0")]))
    assert response.answers[0].data == SrvRecord(0, 0, 0, "")
    assert srv_records(response, qname) == []


def test_nxdomain_is_an_empty_answer() -> None:
    response = parse_response(packet("nothing.example.com", [], rcode=3))
    assert (response.rcode, response.answers) == (3, [])


def test_truncated_response_parses_only_its_header() -> None:
    cut = header(9, tc=True, an=40) + question("x.example.com") + b"\x00\x01"  # cut mid-record
    response = parse_response(cut)
    assert (response.ident, response.truncated, response.answers) == (9, True, [])


@pytest.mark.parametrize(
    ("message", "offset"),
    [
        pytest.param(b"\x01a" + pointer(4) + b"\x00", 2, id="forward-pointer"),
        pytest.param(b"\x01a" + pointer(2), 2, id="pointer-to-itself"),
        pytest.param(b"\x05ab", 0, id="label-past-end"),
        pytest.param(b"\x01a", 0, id="no-terminator"),
        pytest.param(b"\x01a\xc0", 0, id="half-pointer"),
        pytest.param(b"\x41abc\x00", 0, id="reserved-label-type"),
        pytest.param(b"\x3f" + b"x" * 63 + pointer(0), 64, id="pointer-loop-backwards"),
    ],
)
def test_read_name_rejects_malformed_names(message: bytes, offset: int) -> None:
    with pytest.raises(DnsFormatError):
        read_name(message, offset)


def test_read_name_rejects_names_over_255_bytes() -> None:
    # Each step points back to the one before it: legal pointers, an illegal total length.
    message, previous = b"\x3f" + b"x" * 63 + b"\x00", 0
    for _ in range(4):
        start = len(message)
        message += b"\x3f" + b"y" * 63 + pointer(previous)
        previous = start
    assert len(read_name(message, 65 + 66)[0]) == 63 * 3 + 2  # three labels still fit
    with pytest.raises(DnsFormatError, match="255"):
        read_name(message, previous)  # five labels of 63 do not (four neither)


def test_read_name_follows_pointers_and_reports_the_end() -> None:
    message = name("example.com") + b"\x03www" + pointer(0) + b"tail"
    assert read_name(message, 0) == ("example.com", 13)
    assert read_name(message, 13) == ("www.example.com", 19)
    assert read_name(b"\x00", 0) == ("", 1)


@pytest.mark.parametrize(
    "message",
    [
        pytest.param(b"\x00\x07\x81", id="shorter-than-header"),
        pytest.param(struct.pack("!HHHHHH", 7, 0x0100, 0, 0, 0, 0), id="a-query"),
        pytest.param(header(7, qd=1) + name("a.b"), id="question-cut"),
        pytest.param(header(7, an=1) + question("a.b") + QNAME + b"\x00\x21", id="record-cut"),
        pytest.param(
            header(7, an=1) + question("a.b") + QNAME + struct.pack("!HHIH", 33, 1, 0, 50),
            id="rdata-past-end",
        ),
        pytest.param(
            header(7, an=1) + question("a.b") + rr(QNAME, TYPE_SRV, b"\x00\x01\x00"),
            id="srv-too-short",
        ),
        pytest.param(
            header(7, an=1)
            + question("a.b")
            + rr(QNAME, TYPE_SRV, struct.pack("!HHH", 0, 0, 1) + name("a") + b"junk"),
            id="srv-target-short-of-rdata",
        ),
        pytest.param(
            header(7, an=1)
            + question("a.b")
            + rr(QNAME, TYPE_SRV, struct.pack("!HHH", 0, 0, 1) + b"\x05ab"),
            id="srv-target-past-rdata",
        ),
        pytest.param(
            header(7, an=1) + question("a.b") + rr(QNAME, TYPE_CNAME, name("x") + b"!"),
            id="cname-short-of-rdata",
        ),
    ],
)
def test_parse_response_rejects_malformed_messages(message: bytes) -> None:
    with pytest.raises(DnsFormatError):
        parse_response(message)


# -- ordering, names, resolv.conf -------------------------------------------------------------


def test_order_srv_by_priority_then_weighted_random() -> None:
    records = [
        SrvRecord(20, 100, 1, "late"),
        SrvRecord(10, 90, 2, "heavy"),
        SrvRecord(10, 10, 3, "light"),
        SrvRecord(10, 0, 4, "zero"),
    ]
    rng = random.Random(2782)
    firsts = []
    for _ in range(2000):
        ordered = order_srv(records, rng)
        assert sorted(ordered, key=lambda r: r.port) == sorted(records, key=lambda r: r.port)
        assert ordered[-1].target == "late"  # a higher priority value is always later
        firsts.append(ordered[0].target)
    # P(first) is weight / 101 (the draw is uniform in [0, 100]); "zero" wins only on draw 0.
    assert 0.85 < firsts.count("heavy") / 2000 < 0.93
    assert 0.06 < firsts.count("light") / 2000 < 0.13
    assert 0 < firsts.count("zero") / 2000 < 0.03
    assert order_srv([]) == []
    only_zero = [SrvRecord(1, 0, 1, "a"), SrvRecord(1, 0, 2, "b")]
    assert sorted(order_srv(only_zero), key=lambda r: r.port) == only_zero


def test_srv_names_follow_go() -> None:
    assert srv_names("example.com") == [(SSL_NAME, True), (PLAIN_NAME, False)]
    assert srv_names("example.com.", "prod") == [
        ("_etcd-client-ssl-prod._tcp.example.com", True),
        ("_etcd-client-prod._tcp.example.com", False),
    ]


def test_read_resolv_conf(tmp_path: Path) -> None:
    path = tmp_path / "resolv.conf"
    path.write_text(
        "# comment\n; another\nsearch example.com\noptions ndots:2\n"
        "nameserver 10.0.0.1\nnameserver   fe80::1%eth0\n\nnameserver 10.0.0.3\n"
        "nameserver 10.0.0.4\nnameserver\n"
    )
    assert read_resolv_conf(str(path)) == [("10.0.0.1", 53), ("fe80::1%eth0", 53), ("10.0.0.3", 53)]
    assert read_resolv_conf(str(tmp_path / "missing")) == [("127.0.0.1", 53)]
    path.write_text("search example.com\n")
    assert read_resolv_conf(str(path)) == [("127.0.0.1", 53)]


def member(name: str, urls: list[str], *, learner: bool = False) -> Member:
    return Member(hash(name) & 0xFFFF, name, [], urls, learner)


def test_endpoints_from_members_takes_started_voting_members_of_one_scheme() -> None:
    members = [
        member("m0", ["http://10.0.0.1:2379", "https://10.0.0.1:2378"]),
        member("", []),  # added, never started
        member("learner", ["http://10.0.0.9:2379"], learner=True),
        member("m1", ["http://10.0.0.2:2379", "unix://socket:0", "http://10.0.0.1:2379"]),
        member("m2", ["http://[::1]:2379"]),
    ]
    assert [str(e) for e in endpoints_from_members(members, tls=False)] == [
        "http://10.0.0.1:2379",
        "http://10.0.0.2:2379",
        "http://[::1]:2379",
    ]
    assert [str(e) for e in endpoints_from_members(members, tls=True)] == ["https://10.0.0.1:2378"]
    assert endpoints_from_members([], tls=False) == []


# -- a fake DNS server --------------------------------------------------------------------------


class FakeDns:
    """
    A DNS server on 127.0.0.1, the same port for UDP and TCP. ``handler(query, transport)``
    (``"udp"`` or ``"tcp"``) returns the datagrams, or the TCP messages, to send back.
    """

    def __init__(self, handler: Callable[[bytes, str], list[bytes]]) -> None:
        self.handler = handler
        #: (transport, question name) of every query received
        self.asked: list[tuple[str, str]] = []

    def _answer(self, query: bytes, transport: str) -> list[bytes]:
        self.asked.append((transport, query_name(query)))
        return self.handler(query, transport)

    async def serve(
        self, *, task_status: anyio.abc.TaskStatus[tuple[str, int]] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        for _ in range(20):  # the UDP port may be taken for TCP: try another
            udp = await anyio.create_udp_socket(socket.AF_INET, local_host="127.0.0.1")
            port = udp.extra(SocketAttribute.local_port)
            try:
                tcp = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=port)
            except OSError:
                await udp.aclose()
                continue
            break
        else:
            raise RuntimeError("no port free for both UDP and TCP")
        async with udp, tcp, anyio.create_task_group() as tg:
            tg.start_soon(self._serve_udp, udp)
            tg.start_soon(tcp.serve, self._serve_tcp)
            task_status.started(("127.0.0.1", port))

    async def _serve_udp(self, udp: UDPSocket) -> None:
        async for query, (host, port) in udp:
            for datagram in self._answer(query, "udp"):
                await udp.sendto(datagram, host, port)

    async def _serve_tcp(self, stream: SocketStream) -> None:
        async with stream:
            buffered = BufferedByteReceiveStream(stream)
            with contextlib.suppress(anyio.IncompleteRead):
                (length,) = struct.unpack("!H", await buffered.receive_exactly(2))
                query = await buffered.receive_exactly(length)
                for message in self._answer(query, "tcp"):
                    await stream.send(struct.pack("!H", len(message)) + message)


@contextlib.asynccontextmanager
async def fake_dns(
    handler: Callable[[bytes, str], list[bytes]],
) -> AsyncIterator[tuple[FakeDns, tuple[str, int]]]:
    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tg:
            server = FakeDns(handler)
            address = await tg.start(server.serve)
            yield server, address
            tg.cancel_scope.cancel()


def zone(
    records: dict[str, list[tuple[int, int, int, str]]],
) -> Callable[[bytes, str], list[bytes]]:
    """A handler serving SRV ``records`` by name (NXDOMAIN for other names), over UDP and TCP."""

    def handler(query: bytes, transport: str) -> list[bytes]:
        found = records.get(query_name(query))
        if found is None:
            return [reply_to(query, [], rcode=3)]
        return [reply_to(query, [srv(QNAME, *r[:3], name(r[3])) for r in found])]

    return handler


async def test_discovery_prefers_https_records() -> None:
    handler = zone(
        {
            SSL_NAME: [(20, 0, 2379, "m2.example.com."), (10, 0, 2379, "m1.example.com.")],
            PLAIN_NAME: [(0, 0, 2379, "plain.example.com.")],
        }
    )
    async with fake_dns(handler) as (server, address):
        endpoints = await discover_endpoints("example.com", nameserver=address)
    assert endpoints == [
        Endpoint("m1.example.com", 2379, tls=True),
        Endpoint("m2.example.com", 2379, tls=True),
    ]
    assert sorted(server.asked) == [("udp", SSL_NAME), ("udp", PLAIN_NAME)]


async def test_discovery_falls_back_to_http_records() -> None:
    handler = zone({PLAIN_NAME: [(0, 0, 2379, "m0.example.com."), (0, 0, 2379, "m0.example.com")]})
    async with fake_dns(handler) as (_, address):
        endpoints = await discover_endpoints("example.com.", nameserver=address)
    assert [str(e) for e in endpoints] == ["http://m0.example.com:2379"]  # duplicates dropped


async def test_discovery_service_name_suffix() -> None:
    handler = zone({"_etcd-client-ssl-prod._tcp.example.com": [(0, 0, 2378, "a.example.com.")]})
    async with fake_dns(handler) as (server, address):
        endpoints = await discover_endpoints("example.com", "prod", nameserver=address)
    assert [str(e) for e in endpoints] == ["https://a.example.com:2378"]
    assert sorted(q for _, q in server.asked) == [
        "_etcd-client-prod._tcp.example.com",
        "_etcd-client-ssl-prod._tcp.example.com",
    ]


async def test_truncated_udp_answer_is_asked_again_over_tcp() -> None:
    many = [
        (0, 1, 2379 + i, f"member-{i:02d}.a-rather-long-domain-name.example.com.")
        for i in range(40)
    ]
    full = zone({PLAIN_NAME: many})

    def handler(query: bytes, transport: str) -> list[bytes]:
        (answer,) = full(query, transport)
        if transport == "udp" and len(answer) > 512:
            return [reply_to(query, [], tc=True)]
        return [answer]

    async with fake_dns(handler) as (server, address):
        endpoints = await discover_endpoints("example.com", nameserver=address)
    assert {(e.host, e.port) for e in endpoints} == {(r[3].rstrip("."), r[2]) for r in many}
    assert not any(e.tls for e in endpoints)
    assert ("tcp", PLAIN_NAME) in server.asked
    assert ("tcp", SSL_NAME) not in server.asked  # NXDOMAIN fits in a datagram


async def test_stray_datagrams_are_ignored() -> None:
    good = zone({PLAIN_NAME: [(0, 0, 2379, "m0.example.com.")]})

    def handler(query: bytes, transport: str) -> list[bytes]:
        (answer,) = good(query, transport)
        other_id = struct.pack("!H", struct.unpack("!H", query[:2])[0] ^ 0xFFFF)
        return [
            b"\x00",  # not DNS at all
            reply_to(query, [srv(QNAME, 0, 0, 1, name("evil."))], ident=other_id),
            packet("other.example.com", [], ident=struct.unpack("!H", query[:2])[0]),
            answer,
        ]

    async with fake_dns(handler) as (_, address):
        endpoints = await discover_endpoints("example.com", nameserver=address)
    assert [str(e) for e in endpoints] == ["http://m0.example.com:2379"]


async def test_no_records_names_the_names_tried() -> None:
    async with fake_dns(zone({})) as (_, address):
        with pytest.raises(ConnectionFailedError) as info:
            await discover_endpoints("example.com", nameserver=address)
    assert str(info.value) == f"no DNS SRV records found for {SSL_NAME} and {PLAIN_NAME}"
    assert info.value.applied is False


async def test_empty_answer_and_root_target_are_no_records() -> None:
    def handler(query: bytes, transport: str) -> list[bytes]:
        if query_name(query) == SSL_NAME:
            return [reply_to(query, [])]  # NOERROR, no data
        return [reply_to(query, [srv(QNAME, 0, 0, 0, b"\0")])]

    async with fake_dns(handler) as (_, address):
        with pytest.raises(ConnectionFailedError, match="no DNS SRV records found"):
            await discover_endpoints("example.com", nameserver=address)


async def test_malformed_answer_is_a_connection_failure() -> None:
    def handler(query: bytes, transport: str) -> list[bytes]:
        return [reply_to(query, [QNAME + b"\x00\x21\x00\x01"])]  # cut after type and class

    async with fake_dns(handler) as (_, address):
        with pytest.raises(ConnectionFailedError) as info:
            await discover_endpoints("example.com", nameserver=address)
    message = str(info.value)
    assert SSL_NAME in message
    assert PLAIN_NAME in message
    assert "runs past the end" in message


async def test_silent_nameserver_times_out() -> None:
    async with fake_dns(lambda query, transport: []) as (_, address):
        start = anyio.current_time()
        with pytest.raises(ConnectionFailedError, match=r"no answer within 0\.3 s"):
            await discover_endpoints("example.com", nameserver=address, timeout=0.3)
        assert anyio.current_time() - start < 2


async def test_nameservers_are_tried_in_order_until_one_answers() -> None:
    records = [(0, 0, 2379, "m0.example.com.")]

    def servfail(query: bytes, transport: str) -> list[bytes]:
        return [reply_to(query, [], rcode=2)]

    closed = await anyio.create_udp_socket(socket.AF_INET, local_host="127.0.0.1")
    closed_port = closed.extra(SocketAttribute.local_port)
    await closed.aclose()  # nobody listens there: refused (or silent)

    async with (
        fake_dns(servfail) as (failing, failing_address),
        fake_dns(zone({PLAIN_NAME: records})) as (_, good_address),
    ):
        servers = [("127.0.0.1", closed_port), failing_address, good_address]
        found = await lookup_srv(PLAIN_NAME, servers, attempt_timeout=1.0)
        assert found == [SrvRecord(0, 0, 2379, "m0.example.com")]
        assert failing.asked == [("udp", PLAIN_NAME)]

        with pytest.raises(LookupError) as info:
            await lookup_srv(PLAIN_NAME, servers[:2], attempt_timeout=1.0)
        assert str(info.value).startswith(f"DNS lookup of {PLAIN_NAME} failed: 127.0.0.1:")
        assert f"{failing_address[0]}:{failing_address[1]}: answered SERVFAIL" in str(info.value)

        # NXDOMAIN is an answer: the next nameserver is not asked.
        assert await lookup_srv(SSL_NAME, [good_address, failing_address], attempt_timeout=1) == []
        assert failing.asked == [("udp", PLAIN_NAME), ("udp", PLAIN_NAME)]


# -- open_etcd ----------------------------------------------------------------------------------


async def test_open_etcd_with_discovery_srv() -> None:
    handler = zone({"_etcd-client-x._tcp.example.com": [(0, 0, 2379, "m0.example.com.")]})
    async with (
        fake_dns(handler) as (_, address),
        etcdanyio.open_etcd(
            discovery_srv="example.com", discovery_srv_name="x", discovery_srv_nameserver=address
        ) as client,
    ):
        assert client.endpoints == ["http://m0.example.com:2379"]  # nothing dialed yet


async def test_open_etcd_discovery_failure_raises_before_the_block() -> None:
    async with fake_dns(zone({})) as (_, address):
        with pytest.raises(ConnectionFailedError, match=PLAIN_NAME):
            async with etcdanyio.open_etcd(
                discovery_srv="example.com", discovery_srv_nameserver=address
            ):
                pytest.fail("the block must not run")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        pytest.param(
            {"endpoints": "127.0.0.1:2379", "discovery_srv": "example.com"},
            ValueError,
            "not both",
            id="endpoints-and-discovery",
        ),
        pytest.param({"discovery_srv": ""}, ValueError, "empty", id="empty-domain"),
        pytest.param({"discovery_srv": "a..b"}, ValueError, "label", id="bad-domain"),
        pytest.param({"discovery_srv": b"example.com"}, TypeError, "str", id="bytes-domain"),
        pytest.param(
            {"discovery_srv": "example.com", "discovery_srv_name": 3},
            TypeError,
            "discovery_srv_name",
            id="bad-name",
        ),
        pytest.param({"auto_sync_interval": 0}, ValueError, "auto_sync_interval", id="zero"),
        pytest.param({"auto_sync_interval": -1.0}, ValueError, "auto_sync", id="negative"),
        pytest.param({"auto_sync_interval": True}, TypeError, "auto_sync", id="bool"),
    ],
)
async def test_open_etcd_rejects_bad_arguments_before_any_io(
    kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    with anyio.fail_after(TIMEOUT), pytest.raises(error, match=match):
        async with etcdanyio.open_etcd(**kwargs):  # type: ignore[arg-type]  # deliberately bad
            pytest.fail("the block must not run")


# -- Channel.set_endpoints ----------------------------------------------------------------------

A, B, C = Endpoint("a", 1), Endpoint("b", 1), Endpoint("c", 1)


def pinned(channel: Channel) -> Endpoint | None:
    return channel.current_endpoint  # a call: mypy narrows no property through it


class Dialer:
    """
    ``Channel(connect=...)``: each dial starts an in-memory peer that answers ``/now`` at once
    with its endpoint's host and leaves ``/later`` to the test.
    """

    def __init__(self, tg: TaskGroup) -> None:
        self.tg = tg
        self.peers: dict[Endpoint, H2Peer] = {}

    def handle(self, peer: H2Peer, stream: PeerStream) -> None:
        if stream.path == "/now":
            host = next(e.host for e, p in self.peers.items() if p is peer)
            peer.reply(stream.stream_id, host.encode())

    async def __call__(self, endpoint: Endpoint) -> AnyByteStream:
        peer = self.peers[endpoint] = H2Peer(self.handle)
        transport = peer.connect()
        self.tg.start_soon(peer.serve)
        return transport


async def test_set_endpoints_keeps_state_and_unpins_a_removed_endpoint() -> None:
    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as tg:
            dialer = Dialer(tg)
            channel = Channel([A, B], tg, connect=dialer)
            try:
                assert await channel.unary("/now", b"") == b"a"
                first = channel.connection
                assert first is not None
                states = {s.endpoint: s for s in channel._endpoints}
                states[B].failures, states[B].next_attempt = 3, 1e9  # as after failed dials

                # A stays: the pinned connection stays; B keeps its backoff, C is new.
                channel.set_endpoints([B, A, C, A])
                assert channel.endpoints == [B, A, C]
                assert channel._endpoints[0] is states[B]
                assert channel._endpoints[1] is states[A]
                assert channel.connection is first
                assert pinned(channel) == A

                # A call in flight on A, then A is removed: new calls go elsewhere.
                async with anyio.create_task_group() as calls:
                    pending: list[bytes] = []

                    async def later() -> None:
                        pending.append(await channel.unary("/later", b""))

                    calls.start_soon(later)
                    peer_a = dialer.peers[A]
                    await peer_a.wait_until(lambda: 3 in peer_a.streams)
                    channel.set_endpoints([B, C])
                    assert channel.endpoints == [B, C]
                    assert pinned(channel) is None
                    # B is backing off (next_attempt far away), so C is dialed.
                    assert await channel.unary("/now", b"") == b"c"
                    assert pinned(channel) == C
                    assert first.usable is False  # retired: no new calls
                    assert first.error is None  # ... but not failed: the call goes on
                    peer_a.reply(3, b"finished on a")
                assert pending == [b"finished on a"]
                await first.wait_closed()  # drained, then closed

                with pytest.raises(ValueError, match="at least one endpoint"):
                    channel.set_endpoints([])
                assert channel.endpoints == [B, C]
            finally:
                await channel.aclose()

"""
Keys: the prefix range end and the namespace, as properties (``etcdanyio._keys``).

etcd ranges are half-open, ``[key, range_end)``, except that ``range_end == b"\\0"`` means
"from ``key`` to the end of the keyspace" and an empty ``range_end`` means "``key`` alone".
``in_range`` below encodes exactly that, so each property is stated in etcd's own terms.
"""

from __future__ import annotations

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from etcdanyio._keys import Namespace, prefix_range_end, to_bytes, to_key
from etcdanyio._requests import key_range

pytestmark = pytest.mark.unit

# Bytes near the interesting edges (0x00, 0xfe, 0xff) come up far more often than at random.
_edge_byte = st.sampled_from([0x00, 0x01, 0x2F, 0x30, 0x7F, 0x80, 0xFE, 0xFF])
_byte = st.one_of(_edge_byte, st.integers(0, 255))
small_bytes = st.lists(_byte, max_size=6).map(bytes)


def in_range(key: bytes, start: bytes, end: bytes) -> bool:
    """Whether etcd's range ``(start, end)`` selects ``key``."""
    if end == b"":
        return key == start
    if end == b"\0":
        return key >= start
    return start <= key < end


def go_get_prefix(key: bytes) -> bytes:
    """A transcription of Go's ``clientv3.GetPrefixRangeEnd`` (``op.go:getPrefix``)."""
    end = bytearray(key)
    for i in range(len(end) - 1, -1, -1):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\0"  # noPrefixEnd: "every key from here on"


@st.composite
def prefix_and_key(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """A prefix and a key that is often *near* it: extended, cut, or bumped at one byte."""
    prefix = draw(small_bytes)
    how = draw(st.sampled_from(["random", "extend", "cut", "bump", "end", "end+"]))
    if how == "extend":
        key = prefix + draw(small_bytes)
    elif how == "cut" and prefix:
        key = prefix[: draw(st.integers(0, len(prefix) - 1))] + draw(small_bytes)
    elif how == "bump" and prefix:
        i = draw(st.integers(0, len(prefix) - 1))
        key = prefix[:i] + bytes([(prefix[i] + draw(st.sampled_from([1, 255]))) % 256])
        key += draw(small_bytes)
    elif how == "end":
        key = prefix_range_end(prefix)
    elif how == "end+":
        key = prefix_range_end(prefix) + draw(small_bytes)
    else:
        key = draw(small_bytes)
    return prefix, key


@given(prefix_and_key())
@example((b"a", b"a"))
@example((b"a", b"b"))
@example((b"a\xff", b"b"))
@example((b"a\xff", b"a\xff\xff\xff"))
@example((b"\xff", b"\xff"))
@example((b"\xff\xff", b"\xff"))
@example((b"\xff\xff", b"\xff\xff\x00"))
@example((b"", b"\x00"))
def test_prefix_range_end_selects_exactly_the_keys_with_the_prefix(
    case: tuple[bytes, bytes],
) -> None:
    prefix, key = case
    end = prefix_range_end(prefix)
    assert in_range(key, prefix, end) == key.startswith(prefix), (prefix, key, end)


@given(small_bytes)
@example(b"")
@example(b"\xff")
@example(b"\xff\xff\xff")
@example(b"a\xff\xff")
@example(b"\x00")
def test_prefix_range_end_matches_go(prefix: bytes) -> None:
    assert prefix_range_end(prefix) == go_get_prefix(prefix)


@pytest.mark.parametrize(
    ("prefix", "end"),
    [
        pytest.param(b"a", b"b", id="simple"),
        pytest.param(b"a/", b"a0", id="slash"),
        pytest.param(b"a\xff", b"b", id="trailing-ff-dropped"),
        pytest.param(b"a\xfe\xff\xff", b"a\xff", id="several-trailing-ff"),
        pytest.param(b"\xff", b"\0", id="all-ff-means-to-the-end"),
        pytest.param(b"\xff\xff\xff", b"\0", id="all-ff-long"),
        pytest.param(b"", b"\0", id="empty-means-every-key"),
        pytest.param(b"\x00", b"\x01", id="nul"),
    ],
)
def test_prefix_range_end_table(prefix: bytes, end: bytes) -> None:
    assert prefix_range_end(prefix) == end


@given(small_bytes, small_bytes)
def test_key_range_prefix_selects_the_prefix(prefix: bytes, key: bytes) -> None:
    assume(key)  # etcd has no empty key
    start, end = key_range(prefix, prefix=True)
    assert start  # an empty key would be "key is not provided"
    assert in_range(key, start, end) == key.startswith(prefix)


# -- Namespace ----------------------------------------------------------------------------------

namespaces = st.lists(_byte, min_size=1, max_size=4).map(bytes)


@given(namespaces, small_bytes)
def test_namespace_strip_undoes_key(prefix: bytes, key: bytes) -> None:
    ns = Namespace(prefix)
    wire = ns.key(key)
    assert wire.startswith(prefix)
    assert wire == prefix + key
    assert ns.strip(wire) == key


@given(small_bytes)
def test_empty_namespace_changes_nothing(key: bytes) -> None:
    ns = Namespace()
    assert not ns
    assert ns.key(key) == key
    assert ns.strip(key) == key
    assert ns.range_end(key) == key
    assert ns.range_end(b"\0") == b"\0"
    assert ns.range_end(b"") == b""


@given(namespaces, prefix_and_key())
@example(b"ns/", (b"", b"a"))
@example(b"ns/", (b"\xff", b"\xff\x00"))
@example(b"\xff", (b"", b"\x00"))
@example(b"\xff\xff", (b"\xff", b"\xff"))
@example(b"a\xff", (b"", b"\xff"))
def test_namespaced_prefix_range_stays_inside_the_namespace(
    namespace: bytes, case: tuple[bytes, bytes]
) -> None:
    """
    A prefix read through a namespace selects exactly the namespaced keys with the prefix, and
    never a key outside the namespace, whatever the prefix (empty and all-0xff included).
    """
    prefix, key = case
    ns = Namespace(namespace)
    start, end = key_range(prefix, prefix=True)
    wire_start, wire_end = ns.key(start), ns.range_end(end)
    # Every wire key, inside the namespace or not: selected iff it is ours and has the prefix.
    for wire in (key, ns.key(key)):
        selected = in_range(wire, wire_start, wire_end)
        ours = wire.startswith(namespace) and wire != namespace  # b"" is no key
        assert selected == (ours and ns.strip(wire).startswith(prefix)), (wire, wire_end)


@given(namespaces, small_bytes, small_bytes)
def test_namespaced_explicit_range_end(namespace: bytes, start: bytes, end: bytes) -> None:
    assume(end not in (b"", b"\0"))
    ns = Namespace(namespace)
    assert ns.range_end(end) == namespace + end
    assert ns.range_end(b"") == b""  # "the key alone" stays so


@pytest.mark.parametrize(
    ("namespace", "end"),
    [
        pytest.param(b"ns/", b"ns0", id="plain"),
        pytest.param(b"a\xff", b"b", id="trailing-ff"),
        pytest.param(b"\xff\xff", b"\0", id="all-ff"),
    ],
)
def test_namespace_to_the_end_is_the_namespace_end(namespace: bytes, end: bytes) -> None:
    assert Namespace(namespace).range_end(b"\0") == end


def test_strip_leaves_foreign_keys_alone() -> None:
    ns = Namespace(b"ns/")
    assert ns.strip(b"other/k") == b"other/k"
    assert ns.strip(b"ns/k") == b"k"
    assert bool(ns)
    assert ns.prefix == b"ns/"


# -- coercion -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("k", b"k", id="str"),
        pytest.param("é", "é".encode(), id="str-utf8"),
        pytest.param(b"k", b"k", id="bytes"),
        pytest.param(bytearray(b"k"), b"k", id="bytearray"),
        pytest.param(memoryview(b"k"), b"k", id="memoryview"),
    ],
)
def test_to_bytes_accepts(value: object, expected: bytes) -> None:
    result = to_bytes(value)
    assert result == expected
    assert type(result) is bytes


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param(3.5, r"^key must be str or bytes, got 3\.5 \(float\)$", id="float"),
        pytest.param(3, r"^key must be str or bytes, got 3 \(int\)$", id="int"),
        pytest.param(None, r"^key must be str or bytes, got None \(NoneType\)$", id="none"),
        pytest.param([b"k"], r"^key must be str or bytes, got \[b'k'\] \(list\)$", id="list"),
    ],
)
def test_to_bytes_rejects(value: object, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        to_bytes(value)


def test_to_key_rejects_empty_and_lone_surrogates() -> None:
    with pytest.raises(ValueError, match=r"^key must not be empty$"):
        to_key(b"")
    with pytest.raises(ValueError, match=r"^prefix must not be empty$"):
        to_key("", "prefix")
    with pytest.raises(UnicodeEncodeError):  # a ValueError
        to_key("\ud800")

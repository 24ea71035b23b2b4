"""The mirror's pure parts: the difference of a re-list, and a consumer's bounded backlog."""

from __future__ import annotations

from typing import Any, cast

import anyio
import pytest

from etcdanyio import EventType, KeyValue, MirrorUpdate
from etcdanyio._mirror import Mirror, MirrorChanges, _difference
from etcdanyio.watch import Event

pytestmark = pytest.mark.unit


def _kv(key: bytes, mod: int, value: bytes = b"v") -> KeyValue:
    return KeyValue(key, value, 1, mod, 1, 0)


def test_difference_reports_only_what_changed() -> None:
    old = {b"same": _kv(b"same", 3), b"changed": _kv(b"changed", 4), b"gone": _kv(b"gone", 5)}
    new = {b"same": _kv(b"same", 3), b"changed": _kv(b"changed", 9), b"new": _kv(b"new", 8)}
    events = {(e.type, e.kv.key): e for e in _difference(old, new, 10)}
    assert set(events) == {
        (EventType.PUT, b"changed"),
        (EventType.PUT, b"new"),
        (EventType.DELETE, b"gone"),
    }
    assert events[EventType.PUT, b"changed"].prev_kv == old[b"changed"]
    assert events[EventType.PUT, b"new"].prev_kv is None
    gone = events[EventType.DELETE, b"gone"]
    assert gone.revision == 10
    assert gone.prev_kv == old[b"gone"]


def test_difference_of_equal_copies_is_empty() -> None:
    copy = {b"k%d" % i: _kv(b"k%d" % i, i + 1) for i in range(100)}
    assert _difference(copy, dict(copy), 200) == []


class _FakeMirror:
    def __init__(self) -> None:
        self._data = {b"a": _kv(b"a", 7)}
        self.revision = 7
        self._closed = False


def _update(revision: int, n: int) -> MirrorUpdate:
    events = [Event(EventType.PUT, _kv(b"a", revision), None) for _ in range(n)]
    return MirrorUpdate(revision, events)


def _changes(max_buffered: int) -> tuple[_FakeMirror, MirrorChanges]:
    mirror = _FakeMirror()
    return mirror, MirrorChanges(cast("Mirror", mirror), max_buffered)


async def test_backlog_within_the_bound_is_delivered_in_order() -> None:
    _, changes = _changes(5)
    for revision in (2, 3, 4):
        changes._push(_update(revision, 1))
    assert [(await changes.__anext__()).revision for _ in range(3)] == [2, 3, 4]


async def test_overflow_drops_the_backlog_for_one_reset() -> None:
    mirror, changes = _changes(3)
    changes._push(_update(2, 2))
    changes._push(_update(3, 2))  # 4 > 3: the backlog goes
    changes._push(_update(4, 1))  # ignored until the reset is taken
    reset = await changes.__anext__()
    assert reset.reset
    assert reset.resync
    assert reset.revision == mirror.revision
    assert [e.kv for e in reset.events] == list(mirror._data.values())
    assert changes.resets == 1
    changes._push(_update(8, 1))
    assert (await changes.__anext__()).revision == 8


async def test_one_update_bigger_than_the_bound_still_passes_alone() -> None:
    _, changes = _changes(2)
    changes._push(_update(2, 50))
    update = await changes.__anext__()
    assert len(update.events) == 50
    assert not update.reset


async def test_iteration_ends_when_the_mirror_closes() -> None:
    mirror, changes = _changes(2)
    with anyio.fail_after(1):
        async with anyio.create_task_group() as tg:

            async def close_soon() -> None:
                mirror._closed = True
                changes._wake()

            got: list[Any] = []

            async def consume() -> None:
                got.extend([u async for u in changes])

            tg.start_soon(consume)
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(close_soon)
    assert got == []

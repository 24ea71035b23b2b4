"""
The watch dispatch (``etcdanyio._watch_dispatch``) on responses recorded from etcd 3.5.1
(``watch_responses.py``), and on responses built from etcd's proto for what 3.5.1 cannot
be made to send (a stale-token cancel reason of later releases, fragments).
"""

from __future__ import annotations

import grimp
import pytest

from etcdanyio import PermissionDeniedError, WatchCanceledError, WatchCompactedError
from etcdanyio._codec import WatchResponse, decode_watch_response
from etcdanyio._error_table import watch_cancel_status
from etcdanyio._events import EventType, WatchBatch
from etcdanyio._keys import Namespace
from etcdanyio._lazy import etcdserverpb as pb
from etcdanyio._pb import mvccpb
from etcdanyio._watch_dispatch import (
    Created,
    Failed,
    Progress,
    Reauthenticate,
    Suspend,
    WatchState,
    dispatch,
)
from etcdanyio.errors import AuthenticationError

from .watch_responses import RECORDED

pytestmark = pytest.mark.unit


def recorded(name: str) -> list[WatchResponse]:
    return [decode_watch_response(data) for data in RECORDED[name]]


def state(watch_id: int, *, start_revision: int = 0, max_buffered: int = 1000) -> WatchState:
    watch = WatchState(
        key=b"k", range_end=b"", start_revision=start_revision, max_buffered=max_buffered
    )
    watch.watch_id = watch_id
    return watch


def built(watch_id: int, revision: int, *revisions: int, **fields: object) -> WatchResponse:
    """A response from etcd's proto: PUT events at ``revisions``."""
    events = [
        mvccpb.Event(kv=mvccpb.KeyValue(key=b"ns/k%d" % r, mod_revision=r, value=b"v"))
        for r in revisions
    ]
    message = pb.WatchResponse(
        header=pb.ResponseHeader(revision=revision),
        watch_id=watch_id,
        events=events,
        **fields,  # type: ignore[arg-type]
    )
    return decode_watch_response(bytes(message))


def test_created_then_events_are_buffered_in_order() -> None:
    created, put, delete = recorded("created_put_delete")
    watch = state(1)
    table = {1: watch}
    outcome = dispatch(table, created, None, False)
    assert isinstance(outcome, Created)
    assert outcome.watch is watch
    assert watch.ever_created
    assert watch.created_revision == created.header_revision
    assert watch.next_revision == created.header_revision + 1
    assert dispatch(table, put, None, False) is watch  # the common case: wake it
    assert dispatch(table, delete, None, False) is watch
    first, second = watch.batches
    assert [e.type for e in first.events + second.events] == [EventType.PUT, EventType.DELETE]
    assert second.events[0].prev_kv is not None
    assert watch.next_revision == delete.header_revision + 1
    assert watch.buffered == 2


def test_a_progress_answer_goes_to_every_synced_watch() -> None:
    created, progress = recorded("progress_synced")
    assert progress.watch_id == -1
    watch, other = state(1), state(2)
    table = {1: watch, 2: other}
    dispatch(table, created, None, False)
    dispatch(table, created._replace(watch_id=2), None, False)
    outcome = dispatch(table, progress, None, False)
    assert isinstance(outcome, Progress)
    assert outcome.watches == [watch, other]
    assert list(watch.batches) == [WatchBatch([], progress.header_revision)]
    # a second notification for the same revision is collapsed into the first
    assert isinstance(dispatch(table, progress, None, False), Progress)
    assert list(watch.batches) == [WatchBatch([], progress.header_revision)]


def test_etcd_15220_a_watch_catching_up_skips_the_immediate_progress_answer() -> None:
    # etcd < 3.5.8 answers the progress request with the store's revision before the
    # history the watch asked for: taking it would move the resume point past that history.
    created, progress, history = recorded("progress_while_catching_up")
    start = history.events[0].kv.mod_revision
    watch = state(7, start_revision=start)
    table = {7: watch}
    dispatch(table, created, None, False)
    assert watch.synced_after == created.header_revision
    assert progress.header_revision == created.header_revision  # the store's, not the watch's
    assert dispatch(table, progress, None, False) is None
    assert not watch.batches
    assert watch.next_revision == start
    assert dispatch(table, history, None, False) is watch
    assert [e.kv.mod_revision for e in watch.batches[0].events] == list(
        range(start, created.header_revision + 1)
    )
    # caught up: now a progress answer is taken
    assert isinstance(dispatch(table, progress, None, False), Progress)


def test_a_watch_created_below_the_compaction_point_fails_and_is_cancelled() -> None:
    created, canceled = recorded("compacted")
    watch = state(3, start_revision=2)
    table = {3: watch}
    assert isinstance(dispatch(table, created, None, False), Created)
    outcome = dispatch(table, canceled, None, False)
    assert isinstance(outcome, Failed)
    assert isinstance(outcome.error, WatchCompactedError)
    assert outcome.error.compact_revision == canceled.compact_revision
    # etcd keeps it until the client cancels it too: the stream sends a cancel for this ID
    assert outcome.compact_revision == canceled.compact_revision
    assert outcome.watch_id == 3
    assert table == {}
    assert watch.watch_id is None


def test_a_create_refused_with_a_compact_revision_needs_no_cancel() -> None:
    watch = state(3, start_revision=2)
    table = {3: watch}
    response = built(3, 0, created=True, canceled=True, compact_revision=9)
    outcome = dispatch(table, response, None, False)
    assert isinstance(outcome, Failed)
    assert isinstance(outcome.error, WatchCompactedError)
    assert outcome.compact_revision == 0  # refused outright: nothing to cancel
    assert table == {}


def test_late_responses_for_a_cancelled_or_replaced_id_are_ignored() -> None:
    # IDs are fresh for every (re)creation: whatever etcd still sends for an old ID (events,
    # a compaction cancel, a "created" for a watch cancelled meanwhile) touches nothing.
    created, canceled = recorded("compacted")
    watch = state(4)
    table = {4: watch}
    for response in (created, canceled, built(3, 9, 9)):
        assert dispatch(table, response, None, False) is None
    assert table == {4: watch}
    assert not watch.batches
    assert not watch.ever_created


def test_etcd_12385_permission_denied_create_is_retried_once_with_a_fresh_token() -> None:
    (refused,) = recorded("permission_denied")
    assert refused.created
    assert refused.canceled
    assert watch_cancel_status(refused.cancel_reason)[1] == "etcdserver: permission denied"
    watch = state(4)
    table = {4: watch}
    outcome = dispatch(table, refused, None, True)
    assert isinstance(outcome, Reauthenticate)
    assert table == {4: watch}
    assert watch.auth_retried
    outcome = dispatch(table, refused, None, True)
    assert isinstance(outcome, Failed)
    assert isinstance(outcome.error, PermissionDeniedError)
    assert outcome.error.message == "etcdserver: permission denied"
    assert table == {}


def test_permission_denied_without_credentials_is_final() -> None:
    (refused,) = recorded("permission_denied")
    watch = state(4)
    outcome = dispatch({4: watch}, refused, None, False)
    assert isinstance(outcome, Failed)
    assert isinstance(outcome.error, PermissionDeniedError)


def test_a_confirmed_create_allows_another_retry_later() -> None:
    (refused,) = recorded("permission_denied")
    watch = state(4)
    table = {4: watch}
    dispatch(table, refused, None, True)
    dispatch(table, built(4, 30, created=True), None, True)
    assert not watch.auth_retried


@pytest.mark.parametrize(
    "reason",
    [
        "rpc error: code = Unauthenticated desc = etcdserver: invalid auth token",
        "rpc error: code = InvalidArgument desc = etcdserver: user name is empty",
        "etcdserver: revision of auth store is old",
        "auth: revision in header is old",
    ],
)
def test_a_watch_cancelled_for_a_stale_token_reconnects_and_is_kept(reason: str) -> None:
    watch = state(5)
    table = {5: watch}
    dispatch(table, built(5, 10, created=True), None, True)
    outcome = dispatch(table, built(5, 11, canceled=True, cancel_reason=reason), None, False)
    assert isinstance(outcome, Reauthenticate)
    assert table == {5: watch}
    assert watch.watch_id == 5


def test_a_plain_cancel_fails_the_watch() -> None:
    watch = state(5)
    table = {5: watch}
    outcome = dispatch(table, built(5, 10, canceled=True), None, False)
    assert isinstance(outcome, Failed)
    assert isinstance(outcome.error, WatchCanceledError)
    assert outcome.error.message == "etcdserver: watch canceled"
    wrapped = "rpc error: code = Unauthenticated desc = etcdserver: authentication failed"
    watch = state(6)
    outcome = dispatch({6: watch}, built(6, 10, canceled=True, cancel_reason=wrapped), None, False)
    assert isinstance(outcome, Failed)
    assert isinstance(outcome.error, AuthenticationError)


def test_events_already_delivered_are_dropped() -> None:
    watch = state(1, start_revision=5)
    table = {1: watch}
    dispatch(table, built(1, 4, created=True), None, False)
    assert dispatch(table, built(1, 4, 3, 4), None, False) is None  # only old events
    assert watch.duplicates_dropped == 2
    assert not watch.batches
    assert dispatch(table, built(1, 6, 4, 5, 6), None, False) is watch
    assert [e.revision for e in watch.batches[0].events] == [5, 6]
    assert watch.duplicates_dropped == 3


def test_fragments_are_held_until_the_last_one() -> None:
    watch = state(1, start_revision=5)
    table = {1: watch}
    dispatch(table, built(1, 4, created=True), None, False)
    assert dispatch(table, built(1, 7, 5, 6, fragment=True), None, False) is None
    # a progress notification in the middle of fragments says nothing
    assert dispatch(table, built(1, 7), None, False) is None
    assert dispatch(table, built(1, 7, 7), None, False) is watch
    (batch,) = watch.batches
    assert [e.revision for e in batch.events] == [5, 6, 7]
    assert batch.revision == 7


def test_a_progress_notification_for_one_watch() -> None:
    watch = state(1)
    table = {1: watch}
    dispatch(table, built(1, 4, created=True), None, False)
    assert dispatch(table, built(1, 9), None, False) is watch
    assert list(watch.batches) == [WatchBatch([], 9)]
    assert watch.next_revision == 10
    assert dispatch(table, built(1, 8), None, False) is None  # older than delivered


def test_a_full_buffer_suspends_the_watch() -> None:
    watch = state(1, start_revision=5, max_buffered=2)
    table = {1: watch}
    dispatch(table, built(1, 4, created=True), None, False)
    assert dispatch(table, built(1, 6, 5, 6), None, False) is watch
    outcome = dispatch(table, built(1, 7, 7), None, False)
    assert isinstance(outcome, Suspend)
    assert outcome.watch is watch
    assert watch.buffered == 3  # what arrived is kept


def test_the_namespace_is_stripped() -> None:
    watch = state(1, start_revision=5)
    dispatch({1: watch}, built(1, 5, 5), Namespace(b"ns/"), False)
    assert watch.batches[0].events[0].kv.key == b"k5"


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("rpc error: code = PermissionDenied desc = etcdserver: permission denied", "PERMISSION"),
        ("rpc error: code = Unauthenticated desc = x desc = y", "UNAUTHENTICATED"),
        ("rpc error: code = NoSuchCode desc = x", "UNKNOWN"),
        ("rpc error: code = two words desc = x", "CANCELLED"),
        ("etcdserver: mvcc: required revision has been compacted", "CANCELLED"),
    ],
)
def test_cancel_reasons_are_unwrapped(reason: str, expected: str) -> None:
    status, message = watch_cancel_status(reason)
    assert status.name.startswith(expected)
    if expected == "CANCELLED":
        assert message == reason
    else:
        assert not message.startswith("rpc error")


def test_the_dispatch_does_no_io_and_the_events_import_no_api() -> None:
    graph = grimp.build_graph("etcdanyio", include_external_packages=True)
    dispatch_imports = graph.find_modules_directly_imported_by("etcdanyio._watch_dispatch")
    assert not {m for m in dispatch_imports if m.split(".")[0] in ("anyio", "trio", "asyncio")}
    assert "etcdanyio._watch_stream" not in dispatch_imports
    # the data types: the enum base, and KeyValue (for typing only)
    event_imports = graph.find_modules_directly_imported_by("etcdanyio._events")
    assert {m for m in event_imports if m.startswith("etcdanyio")} <= {
        "etcdanyio._grpc._status",
        "etcdanyio.types",
    }

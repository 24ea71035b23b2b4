"""
The watch validators of the test kit on hand-made histories: a correct watch passes every one,
and each kind of bad history is caught by the validator meant for it (no etcd needed).
"""

from __future__ import annotations

import dataclasses

import pytest

from tests.integration._kit.checkers import (
    KV,
    VALIDATORS,
    Event,
    Response,
    WatchRecord,
    WatchSpec,
    WatchViolation,
    check_watch,
    validate_watch,
)

pytestmark = pytest.mark.unit


def put(key: bytes, value: bytes, revision: int, create: int, version: int) -> Event:
    return Event("PUT", KV(key, value, create, revision, version))


def delete(key: bytes, revision: int) -> Event:
    return Event("DELETE", KV(key, mod_revision=revision))


# The history of a store: revision 4 is a transaction writing two keys; "z" is outside the range.
A2 = put(b"a", b"1", 2, 2, 1)
A3 = put(b"a", b"2", 3, 2, 2)
B4 = put(b"b", b"1", 4, 4, 1)
C4 = put(b"c", b"1", 4, 4, 1)
A5 = delete(b"a", 5)
A6 = put(b"a", b"3", 6, 6, 1)
Z7 = put(b"z", b"1", 7, 7, 1)
A8 = put(b"a", b"4", 8, 6, 2)
TRUTH = [A2, A3, B4, C4, A5, A6, Z7, A8]
SPEC = WatchSpec(b"a", b"d", start_revision=2)


def with_prev(event: Event, prev: Event | None) -> Event:
    return dataclasses.replace(event, prev_kv=prev.kv if prev is not None else None)


def batch(*events: Event) -> Response:
    return Response(tuple(events), events[-1].revision)


def progress(revision: int) -> Response:
    return Response((), revision)


def good_responses() -> list[Response]:
    return [batch(A2, A3), batch(B4, C4), progress(4), batch(A5), batch(A6), progress(7)]


def record(responses: list[Response], spec: WatchSpec = SPEC, **kwargs: object) -> WatchRecord:
    return WatchRecord(spec, responses, **kwargs)  # type: ignore[arg-type]


def failing(rec: WatchRecord) -> dict[str, list[str]]:
    """Validator name -> its violations, for the validators that failed."""
    out = {}
    for name, validator in VALIDATORS.items():
        if problems := validator(rec, TRUTH):
            out[name] = problems
            assert all(p.startswith(name + ":") for p in problems)
    return out


# -- correct watches ----------------------------------------------------------------------------


def test_a_correct_watch_passes_every_validator() -> None:
    validate_watch(record(good_responses()), TRUTH)
    validate_watch(record([batch(A2, A3, B4, C4, A5, A6, A8)]), TRUTH)  # batched catch-up
    validate_watch(record([]), TRUTH)  # nothing delivered yet: no claim to check


def test_a_correct_watch_from_now_and_one_key() -> None:
    # start_revision 0: the watch promised everything after its creation at revision 4.
    from_now = record([batch(A5), batch(A6), batch(A8)], WatchSpec(b"a"), created_revision=4)
    validate_watch(from_now, TRUTH)
    every_key = WatchSpec(b"a", b"\0", start_revision=6)
    validate_watch(record([batch(A6), batch(Z7), batch(A8)], every_key), TRUTH)


def test_a_correct_watch_with_prev_kv_and_filters() -> None:
    spec = dataclasses.replace(SPEC, prev_kv=True)
    responses = [
        batch(with_prev(A2, None), with_prev(A3, A2)),
        batch(with_prev(B4, None), with_prev(C4, None)),
        batch(with_prev(A5, A3)),
        batch(with_prev(A6, None)),
    ]
    validate_watch(record(responses, spec), TRUTH)
    no_put = dataclasses.replace(SPEC, no_put=True)
    validate_watch(record([batch(A5), progress(8)], no_put), TRUTH)
    no_delete = dataclasses.replace(SPEC, no_delete=True)
    validate_watch(record([batch(A2, A3), batch(B4, C4), batch(A6), batch(A8)], no_delete), TRUTH)


def test_a_compacted_watch_may_end_after_a_complete_prefix() -> None:
    validate_watch(record([batch(A2, A3)], compact_revision=4), TRUTH)
    validate_watch(record([], compact_revision=4), TRUTH)


# -- one bad history per validator ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("responses", "validator", "fragment"),
    [
        pytest.param(
            [batch(A2, A3), batch(A5), batch(B4, C4), batch(A6)],
            "Ordered",
            "PUT b'b'@4 after revision 5 (response 2)",
            id="ordered",
        ),
        pytest.param(
            [batch(A2, A3), batch(B4, C4), batch(A5), batch(A5), batch(A6)],
            "Unique",
            "b'a'@5 delivered 2 times",
            id="unique-duplicate",
        ),
        pytest.param(
            [batch(A2, A3), batch(B4), batch(C4), batch(A5)],
            "Atomic",
            "revision 4 split across responses 1 and 2",
            id="atomic-split",
        ),
        pytest.param(
            [batch(A2, A3), batch(B4), batch(A5)],
            "Atomic",
            "response 1 has 1 of the 2 events of revision 4",
            id="atomic-partial",
        ),
        pytest.param(
            [batch(A2), batch(B4, C4), batch(A5)],
            "Reliable",
            "gap: 1 event(s) in [2, 5] not delivered: [PUT b'a'@3]",
            id="reliable-gap",
        ),
        pytest.param(
            [batch(A2, A3), batch(B4, C4), batch(A5), progress(6), batch(A8)],
            "Reliable",
            "[PUT b'a'@6]",
            id="reliable-gap-before-progress",
        ),
        pytest.param(
            [batch(A2, A3), batch(put(b"b", b"forged", 4, 4, 1), C4)],
            "Reliable",
            "not in the history once",
            id="reliable-unknown-event",
        ),
        pytest.param(
            [batch(A3), batch(B4, C4)],
            "Resumable",
            "watch from revision 2 began with PUT b'a'@3, the history with PUT b'a'@2",
            id="resumable",
        ),
        pytest.param(
            [batch(A2, A3), progress(2)],
            "Bookmarkable",
            "progress notification at 2 (response 1) after an event at 3",
            id="bookmarkable-progress-behind",
        ),
        pytest.param(
            [batch(A2), progress(4), batch(A3)],
            "Bookmarkable",
            "PUT b'a'@3 (response 2) after a progress notification at 4",
            id="bookmarkable-event-behind",
        ),
        pytest.param(
            [batch(A2, A3), progress(6), progress(5)],
            "Bookmarkable",
            "went back from 6 to 5",
            id="bookmarkable-progress-back",
        ),
        pytest.param(
            [batch(A2, with_prev(A3, A2))],
            "PrevKV",
            "has a prev_kv the watch did not ask for",
            id="prev-kv-unasked",
        ),
        pytest.param(
            [batch(A2, put(b"a", b"2", 3, 3, 1))],
            "IsCreate",
            "PUT b'a'@3 looks like a create",
            id="is-create",
        ),
        pytest.param(
            [batch(A2, A3), batch(B4, C4), batch(A5), batch(A6), batch(Z7)],
            "Filter",
            "PUT b'z'@7 is outside the watched range",
            id="filter-range",
        ),
    ],
)
def test_each_bad_history_is_caught(
    responses: list[Response], validator: str, fragment: str
) -> None:
    problems = failing(record(responses))
    assert validator in problems, problems
    assert any(fragment in p for p in problems[validator]), problems[validator]
    with pytest.raises(WatchViolation) as info:
        validate_watch(record(responses), TRUTH)
    assert any(fragment in v for v in info.value.violations)


def test_prev_kv_must_be_the_key_before_the_event() -> None:
    spec = dataclasses.replace(SPEC, prev_kv=True)
    wrong = [batch(with_prev(A2, None), with_prev(A3, A3))]  # its own value, not the one before
    problems = failing(record(wrong, spec))
    assert list(problems) == ["PrevKV"]
    assert "PUT b'a'@3 has prev_kv" in problems["PrevKV"][0]
    missing = [batch(with_prev(A2, None), with_prev(A3, A2)), batch(with_prev(B4, None), C4)]
    assert "PrevKV" not in failing(record(missing, spec))  # C4 had no key before: None is right
    deleted = [batch(with_prev(A2, None), with_prev(A3, A2)), batch(B4, C4), batch(A5)]
    assert list(failing(record(deleted, spec))) == ["PrevKV"]  # the delete lost its prev_kv


def test_filters_are_enforced() -> None:
    no_put = dataclasses.replace(SPEC, no_put=True)
    problems = failing(record([batch(A2)], no_put))
    assert "Filter" in problems
    assert "PUT b'a'@2 should have been filtered out" in problems["Filter"][0]
    no_delete = dataclasses.replace(SPEC, no_delete=True)
    problems = failing(record([batch(A2, A3), batch(B4, C4), batch(A5)], no_delete))
    assert "DELETE b'a'@5 should have been filtered out" in problems["Filter"][0]


def test_compacted_watch_must_not_deliver_past_the_compaction() -> None:
    problems = failing(record([batch(A2, A3), batch(B4, C4)], compact_revision=4))
    assert list(problems) == ["Compacted"]
    assert "at or after compact revision 4" in problems["Compacted"][0]


def test_watch_from_now_must_not_deliver_older_events() -> None:
    # Created at revision 4, so it must start with revision 5: a replay of 3 is a bug.
    rec = record([batch(A3), batch(A5)], WatchSpec(b"a"), created_revision=4)
    problems = failing(rec)
    assert "Resumable" in problems
    assert "Reliable" in problems


def test_every_violation_is_listed() -> None:
    bad = [batch(A3), batch(A3), batch(Z7)]
    problems = check_watch(record(bad), TRUTH)
    names = {p.split(":")[0] for p in problems}
    assert {"Unique", "Reliable", "Resumable", "Filter"} <= names
    with pytest.raises(WatchViolation, match="watch validators failed"):
        validate_watch(record(bad), TRUTH)


@pytest.mark.parametrize(
    ("spec", "inside", "outside"),
    [
        (WatchSpec(b"k"), [b"k"], [b"k\0", b"j", b""]),
        (WatchSpec(b"a", b"c"), [b"a", b"b\xff"], [b"c", b"\x00"]),
        (WatchSpec(b"a", b"\0"), [b"a", b"\xff\xff"], [b"0"]),
    ],
)
def test_ranges(spec: WatchSpec, inside: list[bytes], outside: list[bytes]) -> None:
    assert all(spec.in_range(k) for k in inside)
    assert not any(spec.in_range(k) for k in outside)

"""
The history recorder and the operation checkers of the test kit on hand-made histories: a
correct history passes, and each kind of bad history is caught by the checker meant for it (no
etcd needed).
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from tests.integration._kit.checkers import KV, Event
from tests.integration._kit.history import Op, Outcome, Recorder, classify
from tests.integration._kit.opcheckers import (
    LeaseRecord,
    LockHold,
    OpViolation,
    Owners,
    check_leases,
    check_locks,
    check_revisions,
    check_writes,
    validate_ops,
)

pytestmark = pytest.mark.unit

MS = 1_000_000  # ns


def put(key: bytes, value: bytes, revision: int, create: int = 0, version: int = 1) -> Event:
    return Event("PUT", KV(key, value, create or revision, revision, version))


def delete(key: bytes, revision: int) -> Event:
    return Event("DELETE", KV(key, mod_revision=revision))


def op(
    kind: str,
    key: bytes,
    value: bytes | None = None,
    *,
    t: tuple[int, int],
    outcome: Outcome = "ok",
    revision: int = 0,
    read: tuple[bytes, int] | None = None,
    process: int = 0,
    succeeded: bool | None = None,
    serializable: bool = False,
    fence: bytes | None = None,
) -> Op:
    """An operation called at ``t[0]`` ms and returned at ``t[1]`` ms."""
    return Op(
        process,
        kind,
        key,
        value,
        call_t=t[0] * MS,
        return_t=t[1] * MS,
        outcome=outcome,
        revision=revision,
        read=read,
        succeeded=succeeded,
        serializable=serializable,
        fence=fence,
    )


# ------------------------------------------------------------------------------ writes

# Two clients put to "k"; p1's third put has an unknown outcome and was applied, p0's third
# has an unknown outcome and was not; p1's fourth certainly failed.
WRITES = [
    op("put", b"k", b"0:0", t=(0, 2), revision=2),
    op("put", b"k", b"1:0", t=(1, 3), revision=3, process=1),
    op("put", b"k", b"0:1", t=(3, 5), revision=4),
    op("put", b"k", b"1:1", t=(4, 9), outcome="unknown", process=1),
    op("put", b"k", b"0:2", t=(6, 8), outcome="unknown"),
    op("put", b"k", b"1:2", t=(10, 11), outcome="fail", process=1),
    op("txn", b"k", b"1:3", t=(12, 13), revision=6, succeeded=False, process=1),
]
WRITES_TRUTH = [
    put(b"k", b"0:0", 2),
    put(b"k", b"1:0", 3, 2, 2),
    put(b"k", b"0:1", 4, 2, 3),
    put(b"k", b"1:1", 5, 2, 4),
]


def test_writes_accepts_a_correct_history() -> None:
    assert check_writes(WRITES, WRITES_TRUTH) == []
    assert check_revisions(WRITES, WRITES_TRUTH) == []


def test_writes_acknowledged_write_missing() -> None:
    truth = [e for e in WRITES_TRUTH if e.kv.value != b"0:1"]
    (problem,) = check_writes(WRITES, truth)
    assert problem.startswith("Writes: acknowledged p0 put b'k'=b'0:1'")
    assert "0 times" in problem


def test_writes_acknowledged_write_duplicated() -> None:
    truth = [*WRITES_TRUTH, put(b"k", b"0:1", 7, 2, 5)]
    (problem,) = check_writes(WRITES, truth)
    assert "2 times" in problem


def test_writes_acknowledged_at_another_revision() -> None:
    ops = [dataclasses.replace(WRITES[0], revision=9), *WRITES[1:]]
    (problem,) = check_writes(ops, WRITES_TRUTH)
    assert "at revision 2, not at the 9" in problem


def test_writes_definite_failure_applied() -> None:
    truth = [*WRITES_TRUTH, put(b"k", b"1:2", 6, 2, 5)]
    (problem,) = check_writes(WRITES, truth)
    assert "a definite failure, yet its value is in the history at revisions [6]" in problem


def test_writes_failed_compare_applied() -> None:
    truth = [*WRITES_TRUTH, put(b"k", b"1:3", 6, 2, 5)]
    (problem,) = check_writes(WRITES, truth)
    assert "a failed compare" in problem


def test_writes_unknown_applied_twice() -> None:
    truth = [*WRITES_TRUTH, put(b"k", b"0:2", 6, 2, 5), put(b"k", b"0:2", 7, 2, 6)]
    (problem,) = check_writes(WRITES, truth)
    assert "unknown outcome" in problem
    assert "applied more than once" in problem


def test_writes_value_never_sent() -> None:
    stranger = put(b"k", b"9:9", 6, 2, 5)
    (problem,) = check_writes(WRITES, [*WRITES_TRUTH, stranger])
    assert "was never sent by a client" in problem
    assert check_writes(WRITES, [*WRITES_TRUTH, stranger], ignore=lambda e: e is stranger) == []


def test_writes_values_must_be_unique() -> None:
    ops = [*WRITES, op("put", b"k", b"0:0", t=(20, 21), outcome="fail")]
    (problem,) = check_writes(ops, WRITES_TRUTH)
    assert "not unique" in problem


# --------------------------------------------------------------------------- revisions


def test_revisions_real_time_order_violated() -> None:
    # The get started after the put at revision 4 returned, yet saw revision 3.
    ops = [*WRITES, op("get", b"k", t=(6, 7), revision=3, read=(b"1:0", 3), process=2)]
    problems = check_revisions(ops, WRITES_TRUTH)
    assert len(problems) == 1
    assert "started after p0 put b'k'=b'0:1'" in problems[0]
    assert "revision 3 < 4" in problems[0]


def test_revisions_put_after_put_needs_a_newer_revision() -> None:
    ops = [
        op("put", b"a", b"0:0", t=(0, 1), revision=5),
        op("put", b"b", b"1:0", t=(2, 3), revision=5, process=1),
    ]
    (problem,) = check_revisions(ops)
    assert "revision 5 == 5" in problem


def test_revisions_concurrent_operations_may_be_in_any_order() -> None:
    ops = [
        op("put", b"a", b"0:0", t=(0, 10), revision=6),
        op("get", b"a", t=(1, 2), revision=5, process=1),
        op("get", b"a", t=(3, 4), revision=5, process=2),
    ]
    assert check_revisions(ops) == []


def test_revisions_serializable_reads_are_exempt() -> None:
    ops = [*WRITES, op("get", b"k", t=(6, 7), revision=3, read=(b"1:0", 3), serializable=True)]
    assert check_revisions(ops, WRITES_TRUTH) == []


def test_revisions_stale_read_value() -> None:
    # At revision 4 the key was "0:1", not "1:0".
    ops = [op("get", b"k", t=(6, 7), revision=4, read=(b"1:0", 3))]
    (problem,) = check_revisions(ops, WRITES_TRUTH)
    assert "the history at revision 4 has (b'0:1', 4)" in problem


def test_revisions_read_of_a_deleted_key() -> None:
    truth = [*WRITES_TRUTH, delete(b"k", 6)]
    assert check_revisions([op("get", b"k", t=(0, 1), revision=6)], truth) == []
    (problem,) = check_revisions([op("get", b"k", t=(0, 1), revision=6, read=(b"1:1", 5))], truth)
    assert "has None" in problem


def test_revisions_read_of_a_key_never_written() -> None:
    phantom = op("get", b"new", t=(0, 1), revision=4, read=(b"x", 3))
    assert check_revisions([op("get", b"new", t=(0, 1), revision=4)], WRITES_TRUTH) == []
    (problem,) = check_revisions([phantom], WRITES_TRUTH)
    assert "no write to the key" in problem
    # With a history that starts later, a key written before it is unknown...
    assert check_revisions([phantom], WRITES_TRUTH, since=4) == []
    # ...but a mod_revision inside it must be there.
    late = op("get", b"new", t=(0, 1), revision=5, read=(b"x", 5))
    (problem,) = check_revisions([late], WRITES_TRUTH, since=4)
    assert "not in the history" in problem


def test_revisions_write_applied_before_it_was_sent() -> None:
    # p1's unknown put "1:1" shows up at revision 5, but a get that returned before the put
    # was even called had already seen revision 5.
    ops = [*WRITES, op("get", b"k", t=(2, 3), revision=5, read=(b"1:1", 5), process=2)]
    problems = check_revisions(ops, WRITES_TRUTH)
    assert any("saw revision 5 before the write was sent" in p for p in problems)


def test_revisions_process_goes_back() -> None:
    ops = [
        op("get", b"a", t=(0, 1), revision=7, serializable=False),
        op("get", b"a", t=(2, 3), revision=6),
    ]
    problems = check_revisions(ops)
    assert any("process 0 went back from revision 7" in p for p in problems)


def test_revisions_unfinished_operations_are_ignored() -> None:
    pending = op("put", b"a", b"0:0", t=(0, 0), outcome="unknown")
    pending.return_t = 0
    assert check_revisions([pending, op("get", b"a", t=(1, 2), revision=3)]) == []


def test_validate_ops_raises_every_problem() -> None:
    validate_ops([], [])
    with pytest.raises(OpViolation) as info:
        validate_ops(["Writes: x"], [], ["Revisions: y"])
    assert info.value.violations == ["Writes: x", "Revisions: y"]
    assert isinstance(info.value, AssertionError)


# ------------------------------------------------------------------------------- locks

L = b"lock/"
LA, LB = b"lock/a", b"lock/b"
# a enqueues at 2, b at 3; a releases at 5 (b owns from 5); the counter is written at 4 and 6.
LOCK_TRUTH = [
    put(LA, b"", 2),
    put(LB, b"", 3),
    put(b"counter", b"1", 4),
    delete(LA, 5),
    put(b"counter", b"2", 6, 4, 2),
    delete(LB, 7),
]
HOLDS = [LockHold(0, LA, 2), LockHold(1, LB, 5)]
FENCED = [
    op("fenced_put", b"counter", b"1", t=(0, 1), revision=4, succeeded=True, fence=LA),
    op("fenced_put", b"counter", b"2", t=(2, 3), revision=6, succeeded=True, fence=LB, process=1),
]


def in_lock(key: bytes) -> bool:
    return key.startswith(L)


def test_owners_follow_the_lowest_create_revision() -> None:
    owner = Owners(LOCK_TRUTH, in_lock)
    assert [owner(r) for r in range(1, 9)] == [None, LA, LA, LA, LB, LB, None, None]


def test_locks_accepts_a_correct_history() -> None:
    assert check_locks(HOLDS, FENCED, LOCK_TRUTH, in_lock) == []


def test_locks_acquisition_without_ownership() -> None:
    holds = [LockHold(0, LA, 2), LockHold(1, LB, 4)]  # b thought it held at 4: a still did
    problems = check_locks(holds, FENCED, LOCK_TRUTH, in_lock)
    assert any("believed it held the lock with b'lock/b' at revision 4" in p for p in problems)
    assert any("holds overlap" in p for p in problems)


def test_locks_fenced_write_by_a_non_owner() -> None:
    bad = op("fenced_put", b"counter", b"3", t=(4, 5), revision=4, succeeded=True, fence=LB)
    (problem,) = check_locks(HOLDS, [FENCED[1], bad], LOCK_TRUTH, in_lock)
    assert "but the owner at 3 was b'lock/a'" in problem


def test_locks_failed_fenced_write_is_fine() -> None:
    refused = op("fenced_put", b"counter", b"3", t=(4, 5), revision=6, succeeded=False, fence=LA)
    assert check_locks(HOLDS, [*FENCED, refused], LOCK_TRUTH, in_lock) == []


def test_locks_stale_holder_wrote_after_it_knew() -> None:
    holds = [LockHold(0, LA, 2, lost_t=1 * MS)]  # learnt of the loss at 1 ms, then won at 2
    late = op("fenced_put", b"counter", b"1", t=(2, 3), revision=4, succeeded=True, fence=LA)
    (problem,) = check_locks(holds, [late], LOCK_TRUTH, in_lock)
    assert "after process 0 learnt its lease was lost" in problem


# ------------------------------------------------------------------------------ leases

S = 1000  # ms per second
LEASE = 0x1234
LEASE_KEY = b"lease/k"


def lease_truth(deleted_at: int | None) -> list[Event]:
    attached = Event("PUT", KV(LEASE_KEY, b"v", 2, 2, 1, LEASE))
    return [attached] if deleted_at is None else [attached, delete(LEASE_KEY, deleted_at)]


def reads(*points: tuple[int, int]) -> list[Op]:
    """Gets of the lease key at ``(time ms, revision)``, each 1 ms long."""
    return [op("get", b"other", t=(at, at + 1), revision=r, process=9) for at, r in points]


def record(**changes: object) -> LeaseRecord:
    base = LeaseRecord(
        LEASE,
        3,
        (LEASE_KEY,),
        granted_t=0,
        renewed=[1 * S * MS],
        answered=[1 * S * MS + 2 * MS],
        sent=[1 * S * MS, 2 * S * MS],
        expired_t=4 * S * MS + 100 * MS,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_leases_accepts_a_correct_expiry() -> None:
    # Last answered keepalive at ~1 s, TTL 3: gone at revision 3 between 4.0 s and 4.5 s.
    ops = reads((3900, 2), (4600, 3))
    assert check_leases([record()], ops, lease_truth(3)) == []


def test_leases_client_noticed_too_late() -> None:
    (problem,) = check_leases([record(expired_t=5 * S * MS)], [], lease_truth(3))
    assert "LeaseExpiredError came 1.00 s after" in problem


def test_leases_keepalive_after_the_error() -> None:
    (problem,) = check_leases([record(sent=[1 * S * MS, 5 * S * MS])], [], lease_truth(3))
    assert "1 keepalive(s) sent after LeaseExpiredError" in problem


def test_leases_keys_deleted_too_early() -> None:
    ops = reads((3500, 3))  # revision 3 (the deletion) seen at 3.5 s < 1 s + 3 s
    (problem,) = check_leases([record()], ops, lease_truth(3))
    assert "was deleted at revision 3, already seen" in problem


def test_leases_a_revoke_allows_an_early_deletion() -> None:
    ops = reads((1500, 3))
    assert check_leases([record(revoked_t=1400 * MS)], ops, lease_truth(3)) == []


def test_leases_keys_kept_too_long() -> None:
    ops = reads((6000, 2))  # the lease is lost, yet its key is there 5 s after the last answer
    (problem,) = check_leases([record()], ops, lease_truth(None))
    assert "still existed at revision 2" in problem
    # A leader change may extend a lease: then there is no upper bound.
    assert check_leases([record(leader_changed=True)], ops, lease_truth(None)) == []


def test_leases_a_live_lease_keeps_its_keys() -> None:
    live = record(expired_t=None, renewed=[1 * S * MS, 2 * S * MS], answered=[2 * S * MS])
    ops = reads((3000, 3))  # deleted by 3 s though renewed at 2 s with TTL 3
    (problem,) = check_leases([live], ops, lease_truth(3))
    assert "before the last keepalive + TTL" in problem
    assert check_leases([live], reads((3000, 2)), lease_truth(None)) == []


# ---------------------------------------------------------------------------- recorder


class Applied(Exception):
    def __init__(self, applied: bool | None) -> None:
        super().__init__(f"applied={applied}")
        self.applied = applied


@pytest.mark.parametrize(
    ("error", "write", "outcome"),
    [
        (Applied(False), True, "fail"),
        (Applied(None), True, "unknown"),
        (TimeoutError(), True, "unknown"),
        (ValueError("bad key"), True, "fail"),
        (Applied(None), False, "fail"),
        (TimeoutError(), False, "fail"),
    ],
)
def test_classify(error: BaseException, write: bool, outcome: Outcome) -> None:
    assert classify(error, write=write) == outcome


@dataclasses.dataclass
class Header:
    revision: int


@dataclasses.dataclass
class FakeKV:
    value: bytes
    mod_revision: int


@dataclasses.dataclass
class FakeResult:
    header: Header
    kvs: list[FakeKV] = dataclasses.field(default_factory=list)


class FakeClient:
    """Answers puts with increasing revisions; the second put raises an unknown outcome."""

    def __init__(self) -> None:
        self.revision = 1
        self.calls = 0

    async def put(self, key: bytes, value: bytes) -> FakeResult:
        self.calls += 1
        if self.calls == 2:
            raise Applied(None)
        self.revision += 1
        return FakeResult(Header(self.revision))

    async def get_range(self, key: bytes, end: bytes, *, serializable: bool) -> FakeResult:
        assert end == key + b"\0"
        return FakeResult(Header(self.revision), [FakeKV(b"v", self.revision)])

    async def delete(self, key: bytes) -> FakeResult:
        raise ValueError("refused before any I/O")


async def test_recorder_records_every_outcome() -> None:
    recorder = Recorder(expected=(Applied, ValueError))
    client = FakeClient()
    first = await recorder.put(client, b"k", b"0:0")
    second = await recorder.put(client, b"k", b"0:1", process=1)
    read = await recorder.get(client, b"k", serializable=True)
    refused = await recorder.delete(client, b"k")
    assert (first.outcome, first.revision, first.value) == ("ok", 2, b"0:0")
    assert first.call_t <= first.return_t
    assert (second.outcome, second.process, type(second.error)) == ("unknown", 1, Applied)
    assert (read.outcome, read.read, read.serializable) == ("ok", (b"v", 2), True)
    assert (refused.outcome, type(refused.error)) == ("fail", ValueError)
    assert recorder.ops == [first, second, read, refused]
    assert recorder.counts() == {"delete fail": 1, "get ok": 1, "put ok": 1, "put unknown": 1}
    assert recorder.select(kind="put", outcome="ok") == [first]
    dumped = json.loads(recorder.to_json())
    assert dumped[1]["outcome"] == "unknown"
    assert dumped[2]["read"] == ["v", 2]
    assert "applied=None" in dumped[1]["error"]


async def test_recorder_raises_unexpected_errors_after_recording() -> None:
    recorder = Recorder(expected=(Applied,))
    with pytest.raises(ValueError, match="refused"):
        await recorder.delete(FakeClient(), b"k")
    (refused,) = recorder.ops
    assert refused.outcome == "fail"
    assert refused.return_t >= refused.call_t > 0


async def test_recorder_records_a_cancelled_write_as_unknown() -> None:
    import anyio

    recorder = Recorder()

    async def never() -> None:
        await anyio.sleep_forever()

    with anyio.move_on_after(0.01):
        await recorder.call(0, "put", b"k", b"0:0", never)
    (cancelled,) = recorder.ops
    assert (cancelled.outcome, cancelled.note, cancelled.error) == ("unknown", "cancelled", None)

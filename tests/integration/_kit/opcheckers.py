"""
Checkers of recorded operations (reliability.md §2.5) against the ground truth.

The watch validators are in ``checkers``; these are the others:

==============  ==============================================================================
Writes (G1)     every acknowledged put value is in the history exactly once, at the revision
                the client was told; every value whose write certainly failed (``.applied is
                False``, or a transaction whose compare did not hold) never; every value with an
                unknown outcome at most once; no value the clients never sent
Revisions (G3)  real-time order: an operation that starts after another returned sees at least
                its revision (more, if it is a put); a write that appears in the history was not
                applied before it was sent; a linearizable read returns the key as the history
                has it at the read's header revision; each process's revisions never go down
Locks (G8)      owner(r) is the key with the lowest create revision alive at r under the lock
                prefix; every acquisition held the lock at the revision it saw; every fenced
                write that succeeded at r was by owner(r - 1); claimed holds never overlap; a
                holder that learnt it lost its lease never succeeded a fenced write after that
Leases (G7)     the client noticed a lost lease within TTL + slack of its last answered
                keepalive; sent no keepalive after that; the lease's keys vanished no earlier than
                its last keepalive + TTL (or a revoke), and, without a leader change, no later
                than the last answer + TTL + slack
==============  ==============================================================================

Every checker is a pure function that returns a list of violations (strings that start with its
name); :func:`validate_ops` runs them and raises :class:`OpViolation`. Truth is a list of
``checkers.Event`` in revision order (``checkers.read_history``); operations are
``history.Op`` records. Times are ``time.monotonic_ns()``.
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
import itertools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from .checkers import Event
    from .history import Op

__all__ = [
    "LeaseRecord",
    "LockHold",
    "OpViolation",
    "Owners",
    "check_leases",
    "check_locks",
    "check_revisions",
    "check_writes",
    "validate_ops",
]

_NS = 1_000_000_000


class OpViolation(AssertionError):
    """Raised by :func:`validate_ops`; ``violations`` lists every message."""

    def __init__(self, violations: list[str]) -> None:
        super().__init__("operation checkers failed:\n  " + "\n  ".join(violations))
        self.violations = violations


def validate_ops(*problem_lists: Iterable[str]) -> None:
    """Raise :class:`OpViolation` if any checker reported anything."""
    problems = [problem for problems in problem_lists for problem in problems]
    if problems:
        raise OpViolation(problems)


def _done(op: Op) -> int:
    """When ``op`` returned; a record never finished counts as returning at infinity."""
    return op.return_t or 2**63


def _linearizable(op: Op) -> bool:
    return op.outcome == "ok" and op.revision > 0 and not op.serializable


def _creates_revision(op: Op) -> bool:
    """An ``ok`` operation that certainly made a new revision (a put, a writing transaction)."""
    return op.writes_value


# ------------------------------------------------------------------------------- writes


def check_writes(
    ops: Sequence[Op],
    truth: Sequence[Event],
    *,
    ignore: Callable[[Event], bool] | None = None,
) -> list[str]:
    """
    The write-outcome checker (G1).

    :param ops: the recorded operations; those with a ``value`` are writes of it
    :param truth: the history of the range the writes went to
    :param ignore: PUT events written by someone else (the oracle, a sentinel): not reported
        as "never sent"
    """
    problems: list[str] = []
    seen: dict[tuple[bytes, bytes], list[int]] = collections.defaultdict(list)
    for event in truth:
        if event.type == "PUT":
            seen[(event.key, event.kv.value)].append(event.revision)
    sent: dict[tuple[bytes, bytes], Op] = {}
    for op in ops:
        if op.value is None:
            continue
        marker = (op.key, op.value)
        if marker in sent:
            problems.append(f"Writes: value {op.value!r} was sent twice to {op.key!r}: not unique")
            continue
        sent[marker] = op
        revisions = seen.get(marker, [])
        if op.writes_value:
            if len(revisions) != 1:
                problems.append(
                    f"Writes: acknowledged {op.describe()} is in the history {len(revisions)} "
                    f"times (revisions {revisions})"
                )
            elif revisions[0] != op.revision:
                problems.append(
                    f"Writes: acknowledged {op.describe()} is in the history at revision "
                    f"{revisions[0]}, not at the {op.revision} the client was told"
                )
        elif op.outcome == "ok" or op.outcome == "fail":
            # ok with succeeded False: the compare failed, nothing was written
            if revisions:
                what = "a failed compare" if op.outcome == "ok" else "a definite failure"
                problems.append(
                    f"Writes: {op.describe()} reported {what}, yet its value is in the history "
                    f"at revisions {revisions}"
                )
        elif len(revisions) > 1:
            problems.append(
                f"Writes: {op.describe()} (unknown outcome) is in the history "
                f"{len(revisions)} times (revisions {revisions}): applied more than once"
            )
    for event in truth:
        if event.type != "PUT" or (event.key, event.kv.value) in sent:
            continue
        if ignore is not None and ignore(event):
            continue
        problems.append(f"Writes: {event} = {event.kv.value!r} was never sent by a client")
    return problems


# ---------------------------------------------------------------------------- revisions


def _state_at(truth: Sequence[Event]) -> Callable[[bytes, int], tuple[bool, Event | None]]:
    """
    ``lookup(key, revision) -> (known, last event of key at or below revision)``; ``known`` is
    ``False`` when the key has no event at or below ``revision`` in ``truth``.
    """
    by_key: dict[bytes, tuple[list[int], list[Event]]] = {}
    for event in truth:
        revisions, events = by_key.setdefault(event.key, ([], []))
        revisions.append(event.revision)
        events.append(event)

    def lookup(key: bytes, revision: int) -> tuple[bool, Event | None]:
        found = by_key.get(key)
        if found is None:
            return False, None
        index = bisect.bisect_right(found[0], revision)
        return (index > 0), (found[1][index - 1] if index else None)

    return lookup


def check_revisions(
    ops: Sequence[Op],
    truth: Sequence[Event] | None = None,
    *,
    since: int = 1,
) -> list[str]:
    """
    The revision-linearizability checker (G3), a cheap stand-in for porcupine.

    :param ops: every recorded operation (reads, writes, any outcome)
    :param truth: the history of the keys read and written (``None``: check real-time order
        and per-process order only)
    :param since: the first revision ``truth`` covers; before it, a key's state is unknown
    """
    problems: list[str] = []
    linear = [op for op in ops if _linearizable(op)]

    # 1. Real time: B starts after A returned -> B.revision >= A.revision (> for a put).
    by_return = sorted(linear, key=lambda op: op.return_t)
    returned: list[int] = [op.return_t for op in by_return]
    # prefix maxima of revision over ops sorted by return time
    best: list[Op] = []
    for op in by_return:
        best.append(op if not best or op.revision > best[-1].revision else best[-1])
    for b in sorted(linear, key=lambda op: op.call_t):
        index = bisect.bisect_left(returned, b.call_t)  # ops that returned before b.call_t
        if not index:
            continue
        a = best[index - 1]
        if b.revision < a.revision or (_creates_revision(b) and b.revision == a.revision):
            relation = "<" if b.revision < a.revision else "=="
            problems.append(
                f"Revisions: {b.describe()} started after {a.describe()} returned, yet its "
                f"revision {b.revision} {relation} {a.revision}"
            )

    # 2. A write in the history was not applied before it was sent: every operation that
    #    returned before the write's call saw an older revision.
    if truth is not None:
        applied_at: dict[tuple[bytes, bytes], int] = {}
        for event in truth:
            if event.type == "PUT":
                applied_at.setdefault((event.key, event.kv.value), event.revision)
        for w in ops:
            if w.value is None or not w.is_write:
                continue
            revision = applied_at.get((w.key, w.value))
            if revision is None:
                continue
            index = bisect.bisect_left(returned, w.call_t)
            if index and best[index - 1].revision >= revision:
                a = best[index - 1]
                problems.append(
                    f"Revisions: {w.describe()} is in the history at revision {revision}, "
                    f"but {a.describe()} saw revision {a.revision} before the write was sent"
                )

    # 3. A linearizable read returns the key as of its header revision.
    if truth is not None:
        lookup = _state_at(truth)
        for b in linear:
            if b.kind != "get":
                continue
            known, last = lookup(b.key, b.revision)
            if not known:
                if since <= 1 and b.read is not None:
                    problems.append(
                        f"Revisions: {b.describe()} read {b.read!r}; the history has no write "
                        f"to the key at or below {b.revision}"
                    )
                elif b.read is not None and b.read[1] >= since:
                    problems.append(
                        f"Revisions: {b.describe()} read mod_revision {b.read[1]}, which is "
                        "not in the history"
                    )
                continue
            assert last is not None
            expected = (last.kv.value, last.revision) if last.type == "PUT" else None
            if b.read != expected:
                problems.append(
                    f"Revisions: {b.describe()} read {b.read!r}, the history at revision "
                    f"{b.revision} has {expected!r}"
                )

    # 4. Each process's revisions never go down (its calls are sequential).
    by_process: dict[int, list[Op]] = collections.defaultdict(list)
    for op in linear:
        by_process[op.process].append(op)
    for process, mine in sorted(by_process.items()):
        mine.sort(key=lambda op: op.call_t)
        for before, after in itertools.pairwise(mine):
            if after.call_t >= before.return_t and after.revision < before.revision:
                problems.append(
                    f"Revisions: process {process} went back from revision {before.revision} "
                    f"({before.describe()}) to {after.revision} ({after.describe()})"
                )
    return problems


# -------------------------------------------------------------------------------- locks


@dataclasses.dataclass
class LockHold:
    """One successful lock acquisition, as the client saw it."""

    process: int
    #: the ownership key (``name/<lease hex>``)
    key: bytes
    #: a header revision at which the client believed it held the lock
    acquired_revision: int
    #: when the client learnt that its lease was lost (``LeaseExpiredError``), or ``None``
    lost_t: int | None = None


class Owners:
    """``owner(r)``: the key with the lowest create revision alive at ``r`` under a prefix."""

    def __init__(self, truth: Iterable[Event], in_prefix: Callable[[bytes], bool]) -> None:
        alive: dict[bytes, int] = {}
        self._revisions: list[int] = [0]
        self._owners: list[bytes | None] = [None]
        #: for each key, the revisions of its deletions
        self.deleted: dict[bytes, list[int]] = collections.defaultdict(list)
        for event in truth:
            if not in_prefix(event.key):
                continue
            if event.type == "PUT":
                alive.setdefault(event.key, event.kv.create_revision)
            else:
                alive.pop(event.key, None)
                self.deleted[event.key].append(event.revision)
            owner = min(alive, key=alive.__getitem__) if alive else None
            if owner != self._owners[-1]:
                if self._revisions[-1] == event.revision:  # several events of one revision
                    self._owners[-1] = owner
                else:
                    self._revisions.append(event.revision)
                    self._owners.append(owner)

    def __call__(self, revision: int) -> bytes | None:
        return self._owners[bisect.bisect_right(self._revisions, revision) - 1]


def check_locks(
    holds: Sequence[LockHold],
    ops: Sequence[Op],
    truth: Sequence[Event],
    in_prefix: Callable[[bytes], bool],
) -> list[str]:
    """
    The lock-owner checker (G8).

    :param holds: every acquisition that returned
    :param ops: the recorded operations; fenced writes have ``fence`` set to the lock key
    :param truth: the history of the lock prefix (other keys are ignored)
    :param in_prefix: whether a key is a lock key (under the lock's prefix)
    """
    problems: list[str] = []
    owner = Owners(truth, in_prefix)
    for hold in holds:
        holder = owner(hold.acquired_revision)
        if holder != hold.key:
            problems.append(
                f"Locks: process {hold.process} believed it held the lock with {hold.key!r} "
                f"at revision {hold.acquired_revision}, but the owner was {holder!r}"
            )
    for op in ops:
        if op.fence is None or not op.writes_value:
            continue
        holder = owner(op.revision - 1)
        if holder != op.fence:
            problems.append(
                f"Locks: fenced {op.describe()} succeeded at revision {op.revision} for "
                f"{op.fence!r}, but the owner at {op.revision - 1} was {holder!r}"
            )
    # Claimed holds, from the acquisition to the key's deletion, never overlap.
    claims: list[tuple[int, int, LockHold]] = []
    for hold in holds:
        ends = [r for r in owner.deleted.get(hold.key, []) if r > hold.acquired_revision]
        claims.append((hold.acquired_revision, min(ends) if ends else 2**63, hold))
    claims.sort(key=lambda claim: claim[0])
    latest: tuple[int, int, LockHold] | None = None  # the claim that reaches furthest so far
    for claim in claims:
        if latest is not None and claim[0] < latest[1] and claim[2].key != latest[2].key:
            (start_a, end_a, a), (start_b, _, b) = latest, claim
            problems.append(
                f"Locks: holds overlap: process {a.process} ({a.key!r}) in [{start_a}, "
                f"{end_a}) and process {b.process} ({b.key!r}) from {start_b}"
            )
        if latest is None or claim[1] > latest[1]:
            latest = claim
    # A holder that knew it lost the lease never won a fenced write afterwards.
    problems.extend(
        f"Locks: {op.describe()} succeeded after process {hold.process} learnt its lease was lost"
        for hold in holds
        if hold.lost_t is not None
        for op in ops
        if op.fence == hold.key
        and op.process == hold.process
        and op.call_t > hold.lost_t
        and op.writes_value
    )
    return problems


# ------------------------------------------------------------------------------- leases


@dataclasses.dataclass
class LeaseRecord:
    """What a client did and saw with one lease; times are ``time.monotonic_ns()``."""

    lease_id: int
    #: the granted TTL in seconds
    ttl: float
    #: the keys put with the lease
    keys: tuple[bytes, ...] = ()
    #: when the grant was sent (the server cannot expire the lease before this + TTL)
    granted_t: int = 0
    #: send times of the keepalive requests that were answered with TTL > 0
    renewed: list[int] = dataclasses.field(default_factory=list)
    #: when those answers arrived
    answered: list[int] = dataclasses.field(default_factory=list)
    #: send times of every keepalive request (answered or not), when known
    sent: list[int] = dataclasses.field(default_factory=list)
    #: when the client raised ``LeaseExpiredError`` for it, or ``None``
    expired_t: int | None = None
    #: when a revoke (by the client or anyone else) was sent, or ``None``
    revoked_t: int | None = None
    #: a leader change happened meanwhile: the server may keep the lease longer
    leader_changed: bool = False


def check_leases(
    leases: Sequence[LeaseRecord],
    ops: Sequence[Op],
    truth: Sequence[Event],
    *,
    slack: float = 0.7,
) -> list[str]:
    """
    The lease-timing checker (G7).

    :param leases: one record per lease
    :param ops: the recorded operations: their revisions and times place the deletions in time
    :param truth: the history of the leases' keys
    :param slack: seconds allowed for scheduling, polling and etcd's 0.5 s lessor granularity
    """
    problems: list[str] = []
    slack_ns = int(slack * _NS)
    linear = [op for op in ops if _linearizable(op)]
    for lease in leases:
        ttl_ns = int(lease.ttl * _NS)
        name = f"lease {lease.lease_id:x}"
        last_renewed = max([lease.granted_t, *lease.renewed])
        last_answer = max([lease.granted_t, *lease.answered, *lease.renewed])
        if lease.expired_t is not None:
            late = lease.expired_t - (last_answer + ttl_ns)
            if late > slack_ns:
                problems.append(
                    f"Leases: {name}: LeaseExpiredError came {late / _NS:.2f} s after the last "
                    f"answered keepalive + TTL {lease.ttl} s (slack {slack} s)"
                )
            after = [t for t in lease.sent if t > lease.expired_t]
            if after:
                problems.append(
                    f"Leases: {name}: {len(after)} keepalive(s) sent after LeaseExpiredError"
                )
        # Lower bound: the keys cannot vanish before the last renewal + TTL, or a revoke.
        earliest = last_renewed + ttl_ns
        if lease.revoked_t is not None:
            earliest = min(earliest, lease.revoked_t)
        for key in lease.keys:
            attached = [
                e.revision
                for e in truth
                if e.key == key and e.type == "PUT" and e.kv.lease == lease.lease_id
            ]
            if not attached:
                continue
            deletes = [e.revision for e in truth if e.key == key and e.type == "DELETE"]
            deleted = next((r for r in deletes if r > attached[0]), None)
            if deleted is not None:
                early = [op for op in linear if op.return_t < earliest and op.revision >= deleted]
                if early:
                    op = min(early, key=lambda op: op.return_t)
                    problems.append(
                        f"Leases: {name}: {key!r} was deleted at revision {deleted}, already "
                        f"seen by {op.describe()} {(earliest - op.return_t) / _NS:.2f} s before "
                        "the last keepalive + TTL (or revoke)"
                    )
            # Upper bound: a lease the client lost (not revoked) is gone by the last answer +
            # TTL + slack, unless a new leader extended it.
            if lease.expired_t is None or lease.revoked_t is not None or lease.leader_changed:
                continue
            latest = last_answer + ttl_ns + slack_ns
            late_ops = [op for op in linear if op.call_t > latest]
            if late_ops and (deleted is None or any(op.revision < deleted for op in late_ops)):
                op = min(late_ops, key=lambda op: op.revision)
                problems.append(
                    f"Leases: {name}: {key!r} still existed at revision {op.revision} "
                    f"({op.describe()}), {(op.call_t - last_answer) / _NS:.2f} s after the last "
                    f"answered keepalive (TTL {lease.ttl} s)"
                )
    return problems

"""
Watch validators (reliability.md §2.5), ported from etcd's robustness suite
(``tests/robustness/validate/watch.go``), and the ground truth they check against.

A test records what one watch delivered as a :class:`WatchRecord`: the request
(:class:`WatchSpec`), every response in order (:class:`Response`: the events of one batch, or a
progress notification), and how it ended. The ground truth is the key range's complete history,
read by :func:`read_history` through etcd's JSON gateway with ``urllib`` (the :class:`Oracle`),
never through the client under test. The validators are pure functions of the two:

==============  ==============================================================================
Ordered         event revisions never go down
Unique          no ``(key, revision)`` is delivered twice
Atomic          the events of one revision arrive together in one response, all of them
Reliable        no gap: every matching event from the first revision the watch asked for up to
                the last one it delivered (or a progress notification vouched for) is delivered
Resumable       a watch with a start revision begins with the first matching event at or after it
Bookmarkable    a progress notification is not below an event already delivered, and no event
                at or below it comes after it
PrevKV          ``prev_kv`` is the key as it was just before (or ``None``), and only when asked
IsCreate        a PUT is a create (``create_revision == mod_revision``, version 1) exactly when
                the key did not exist before
Filter          only keys in the range; no PUT with ``no_put``, no DELETE with ``no_delete``
Compacted       a watch that ended with ``WatchCompactedError(c)`` delivered nothing at or after c
==============  ==============================================================================

Each validator returns a list of violations (strings that start with its name);
:func:`validate_watch` runs them all and raises :class:`WatchViolation` listing every one.
This module never imports etcdanyio: tests convert the client's batches into these types.
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import json
import urllib.request
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from .oracle import Oracle

__all__ = [
    "KV",
    "VALIDATORS",
    "Event",
    "HistoryError",
    "Response",
    "WatchRecord",
    "WatchSpec",
    "WatchViolation",
    "read_history",
    "validate_watch",
]

EventType = Literal["PUT", "DELETE"]


@dataclasses.dataclass(frozen=True)
class KV:
    """A key-value pair as etcd reports it (a DELETE event's has only the key and revision)."""

    key: bytes
    value: bytes = b""
    create_revision: int = 0
    mod_revision: int = 0
    version: int = 0
    lease: int = 0


@dataclasses.dataclass(frozen=True)
class Event:
    """One change: ``type`` is ``"PUT"`` or ``"DELETE"``; ``kv.mod_revision`` is its revision."""

    type: EventType
    kv: KV
    prev_kv: KV | None = None

    @property
    def revision(self) -> int:
        return self.kv.mod_revision

    @property
    def key(self) -> bytes:
        return self.kv.key

    @property
    def identity(self) -> tuple[object, ...]:
        """What must match the history exactly (``prev_kv`` is PrevKV's business)."""
        return (self.type, self.kv)

    def __str__(self) -> str:
        return f"{self.type} {self.key!r}@{self.revision}"


@dataclasses.dataclass(frozen=True)
class Response:
    """One delivered batch: events (all of one or more revisions), or a progress notification."""

    events: tuple[Event, ...] = ()
    #: for a progress notification, the revision it vouches for; else the last event's
    revision: int = 0

    @property
    def is_progress(self) -> bool:
        return not self.events


@dataclasses.dataclass(frozen=True)
class WatchSpec:
    """
    What the watch asked for, in etcd's terms: ``range_end`` ``b""`` is the one key ``key``,
    ``b"\\0"`` every key from ``key`` on, anything else ``[key, range_end)``.
    """

    key: bytes
    range_end: bytes = b""
    #: 0: "from now" (then :attr:`WatchRecord.created_revision` + 1)
    start_revision: int = 0
    prev_kv: bool = False
    no_put: bool = False
    no_delete: bool = False

    def in_range(self, key: bytes) -> bool:
        if not self.range_end:
            return key == self.key
        if self.range_end == b"\0":
            return key >= self.key
        return self.key <= key < self.range_end

    def wants(self, event: Event) -> bool:
        """Whether the watch should deliver ``event`` (range and filters)."""
        if not self.in_range(event.key):
            return False
        if event.type == "PUT":
            return not self.no_put
        return not self.no_delete


@dataclasses.dataclass
class WatchRecord:
    """What one watch delivered, in order, and how it ended."""

    spec: WatchSpec
    responses: list[Response] = dataclasses.field(default_factory=list)
    #: the store's revision when the watch was established (for ``start_revision=0``)
    created_revision: int = 0
    #: ``WatchCompactedError.compact_revision`` if the watch ended with it
    compact_revision: int | None = None

    @property
    def first_revision(self) -> int:
        """The first revision the watch promised to deliver from (0: unknown)."""
        if self.spec.start_revision:
            return self.spec.start_revision
        return self.created_revision + 1 if self.created_revision else 0

    @property
    def events(self) -> list[Event]:
        return [event for response in self.responses for event in response.events]


class WatchViolation(AssertionError):
    """Raised by :func:`validate_watch`; ``violations`` lists every message."""

    def __init__(self, violations: list[str]) -> None:
        super().__init__("watch validators failed:\n  " + "\n  ".join(violations))
        self.violations = violations


# ---------------------------------------------------------------------------- helpers


def _states_before(truth: Sequence[Event]) -> dict[tuple[bytes, int], KV | None]:
    """``(key, revision) -> the key before that event`` by replaying the history."""
    state: dict[bytes, KV] = {}
    before: dict[tuple[bytes, int], KV | None] = {}
    for event in truth:
        before[(event.key, event.revision)] = state.get(event.key)
        if event.type == "PUT":
            state[event.key] = event.kv
        else:
            state.pop(event.key, None)
    return before


def _covered(record: WatchRecord) -> int:
    """The revision up to which the watch vouched it delivered everything."""
    covered = 0
    for response in record.responses:
        covered = max(covered, response.revision if response.is_progress else 0)
        for event in response.events:
            covered = max(covered, event.revision)
    return covered


def _short(events: Iterable[Event], limit: int = 8) -> str:
    listed = [str(e) for e in events]
    more = f" ... (+{len(listed) - limit})" if len(listed) > limit else ""
    return "[" + ", ".join(listed[:limit]) + more + "]"


# ------------------------------------------------------------------------- validators


def validate_ordered(record: WatchRecord, truth: Sequence[Event]) -> list[str]:
    problems = []
    last = 0
    for i, response in enumerate(record.responses):
        for event in response.events:
            if event.revision < last:
                problems.append(f"Ordered: {event} after revision {last} (response {i})")
            last = max(last, event.revision)
    return problems


def validate_unique(record: WatchRecord, truth: Sequence[Event]) -> list[str]:
    counts = collections.Counter((e.key, e.revision) for e in record.events)
    return [
        f"Unique: {key!r}@{revision} delivered {n} times"
        for (key, revision), n in counts.items()
        if n > 1
    ]


def validate_atomic(record: WatchRecord, truth: Sequence[Event]) -> list[str]:
    problems = []
    by_revision: dict[int, list[Event]] = collections.defaultdict(list)
    for event in truth:
        if record.spec.wants(event):
            by_revision[event.revision].append(event)
    previous_last: int | None = None
    for i, response in enumerate(record.responses):
        if not response.events:
            continue
        if previous_last is not None and response.events[0].revision == previous_last:
            problems.append(
                f"Atomic: revision {previous_last} split across responses {i - 1} and {i}"
            )
        previous_last = response.events[-1].revision
        delivered: dict[int, set[tuple[object, ...]]] = collections.defaultdict(set)
        for event in response.events:
            delivered[event.revision].add(event.identity)
        for revision, identities in delivered.items():
            expected = by_revision.get(revision, [])
            missing = [e for e in expected if e.identity not in identities]
            if missing:
                problems.append(
                    f"Atomic: response {i} has {len(expected) - len(missing)} of the "
                    f"{len(expected)} events of revision {revision}; missing {_short(missing)}"
                )
    return problems


def validate_reliable(record: WatchRecord, truth: Sequence[Event]) -> list[str]:
    delivered = record.events
    covered = _covered(record)
    first = record.first_revision or (delivered[0].revision if delivered else 0)
    if not covered:
        return []
    expected = [e for e in truth if record.spec.wants(e) and first <= e.revision <= covered]
    got = [e.identity for e in delivered]
    want = [e.identity for e in expected]
    if got == want:
        return []
    problems = []
    got_counts = collections.Counter(got)
    want_counts = collections.Counter(want)
    missing = [e for e in expected if got_counts[e.identity] < want_counts[e.identity]]
    extra = [e for e in delivered if got_counts[e.identity] > want_counts[e.identity]]
    if missing:
        problems.append(
            f"Reliable: gap: {len(missing)} event(s) in [{first}, {covered}] not delivered: "
            f"{_short(missing)}"
        )
    if extra:
        problems.append(
            f"Reliable: {len(extra)} delivered event(s) not in the history once: {_short(extra)}"
        )
    if not missing and not extra:
        problems.append("Reliable: the events are all there but not in history order")
    return problems


def validate_resumable(record: WatchRecord, truth: Sequence[Event]) -> list[str]:
    first = record.first_revision
    delivered = record.events
    if not first or not delivered:
        return []
    expected = next((e for e in truth if record.spec.wants(e) and e.revision >= first), None)
    if expected is None:
        return [f"Resumable: delivered {delivered[0]} but the history has nothing from {first}"]
    if delivered[0].identity != expected.identity:
        message = (
            f"Resumable: watch from revision {first} began with {delivered[0]}, "
            f"the history with {expected}"
        )
        return [message]
    return []


def validate_bookmarkable(record: WatchRecord, truth: Sequence[Event]) -> list[str]:
    problems = []
    last_event = 0
    last_progress = 0
    for i, response in enumerate(record.responses):
        if response.is_progress:
            if response.revision < last_event:
                problems.append(
                    f"Bookmarkable: progress notification at {response.revision} (response {i}) "
                    f"after an event at {last_event}"
                )
            if response.revision < last_progress:
                problems.append(
                    f"Bookmarkable: progress notification went back from {last_progress} "
                    f"to {response.revision} (response {i})"
                )
            last_progress = max(last_progress, response.revision)
            continue
        for event in response.events:
            if event.revision <= last_progress:
                problems.append(
                    f"Bookmarkable: {event} (response {i}) after a progress notification "
                    f"at {last_progress}"
                )
            last_event = max(last_event, event.revision)
    return problems


def validate_prev_kv(record: WatchRecord, truth: Sequence[Event]) -> list[str]:
    problems = []
    before = _states_before(truth)
    for event in record.events:
        if not record.spec.prev_kv:
            if event.prev_kv is not None:
                problems.append(f"PrevKV: {event} has a prev_kv the watch did not ask for")
            continue
        marker = (event.key, event.revision)
        if marker not in before:
            continue  # not in the history at all: Reliable reports it
        if event.prev_kv != before[marker]:
            problems.append(
                f"PrevKV: {event} has prev_kv {event.prev_kv}, the history {before[marker]}"
            )
    return problems


def validate_is_create(record: WatchRecord, truth: Sequence[Event]) -> list[str]:
    problems = []
    before = _states_before(truth)
    for event in record.events:
        if event.type != "PUT":
            continue
        marker = (event.key, event.revision)
        if marker not in before:
            continue
        is_create = event.kv.create_revision == event.revision and event.kv.version == 1
        if is_create != (before[marker] is None):
            kind = "a create" if is_create else "an update"
            problems.append(f"IsCreate: {event} looks like {kind}, the history says otherwise")
    return problems


def validate_filter(record: WatchRecord, truth: Sequence[Event]) -> list[str]:
    spec = record.spec
    problems = []
    for event in record.events:
        if not spec.in_range(event.key):
            problems.append(f"Filter: {event} is outside the watched range")
        elif not spec.wants(event):
            problems.append(f"Filter: {event} should have been filtered out")
    return problems


def validate_compacted(record: WatchRecord, truth: Sequence[Event]) -> list[str]:
    compact = record.compact_revision
    if compact is None:
        return []
    late = [e for e in record.events if e.revision >= compact]
    if late:
        return [f"Compacted: delivered {_short(late)} at or after compact revision {compact}"]
    return []


VALIDATORS: dict[str, Callable[[WatchRecord, Sequence[Event]], list[str]]] = {
    "Ordered": validate_ordered,
    "Unique": validate_unique,
    "Atomic": validate_atomic,
    "Reliable": validate_reliable,
    "Resumable": validate_resumable,
    "Bookmarkable": validate_bookmarkable,
    "PrevKV": validate_prev_kv,
    "IsCreate": validate_is_create,
    "Filter": validate_filter,
    "Compacted": validate_compacted,
}


def check_watch(record: WatchRecord, truth: Sequence[Event]) -> list[str]:
    """Every violation of every validator (an empty list: the watch is correct)."""
    return [problem for validator in VALIDATORS.values() for problem in validator(record, truth)]


def validate_watch(record: WatchRecord, truth: Sequence[Event]) -> None:
    """
    Run every validator on ``record`` against ``truth`` (the range's history in revision order).

    :raises WatchViolation: listing every violation
    """
    if problems := check_watch(record, truth):
        raise WatchViolation(problems)


# ------------------------------------------------------------------------ ground truth


class HistoryError(Exception):
    """Raised when the gateway watch cannot give the complete history (e.g. compacted)."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str | None) -> bytes:
    return base64.b64decode(text) if text else b""


def _json_kv(raw: dict[str, Any]) -> KV:
    return KV(
        key=_unb64(raw.get("key")),
        value=_unb64(raw.get("value")),
        create_revision=int(raw.get("create_revision", 0)),
        mod_revision=int(raw.get("mod_revision", 0)),
        version=int(raw.get("version", 0)),
        lease=int(raw.get("lease", 0)),
    )


def read_history(
    oracle: Oracle,
    key: bytes,
    range_end: bytes,
    *,
    start_revision: int = 1,
    timeout: float = 5.0,
) -> list[Event]:
    """
    The complete history of ``[key, range_end)`` from ``start_revision`` until now, in revision
    order, each event's ``prev_kv`` replayed from the history itself (blocking: run it in a
    thread). Read before any compaction of that range's revisions.

    A gateway watch reports a catch-up batch with the store's current revision, so its header
    cannot say when the history is complete. Instead a sentinel is put at ``range_end`` (just
    outside the range, inside the watch) and the watch is read until the sentinel's event.

    :raises HistoryError: if the watch is cancelled (compacted) or ends early
    :raises OSError: if the gateway does not answer within ``timeout``
    """
    if range_end in (b"", b"\0"):
        raise ValueError("read_history needs a bounded range [key, range_end)")
    sentinel = range_end
    sentinel_revision = oracle.put(sentinel, b"ground-truth sentinel")
    body = {
        "create_request": {
            "key": _b64(key),
            "range_end": _b64(range_end + b"\0"),
            "start_revision": str(start_revision),
        }
    }
    request = urllib.request.Request(
        f"{oracle.endpoint}/v3/watch",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    events: list[Event] = []
    with urllib.request.urlopen(request, timeout=timeout) as reply:
        while True:
            line = reply.readline()
            if not line:
                raise HistoryError("the gateway watch ended before the sentinel")
            message = json.loads(line)
            if "error" in message:
                raise HistoryError(f"gateway watch failed: {message['error']}")
            result = message.get("result", {})
            if result.get("canceled"):
                raise HistoryError(
                    f"gateway watch canceled: compact_revision={result.get('compact_revision')} "
                    f"reason={result.get('cancel_reason')!r}"
                )
            for raw in result.get("events", []):
                kv = _json_kv(raw["kv"])
                if kv.key == sentinel:
                    if kv.mod_revision >= sentinel_revision:
                        return _with_prev(events)
                    continue
                events.append(Event("DELETE" if raw.get("type") == "DELETE" else "PUT", kv))


def _with_prev(events: list[Event]) -> list[Event]:
    before = _states_before(events)
    return [dataclasses.replace(e, prev_kv=before[(e.key, e.revision)]) for e in events]

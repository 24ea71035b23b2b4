"""
The history recorder (reliability.md §2.5): one :class:`Op` per client operation.

Each record has the call and return times (``time.monotonic_ns()``), the operation (kind, key,
the unique value of a write), the result (header revision, what a read saw, whether a
transaction's compare held) or the error, and an outcome:

- ``"ok"``: the call returned;
- ``"fail"``: it raised, and the request certainly did not take effect (the error's ``.applied``
  is ``False``, or it was a read, or a bad argument was refused before any I/O);
- ``"unknown"``: it raised, and the write may have been applied (``.applied is None``, a
  ``TimeoutError``, a cancellation while in flight).

The recorder never imports etcdanyio: it calls whatever client it is given and reads the outcome
from the exception's ``.applied`` attribute, so the checkers of ``opcheckers`` judge the client
by what it claimed, not by its own code. Every put value must be unique (``f"{process}:{seq}"``).
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable

__all__ = ["WRITE_KINDS", "Op", "Outcome", "Recorder", "classify"]

Outcome = Literal["ok", "fail", "unknown"]

#: Kinds of operation that may change state (an error on them may leave the outcome unknown).
WRITE_KINDS = frozenset(
    {"put", "delete", "txn", "fenced_put", "lease_grant", "lease_revoke", "lock_acquire"}
)


@dataclasses.dataclass
class Op:
    """One client operation and what became of it."""

    #: which client (or task) issued it; one process issues its operations one at a time
    process: int
    #: ``"put"``, ``"get"``, ``"delete"``, ``"txn"``, ``"fenced_put"``, ``"lock_acquire"``, ...
    kind: str
    key: bytes
    #: the (unique) value a write puts, ``None`` for reads and deletes
    value: bytes | None = None
    #: ``time.monotonic_ns()`` just before the call and just after it returned or raised
    call_t: int = 0
    return_t: int = 0
    outcome: Outcome = "unknown"
    #: the header revision of an ``ok`` result (0 if there was none)
    revision: int = 0
    #: for an ``ok`` read: ``(value, mod_revision)`` of the key, or ``None`` if it was absent
    read: tuple[bytes, int] | None = None
    #: for an ``ok`` transaction: whether its compare held
    succeeded: bool | None = None
    #: a serializable read (may be stale: not held to real-time order)
    serializable: bool = False
    #: for a fenced write: the lock key whose ownership the transaction compared
    fence: bytes | None = None
    error: BaseException | None = None
    #: free text, e.g. ``"cancelled"``
    note: str = ""

    @property
    def is_write(self) -> bool:
        return self.kind in WRITE_KINDS

    @property
    def writes_value(self) -> bool:
        """Whether an ``ok`` outcome means ``value`` is now in the store at ``revision``."""
        return self.value is not None and self.outcome == "ok" and self.succeeded is not False

    def describe(self) -> str:
        value = "" if self.value is None else f"={self.value!r}"
        result = f"@{self.revision}" if self.outcome == "ok" else ""
        if self.error is not None:
            result = f" {type(self.error).__name__}"
        return f"p{self.process} {self.kind} {self.key!r}{value} -> {self.outcome}{result}"

    def to_json(self) -> dict[str, Any]:
        return {
            "process": self.process,
            "kind": self.kind,
            "key": self.key.decode("utf-8", "backslashreplace"),
            "value": None if self.value is None else self.value.decode("utf-8", "backslashreplace"),
            "call_t": self.call_t,
            "return_t": self.return_t,
            "outcome": self.outcome,
            "revision": self.revision,
            "read": None
            if self.read is None
            else [self.read[0].decode("utf-8", "backslashreplace"), self.read[1]],
            "succeeded": self.succeeded,
            "serializable": self.serializable,
            "fence": None if self.fence is None else self.fence.decode("utf-8", "backslashreplace"),
            "error": None if self.error is None else repr(self.error),
            "note": self.note,
        }


def classify(error: BaseException, *, write: bool) -> Outcome:
    """The outcome of an operation that raised ``error``."""
    if not write:
        return "fail"  # a read has nothing to apply
    if hasattr(error, "applied"):
        return "fail" if error.applied is False else "unknown"
    if isinstance(error, (TypeError, ValueError)):
        return "fail"  # refused before any I/O
    return "unknown"  # a deadline, a cancellation, anything else: it may have been sent


def _header_revision(result: object) -> int:
    header = getattr(result, "header", None)
    revision = getattr(header, "revision", 0)
    return revision if isinstance(revision, int) else 0


class Recorder:
    """
    Records every operation made through it, in call order (:attr:`ops`).

    :param expected: the exceptions that are recorded and swallowed (the caller inspects
        ``op.error``); anything else is recorded and raised again. Cancellation is always
        recorded (the operation is unknown if it writes) and raised again.
    """

    def __init__(self, *, expected: tuple[type[BaseException], ...] = (Exception,)) -> None:
        self.expected = expected
        self.ops: list[Op] = []

    # ----------------------------------------------------------------- recording

    def begin(
        self,
        process: int,
        kind: str,
        key: bytes,
        value: bytes | None = None,
        *,
        serializable: bool = False,
        fence: bytes | None = None,
    ) -> Op:
        """Start a record (its ``call_t`` is now); finish it with :meth:`ok` or :meth:`failed`."""
        op = Op(process, kind, key, value, serializable=serializable, fence=fence)
        self.ops.append(op)
        op.call_t = time.monotonic_ns()
        return op

    def ok(self, op: Op, result: object = None, *, revision: int | None = None) -> None:
        """The operation returned ``result`` (its header revision is read from it)."""
        op.return_t = time.monotonic_ns()
        op.outcome = "ok"
        op.revision = _header_revision(result) if revision is None else revision
        kvs = getattr(result, "kvs", None)
        if isinstance(kvs, list):
            op.read = (kvs[0].value, kvs[0].mod_revision) if kvs else None
        succeeded = getattr(result, "succeeded", None)
        if isinstance(succeeded, bool):
            op.succeeded = succeeded

    def failed(self, op: Op, error: BaseException) -> None:
        """The operation raised ``error``."""
        op.return_t = time.monotonic_ns()
        op.outcome = classify(error, write=op.is_write)
        if isinstance(error, Exception):
            op.error = error
        else:
            op.note = "cancelled"

    async def call(
        self,
        process: int,
        kind: str,
        key: bytes,
        value: bytes | None,
        function: Callable[[], Awaitable[object]],
        *,
        serializable: bool = False,
        fence: bytes | None = None,
    ) -> Op:
        """Record ``await function()`` as one operation and return its record."""
        op = self.begin(process, kind, key, value, serializable=serializable, fence=fence)
        try:
            result = await function()
        except BaseException as exc:
            self.failed(op, exc)
            if not isinstance(exc, self.expected):
                raise
            return op
        self.ok(op, result)
        return op

    # ------------------------------------------------------- common operations

    async def put(self, client: Any, key: bytes, value: bytes, *, process: int = 0) -> Op:
        return await self.call(process, "put", key, value, lambda: client.put(key, value))

    async def get(
        self, client: Any, key: bytes, *, process: int = 0, serializable: bool = False
    ) -> Op:
        """A single-key range, so that the result carries the header revision."""
        return await self.call(
            process,
            "get",
            key,
            None,
            lambda: client.get_range(key, key + b"\0", serializable=serializable),
            serializable=serializable,
        )

    async def delete(self, client: Any, key: bytes, *, process: int = 0) -> Op:
        return await self.call(process, "delete", key, None, lambda: client.delete(key))

    # ------------------------------------------------------------------ queries

    def select(self, *, kind: str | None = None, outcome: Outcome | None = None) -> list[Op]:
        return [
            op
            for op in self.ops
            if (kind is None or op.kind == kind) and (outcome is None or op.outcome == outcome)
        ]

    def counts(self) -> dict[str, int]:
        """``{"put ok": n, "put unknown": n, ...}``: a summary to print."""
        counts: dict[str, int] = {}
        for op in self.ops:
            name = f"{op.kind} {op.outcome}"
            counts[name] = counts.get(name, 0) + 1
        return dict(sorted(counts.items()))

    def to_json(self) -> str:
        return json.dumps([op.to_json() for op in self.ops], indent=1)

    def extend(self, ops: Iterable[Op]) -> None:
        self.ops.extend(ops)

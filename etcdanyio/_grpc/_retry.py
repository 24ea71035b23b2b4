"""
When a failed call may be tried again: write-at-most-once, as etcd's Go client.

* A request that certainly never reached the server (``applied is False``:
  not sent, refused by GOAWAY or REFUSED_STREAM) is retried whatever it is.
* A *repeatable* request (a read, or anything safe to apply twice) is also
  retried on ``UNAVAILABLE`` and on a connection lost mid-call.
* Everything else is raised: a write that was sent has an unknown outcome.
"""

from __future__ import annotations

import dataclasses

from ._backoff import backoff
from ._errors import GrpcError, MessageTooLargeError, TransportError, UnreachableError
from ._status import Status


@dataclasses.dataclass
class RetryPolicy:
    #: attempts in all, the first included
    max_attempts: int = 4
    base_delay: float = 0.025
    max_delay: float = 0.5

    def delay(self, error: BaseException, attempt: int, *, repeatable: bool) -> float | None:
        """Seconds to wait before the next attempt, or ``None`` to give up."""
        if attempt >= self.max_attempts or not self.retryable(error, repeatable=repeatable):
            return None
        return backoff(attempt, base=self.base_delay, cap=self.max_delay)

    @staticmethod
    def retryable(error: BaseException, *, repeatable: bool) -> bool:
        if isinstance(error, (UnreachableError, MessageTooLargeError)):
            return False  # the dialer already tried every endpoint; a size never shrinks
        if isinstance(error, TransportError):
            return error.applied is False or repeatable
        if isinstance(error, GrpcError):
            return repeatable and error.status == Status.UNAVAILABLE
        return False

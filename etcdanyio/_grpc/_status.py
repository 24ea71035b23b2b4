"""gRPC status codes (https://grpc.github.io/grpc/core/md_doc_statuscodes.html)."""

from __future__ import annotations

import enum


class NamedIntEnum(enum.IntEnum):
    """
    An :class:`enum.IntEnum` whose ``str()`` and plain ``format()`` give the member's name
    (``PUT``) on every Python: 3.11 changed them to the number for ``IntEnum``, so that
    ``print(event.type)`` printed ``0`` there and ``EventType.PUT`` on 3.10. The member still
    compares equal to its number, and a numeric format spec (``f"{event.type:d}"``) gives it.
    """

    def __str__(self) -> str:
        return self.name

    def __format__(self, format_spec: str) -> str:
        if format_spec:
            return int.__format__(int(self), format_spec)
        return self.name


class Status(NamedIntEnum):
    """The gRPC status codes (``RpcError.status``)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16

    @classmethod
    def from_code(cls, code: int) -> Status:
        """Map a wire code to a status; codes outside the table become ``UNKNOWN``."""
        try:
            return cls(code)
        except ValueError:
            return cls.UNKNOWN


#: HTTP status to gRPC status, for responses that are not gRPC at all
#: (https://github.com/grpc/grpc/blob/master/doc/http-grpc-status-mapping.md).
HTTP_TO_GRPC: dict[int, Status] = {
    400: Status.INTERNAL,
    401: Status.UNAUTHENTICATED,
    403: Status.PERMISSION_DENIED,
    404: Status.UNIMPLEMENTED,
    429: Status.UNAVAILABLE,
    502: Status.UNAVAILABLE,
    503: Status.UNAVAILABLE,
    504: Status.UNAVAILABLE,
}

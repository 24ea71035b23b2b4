"""gRPC status codes (https://grpc.github.io/grpc/core/md_doc_statuscodes.html)."""

from __future__ import annotations

import enum


class Status(enum.IntEnum):
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

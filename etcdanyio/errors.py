"""
Everything etcdanyio raises for a server or transport failure.

Server errors are mapped by etcd's **exact** message string (the gRPC code of
several changed between etcd versions), falling back to the gRPC status. The
strings are those of etcd's ``api/v3rpc/rpctypes/error.go``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._grpc import ConnectionLostError as _GrpcConnectionLost
from ._grpc import (
    GrpcError,
    MessageTooLargeError,
    ProtocolViolation,
    Status,
    TransportError,
    UnreachableError,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "AuthenticationError",
    "CompactedError",
    "ConnectionFailedError",
    "ConnectionLostError",
    "DeadlineExceededError",
    "DuplicateKeyError",
    "EtcdError",
    "FutureRevisionError",
    "InvalidAuthTokenError",
    "LearnerNotReadyError",
    "LeaseExpiredError",
    "LeaseNotFoundError",
    "MemberNotFoundError",
    "NoLeaderError",
    "NoSpaceError",
    "PermissionDeniedError",
    "ProtocolViolationError",
    "RequestTooLargeError",
    "ResponseTooLargeError",
    "RpcError",
    "SnapshotError",
    "Status",
    "TooManyRequestsError",
    "UnavailableError",
    "UnsupportedError",
    "WatchCompactedError",
]


class EtcdError(Exception):
    """
    Raised for any server or transport failure.

    :ivar message: etcd's own text, verbatim (or the transport's description)
    :ivar applied: ``False`` if the request certainly did not take effect,
        ``None`` if that is unknown (it was sent, then the answer was lost);
        ``True`` is never claimed for an error
    """

    def __init__(self, message: str, *, applied: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.applied = applied


class ConnectionFailedError(EtcdError):
    """Raised when no endpoint could be reached; ``causes`` keeps each endpoint's error."""

    def __init__(
        self,
        message: str,
        *,
        applied: bool | None = False,
        causes: Sequence[BaseException] = (),
    ) -> None:
        super().__init__(message, applied=applied)
        self.causes = list(causes)


class ConnectionLostError(ConnectionFailedError):
    """Raised when the connection broke while the request was in flight."""


class ProtocolViolationError(EtcdError):
    """Raised when the server broke HTTP/2 or gRPC framing rules."""


class RpcError(EtcdError):
    """
    Raised when etcd answered with a non-OK gRPC status.

    :ivar status: the gRPC status (:class:`etcdanyio.Status`)
    """

    def __init__(self, status: Status, message: str, *, applied: bool | None = None) -> None:
        super().__init__(message, applied=applied)
        self.status = status

    def __str__(self) -> str:
        return f"{self.message} ({self.status.name})" if self.message else self.status.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status.name}, {self.message!r})"


class CompactedError(RpcError):
    """Raised when a read asks for a revision older than the compaction point."""

    def __init__(
        self,
        status: Status,
        message: str,
        *,
        applied: bool | None = None,
        compact_revision: int = 0,
    ) -> None:
        super().__init__(status, message, applied=applied)
        #: the compaction revision, when etcd says it (0 when unknown)
        self.compact_revision = compact_revision


class FutureRevisionError(RpcError):
    """Raised when a read asks for a revision that does not exist yet."""


class LeaseNotFoundError(RpcError):
    """Raised when the lease named in a request does not exist (expired or revoked)."""


class UnsupportedError(RpcError):
    """Raised when the server does not implement a call; the message names the version needed."""


#: The etcd release that introduced each RPC newer than 3.0 (etcd-notes.md).
SINCE: dict[str, str] = {
    "/etcdserverpb.Lease/LeaseTimeToLive": "3.1",
    "/etcdserverpb.Lease/LeaseLeases": "3.3",
    "/etcdserverpb.Maintenance/HashKV": "3.3",
    "/etcdserverpb.Maintenance/MoveLeader": "3.3",
    "/etcdserverpb.Cluster/MemberPromote": "3.4",
    "/etcdserverpb.Maintenance/Downgrade": "3.5",
    "/etcdserverpb.Auth/AuthStatus": "3.5",
    "/v3lockpb.Lock/Lock": "3.2",
    "/v3lockpb.Lock/Unlock": "3.2",
    "/v3electionpb.Election/Campaign": "3.2",
    "/etcdserverpb.KV/RangeStream": "3.7",
}


def unsupported(path: str, message: str) -> UnsupportedError:
    """The error for an RPC the server answered UNIMPLEMENTED."""
    name = path.rsplit("/", 1)[-1]
    since = SINCE.get(path)
    needs = f"it needs etcd {since} or newer" if since else "it is not implemented there"
    return UnsupportedError(
        Status.UNIMPLEMENTED,
        f"the server does not support {name}: {needs} ({message or 'UNIMPLEMENTED'})",
        applied=False,
    )


class UnavailableError(RpcError):
    """Raised when the member cannot serve the request now (no leader, stopping, timed out)."""


class NoLeaderError(UnavailableError):
    """Raised when the member has no leader (``etcdserver: no leader``)."""


class TooManyRequestsError(RpcError):
    """Raised when etcd sheds load (``etcdserver: too many requests``); never retried."""


class RequestTooLargeError(RpcError):
    """Raised when a request is over etcd's ``--max-request-bytes`` (or gRPC's limit)."""


class ResponseTooLargeError(RpcError):
    """
    Raised when etcd's answer is over the client's ``max_receive_message``. For a write, etcd
    has applied it or not before answering: ``applied`` is ``None``.
    """


class DuplicateKeyError(RpcError):
    """Raised when a transaction changes the same key twice."""


class NoSpaceError(RpcError):
    """Raised when the backend quota is exhausted (NOSPACE alarm); reads and deletes still work."""


class PermissionDeniedError(RpcError):
    """Raised when the authenticated user may not do this."""


class AuthenticationError(RpcError):
    """Raised when the credentials are wrong or missing."""


class InvalidAuthTokenError(AuthenticationError):
    """Raised when the auth token expired or the auth store changed; the client re-authenticates."""


class MemberNotFoundError(RpcError):
    """Raised when the member ID named in a cluster call is not a member."""


class LearnerNotReadyError(RpcError):
    """
    Raised when a learner is promoted before it has caught up with the leader's log; promoting
    it again later, once it has, succeeds.
    """


class DeadlineExceededError(RpcError, TimeoutError):
    """Raised when the server gave up on the request's deadline; it is also a ``TimeoutError``."""


class WatchCompactedError(EtcdError):
    """Raised from a watch whose next revision has been compacted away."""

    def __init__(self, compact_revision: int, message: str = "") -> None:
        super().__init__(
            message or f"watch revision compacted away (compact revision {compact_revision})",
            applied=False,
        )
        self.compact_revision = compact_revision


class SnapshotError(EtcdError):
    """
    Raised when a snapshot stream is not a complete, intact etcd snapshot: it ended without
    etcd's trailing sha256, or the sha256 does not match the data before it.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, applied=False)


class LeaseExpiredError(EtcdError):
    """Raised from a lease's (or lock's) block when the lease was lost while it ran."""

    def __init__(self, lease_id: int, message: str = "") -> None:
        super().__init__(message or f"lease {lease_id:x} expired or was revoked", applied=None)
        self.lease_id = lease_id


_E = "etcdserver: "

#: etcd's exact error strings -> our classes (api/v3rpc/rpctypes/error.go).
ERROR_TABLE: dict[str, type[RpcError]] = {
    _E + "mvcc: required revision has been compacted": CompactedError,
    _E + "mvcc: required revision is a future revision": FutureRevisionError,
    _E + "mvcc: database space exceeded": NoSpaceError,
    _E + "requested lease not found": LeaseNotFoundError,
    _E + "request is too large": RequestTooLargeError,
    _E + "too many requests": TooManyRequestsError,
    _E + "duplicate key given in txn request": DuplicateKeyError,
    _E + "permission denied": PermissionDeniedError,
    _E + "authentication failed, invalid user ID or password": AuthenticationError,
    _E + "invalid auth token": InvalidAuthTokenError,
    _E + "user name is empty": AuthenticationError,
    _E + "revision of auth store is old": InvalidAuthTokenError,
    "auth: revision in header is old": InvalidAuthTokenError,
    _E + "no leader": NoLeaderError,
    _E + "leader changed": UnavailableError,
    _E + "not capable": UnavailableError,
    _E + "server stopped": UnavailableError,
    _E + "request timed out": UnavailableError,
    _E + "request timed out, possibly due to previous leader failure": UnavailableError,
    _E + "request timed out, possibly due to connection lost": UnavailableError,
    _E + "request timed out, waiting for the applied index took too long": UnavailableError,
    _E + "unhealthy cluster": UnavailableError,
    _E + "rpc not supported for learner": UnavailableError,
    _E + "context deadline exceeded": DeadlineExceededError,
    # etcd 3.5.1 answers an expired grpc-timeout with code UNKNOWN and Go's plain text.
    "context deadline exceeded": DeadlineExceededError,
    _E + "member not found": MemberNotFoundError,
    _E + "can only promote a learner member which is in sync with leader": LearnerNotReadyError,
}

#: etcd's answers when the deadline we sent it (``grpc-timeout``) expired: the caller's own
#: cancel scope is due then, and fires instead (etcd 3.5.1 answers UNKNOWN with Go's plain
#: text; a proposal that timed out is UNAVAILABLE "request timed out").
DEADLINE_MESSAGES = frozenset(
    {
        _E + "context deadline exceeded",
        "context deadline exceeded",
        _E + "request timed out",
        _E + "request timed out, possibly due to previous leader failure",
        _E + "request timed out, possibly due to connection lost",
        _E + "request timed out, waiting for the applied index took too long",
    }
)

#: Unavailability that etcd reports from its interceptor, before the request
#: reaches its handler: the request certainly was not applied.
REJECTED_BEFORE_APPLY = frozenset(
    {
        _E + "rpc not supported for learner",
        _E + "unhealthy cluster",
        # auth checks refuse a request before it is applied
        _E + "invalid auth token",
        _E + "revision of auth store is old",
        "auth: revision in header is old",
        _E + "user name is empty",
    }
)
#: Rejections that may come after the write was applied: etcd applies the put
#: that crosses the quota when its pre-Raft check let it through, and still
#: answers "database space exceeded".
MAYBE_APPLIED = frozenset({_E + "mvcc: database space exceeded"})

#: How our own transport reports an answer over ``max_receive_message``.
_RESPONSE_TOO_LARGE = "received message larger than max"

#: Fallback by gRPC status, for messages not in the table.
STATUS_TABLE: dict[Status, type[RpcError]] = {
    Status.UNAVAILABLE: UnavailableError,
    Status.PERMISSION_DENIED: PermissionDeniedError,
    Status.UNAUTHENTICATED: AuthenticationError,
    Status.DEADLINE_EXCEEDED: DeadlineExceededError,
}


def rpc_error(status: Status, message: str, *, applied: bool | None = None) -> RpcError:
    """The typed error for a gRPC status and etcd's message."""
    cls = ERROR_TABLE.get(message)
    if cls is None:
        if message.startswith("grpc: received message larger than max"):
            cls = RequestTooLargeError
        elif message.startswith(_RESPONSE_TOO_LARGE):
            cls = ResponseTooLargeError
        else:
            cls = STATUS_TABLE.get(status, RpcError)
    return cls(status, message, applied=applied)


def translate(exc: GrpcError | TransportError, *, write: bool) -> EtcdError:
    """
    Turn a ``_grpc`` error into ours.

    :param write: the request may change state; for a write ``.applied`` is
        ``None`` unless the server certainly did not apply it, for a read it is
        ``False`` (a read has nothing to apply)
    """
    if isinstance(exc, GrpcError):
        # A status from the server: a rejected request was not applied, except
        # that after a timeout or unavailability the outcome of a write is unknown.
        unknown = (
            write
            and exc.status
            in (
                Status.UNAVAILABLE,
                Status.DEADLINE_EXCEEDED,
                Status.CANCELLED,
                Status.UNKNOWN,
                Status.INTERNAL,
            )
            and exc.message not in REJECTED_BEFORE_APPLY
        ) or (
            write and (exc.message in MAYBE_APPLIED or exc.message.startswith(_RESPONSE_TOO_LARGE))
        )
        error: EtcdError = rpc_error(exc.status, exc.message, applied=None if unknown else False)
    elif isinstance(exc, UnreachableError):
        error = ConnectionFailedError(exc.message, applied=False, causes=exc.causes)
    elif isinstance(exc, MessageTooLargeError):
        error = RequestTooLargeError(Status.RESOURCE_EXHAUSTED, exc.message, applied=False)
    elif isinstance(exc, ProtocolViolation):
        error = ProtocolViolationError(exc.message, applied=exc.applied if write else False)
    elif isinstance(exc, _GrpcConnectionLost) or exc.applied is not False:
        error = ConnectionLostError(exc.message, applied=exc.applied if write else False)
    else:
        error = ConnectionFailedError(exc.message, applied=False)
    return error
